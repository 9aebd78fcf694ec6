"""Label pyramids: each level pixel is the most frequent class of its block (checked against a plain count per
block), and the pyramid infer writes is the one built from its labels."""

import numpy as np
import pytest

from bigseg.pyramid import majority


def _reference(block: np.ndarray, f: int, n: int) -> np.ndarray:
    h, w = block.shape
    padded = np.pad(block, [(0, -h % f), (0, -w % f)], mode="edge")
    out = np.empty((padded.shape[0] // f, padded.shape[1] // f), np.uint8)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            cell = padded[i * f : (i + 1) * f, j * f : (j + 1) * f].ravel()
            votes = np.bincount(cell[cell < n], minlength=n)[:n]
            out[i, j] = 255 if votes.max() == 0 else int(votes.argmax())  # argmax: ties to the lower id
    return out


@pytest.mark.parametrize("f", [2, 4, 16, 17])
def test_majority_is_the_mode_of_each_block(f):
    rng = np.random.default_rng(f)
    block = rng.integers(0, 3, (53, 71)).astype(np.uint8)
    block[:f, :f] = 255  # a block of unlabelled pixels only
    block[f : 2 * f, : 2 * f] = 7  # a value outside the table counts for no class
    block[-f:, -f:] = np.indices((f, f)).sum(axis=0) % 2  # a tie between 0 and 1 (even f), to the lower id
    assert np.array_equal(majority(block, f, 3), _reference(block, f, 3))


@pytest.mark.parametrize("workers", [0, 1])
def test_the_pyramid_infer_builds_during_the_run_is_the_labels_pyramid(tmp_path, workers):
    """Three strips of 1024 rows (chunks of 128), each written as soon as its chunk rows are, sharing the chunks
    of the coarser levels: the same levels as a pyramid built from the finished labels."""
    import zarr

    from bigseg import pyramid
    from bigseg.infer import InferOptions, infer
    from bigseg.ingest import ingest
    from bigseg.synth import SynthParams, synthesize

    s = synthesize(tmp_path / "tall.png", SynthParams(300, 2300, seed=4))
    store = tmp_path / "tall.zarr"
    ingest(s["image"], store, chunk=128)
    infer(store, options=InferOptions(window=256, overlap=64, workers=workers))
    g = zarr.open_group(str(store), mode="r")
    assert sorted(g["preview-labels"].array_keys()) == ["x4", "x8"]
    during = {k: g["preview-labels"][k][:] for k in ("x4", "x8")}
    assert all(g["preview-labels"][k].attrs["complete"] for k in during)
    pyramid.build(store, "labels", 3)
    for k, level in during.items():
        assert np.array_equal(level, g["preview-labels"][k][:]), k
    assert np.array_equal(during["x4"], majority(g["labels"][:], 4, 3))
