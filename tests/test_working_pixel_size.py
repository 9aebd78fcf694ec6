"""A model trained at a working pixel size (``working_pixel_size_um`` in its checkpoint, from
``synthetic.min_pixel_size_um``) is shown a finer scan at that size: every window resized by pixel / working before
the network and its logits resized back -- in the pass and in the sampled-window confidence figures -- while a
coarser scan, a store without a pixel size or a model without one are read as before."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers import bundled_resaved

from bigseg import checkpoint
from bigseg import store as st
from bigseg.infer import InferOptions, infer, options, predictor
from bigseg.infer.predictor import working_scale
from bigseg.trust import synthetic_store


def test_working_scale():
    assert working_scale({"working_pixel_size_um": 7}, 3.5) == pytest.approx(0.5)
    assert working_scale({"working_pixel_size_um": 7}, 7.0) == 1.0
    assert working_scale({"working_pixel_size_um": 7}, 12) == 1.0
    assert working_scale({}, 3.5) == 1.0 and working_scale({"working_pixel_size_um": 7}, None) == 1.0


def test_a_finer_scan_is_read_at_the_models_working_pixel_size(tmp_path):
    store = synthetic_store(tmp_path / "slabs", "classic", 5, 384)  # 10 um a pixel
    assert st.pixel_size_um(st.open_store(store)) == 10.0
    plain, working, coarse = (bundled_resaved(tmp_path / n, working_pixel_size_um=w)
                              for n, w in (("plain.pt", None), ("w20.pt", 20.0), ("w5.pt", 5.0)))

    def labels(model, tta="none"):
        said: list[str] = []
        r = infer(store, model=str(model), options=InferOptions(workers=0, overwrite=True, backend="torch", tta=tta),
                  echo=lambda *a: said.append(" ".join(map(str, a))))
        return np.asarray(st.open_array(store, "labels")[:]), said, r

    base, said, _ = labels(plain)
    assert not any("working" in s or "shown to it" in s for s in said)
    halved, said, r = labels(working)
    assert any("reads scans at 20 um a pixel" in s and "shown to it at 0.5 x" in s for s in said), said
    assert not np.array_equal(halved, base)
    assert r.confidence and r.confidence.get("stability")  # the sampled windows were measured too, at that size
    # exactly what the plain model gives with every window shown at half size (the same views, one path)
    predictor.TTA_VIEWS["x0.5-test"] = (((), 0.5),)
    options.TTA = (*options.TTA, "x0.5-test")
    try:
        by_hand, _, _ = labels(plain, tta="x0.5-test")
    finally:
        del predictor.TTA_VIEWS["x0.5-test"]
        options.TTA = tuple(t for t in options.TTA if t != "x0.5-test")
    assert np.array_equal(halved, by_hand)
    # the CPU's default backend (ONNX Runtime, the checkpoint exported once) resizes the same way, with numpy
    infer(store, model=str(working), options=InferOptions(workers=0, overwrite=True, backend="onnxruntime"),
          echo=lambda *a: None)
    assert (np.asarray(st.open_array(store, "labels")[:]) == halved).mean() > 0.999
    same, said, _ = labels(coarse)  # the scan is coarser than 5 um: read as it is
    assert np.array_equal(same, base) and not any("shown to it" in s for s in said)
    unknown = tmp_path / "unknown.zarr"  # a store that does not know its pixel size: read as it is
    shutil.copytree(store, unknown)
    g = st.open_store(unknown, mode="r+")
    del g.attrs["pixel_size_um"]
    infer(unknown, model=str(working), options=InferOptions(workers=0, overwrite=True, backend="torch"),
          echo=lambda *a: None)
    assert np.array_equal(np.asarray(st.open_array(unknown, "labels")[:]), base)


def test_a_model_adapted_from_one_reads_scans_at_their_own_size(tmp_path):
    """bigseg adapt trains on the strokes at the scan's own pixel size, so the adapted model drops the base's
    working pixel size (infer would otherwise shrink the scans it was adapted on)."""
    from bigseg import annotations as ann
    from bigseg.synth.strokes import simulate_strokes
    from bigseg.train.adapt import adapt
    from bigseg.train.adapt_options import AdaptOptions

    store = synthetic_store(tmp_path / "slabs", "classic", 6, 384)
    truth = np.asarray(st.open_array(store, "truth")[:])
    for s in simulate_strokes(truth, 3, 6, np.random.default_rng(0)):
        ann.paint(store, s)
    base = bundled_resaved(tmp_path / "base.pt", working_pixel_size_um=20.0)
    opts = AdaptOptions(steps=2, minutes=5, crop=64, batch=2, suggestions=0, export=False)
    adapt([store], tmp_path / "a.pt", base=base, options=opts, echo=lambda *a: None, progress=False)
    assert "working_pixel_size_um" not in checkpoint.read(tmp_path / "a.pt")["meta"]
