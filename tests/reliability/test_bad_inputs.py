"""Bad input for every command: one clear line on stderr, non-zero exit, no traceback, nothing damaged.

Each case runs the real ``bigseg`` command in a subprocess beside a finished store (image, truth, labels) and a
finished report; after the failure, every file of both must be byte-identical and no partial output may be
left looking complete.
"""

import hashlib
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from PIL import Image

from bigseg import checkpoint
from bigseg.checkpoint import BUNDLED
from bigseg.classes import CONCRETE, ClassInfo
from bigseg.infer import InferOptions, infer
from bigseg.ingest import ingest
from bigseg.models import build
from bigseg.report.report import make_report
from bigseg.synth import SynthParams, synthesize
from tests.helpers import error_line, run_cli


def snapshot(*roots: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for root in roots for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    s = synthesize(d / "slab.png", SynthParams(400, 300, seed=4, pixel_size_um=10))
    ingest(s["image"], d / "good.zarr", truth=s["truth"], chunk=128)
    infer(d / "good.zarr", options=InferOptions(window=256, overlap=64, workers=0))
    make_report(d / "good.zarr", d / "good-report", echo=lambda *_: None)
    Image.open(s["image"]).save(d / "good.jpg", quality=90)
    tifffile.imwrite(d / "good.tif", np.asarray(Image.open(s["image"])), tile=(128, 128), compression="zlib",
                     photometric="rgb")
    return d


class _Payload:
    flag: Path

    def __reduce__(self):
        return (Path.touch, (self.flag,))


def _write(path: Path, data) -> Path:
    path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    return path


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def _int8_not_allowed(tmp: Path) -> Path:
    """The shipped int8 export, its validation outcome edited to a failure (as an export whose rule failed)."""
    from bigseg.export import _set_onnx_meta
    from bigseg.modelfile import read_onnx_meta

    path = _copy(BUNDLED.with_suffix(".int8.onnx"), tmp / "failed.int8.onnx")
    meta = read_onnx_meta(path)
    meta["validation"] = {**meta["validation"], "allowed": False,
                          "checks": {**meta["validation"]["checks"], "void_iou": False}}
    _set_onnx_meta(path, meta)
    return path


def _truncated_mask(tmp: Path) -> Path:
    """A 400 x 300 region mask (the world slab's size) as a PNG cut short."""
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((300, 400)) > 0.5).astype(np.uint8) * 255).save(tmp / "full.png")
    return _write(tmp / "region.png", (tmp / "full.png").read_bytes()[:3000])


def _int8_weights_zeroed(tmp: Path) -> Path:
    """The shipped int8 export with its weights zeroed and its metadata (the accuracy claims) left as they were."""
    import onnx

    model = onnx.load(str(BUNDLED.with_suffix(".int8.onnx")))
    for init in model.graph.initializer:
        if init.raw_data:
            init.raw_data = bytes(len(init.raw_data))
    path = tmp / "zeroed.int8.onnx"
    onnx.save(model, str(path))
    return path


def _short_scan_jpeg(tmp: Path, rows: int = 1200, cols: int = 800) -> Path:
    """A JPEG with 600 x 800 pixels of data whose header says ``rows`` x ``cols`` (the issue's cases: 1200 rows, the
    bottom half would be grey; 60000 x 60000, a file of under 1 MB that would become a 3.6 Gpx store)."""
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((600, 800, 3)) * 255).astype(np.uint8)).save(tmp / "s.jpg", quality=90)
    data = bytearray((tmp / "s.jpg").read_bytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = rows.to_bytes(2, "big") + cols.to_bytes(2, "big")
    return _write(tmp / "short.jpg", bytes(data))


def _inf_state(tmp: Path) -> Path:
    """A torchvision LR-ASPP state dict (random weights, 3 classes) with inf in one BatchNorm running variance."""
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    state = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3).state_dict()
    key = next(k for k in state if k.endswith("running_var"))
    state[key][0] = float("inf")
    torch.save(state, tmp / "inf.pth")
    return tmp / "inf.pth"


def _zip_bomb(tmp: Path) -> Path:
    """A torch-style zip archive (a real state dict) plus an entry of 1 GiB of zeros, DEFLATE'd to ~1 MB."""
    import zipfile

    torch.save({"w": torch.zeros(3)}, tmp / "sd.pt")
    path = tmp / "bomb.pt"
    path.write_bytes((tmp / "sd.pt").read_bytes())
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z, z.open("sd/data/9", "w",
                                                                                   force_zip64=True) as f:
        block = bytes(2**24)
        for _ in range(64):
            f.write(block)
    return path


def _config(tmp: Path, world: Path, **kw) -> Path:
    cfg = {"train": [str(world / "good.zarr")], "model": {"arch": "light_unet", "width": 4}, "crop": 64,
           "iterations": 2, "device": "cpu", "num_workers": 0, "out": str(tmp / "run")}
    cfg.update(kw)
    return _write(tmp / "cfg.yaml", yaml.safe_dump(cfg))


def _unlabelled_store(tmp: Path, world: Path) -> Path:
    """The world's slab with a truth mask of 255 everywhere (nothing labelled)."""
    Image.fromarray(np.full((300, 400), 255, np.uint8)).save(tmp / "none.png")
    ingest(world / "slab.png", tmp / "unl.zarr", truth=tmp / "none.png")
    return tmp / "unl.zarr"


def _pickle_checkpoint(tmp: Path, world: Path) -> Path:
    payload = _Payload()
    payload.flag = tmp / "pwned"
    with open(tmp / "evil.pt", "wb") as f:
        pickle.dump({"format": "bigseg-checkpoint", "x": payload}, f)
    return tmp / "evil.pt"


def _other_classes_checkpoint(tmp: Path) -> Path:
    classes = (*CONCRETE, ClassInfo(3, "crack", (255, 0, 0)))
    checkpoint.save(tmp / "four.pt", build("light_unet", 4, width=4), arch="light_unet", classes=classes,
                    arch_kwargs={"width": 4})
    return tmp / "four.pt"


def _wrong_shape_checkpoint(tmp: Path) -> Path:
    blob = torch.load(BUNDLED, weights_only=True)
    blob["meta"]["arch_kwargs"] = {"width": 8}
    torch.save(blob, tmp / "shape.pt")
    return tmp / "shape.pt"


def _float_tiff(tmp: Path) -> Path:
    tifffile.imwrite(tmp / "float.tif", np.random.default_rng(0).random((64, 64, 3), np.float32), photometric="rgb")
    return tmp / "float.tif"


def _store_without_pixel_size(tmp: Path, world: Path) -> Path:
    import shutil

    import zarr

    shutil.copytree(world / "good.zarr", tmp / "nopx.zarr")
    zarr.open_group(str(tmp / "nopx.zarr"), mode="r+").attrs["pixel_size_um"] = None
    return tmp / "nopx.zarr"


def _plain_onnx(tmp: Path) -> Path:
    """A valid ONNX model that is not a bigseg export (no metadata)."""
    import contextlib
    import io
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.Conv2d(3, 3, 1), (torch.rand(1, 3, 8, 8),), str(tmp / "plain.onnx"),
                          dynamo=False, input_names=["image"])
    return tmp / "plain.onnx"


def _torchscript(tmp: Path) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(torch.nn.Conv2d(3, 3, 1), torch.rand(1, 3, 8, 8)), str(tmp / "ts.pt"))
    return tmp / "ts.pt"


def _nan_checkpoint(tmp: Path) -> Path:
    blob = torch.load(BUNDLED, weights_only=True)
    first = next(k for k, v in blob["state_dict"].items() if v.is_floating_point())
    blob["state_dict"][first] = torch.full_like(blob["state_dict"][first], float("nan"))
    torch.save(blob, tmp / "nan.pt")
    return tmp / "nan.pt"


def _malformed_checkpoint(tmp: Path, how: str) -> Path:
    blob = torch.load(BUNDLED, weights_only=True)
    if how == "no arch":
        del blob["meta"]["arch"]
    elif how == "list":
        blob["state_dict"] = list(blob["state_dict"].values())
    elif how == "wide":
        blob["meta"]["arch_kwargs"] = {"width": "wide"}
    elif how == "offset":  # bigseg adapt's void shift: one number per class
        blob["meta"]["logit_offset"] = [0.0, float("nan")]
    torch.save(blob, tmp / "bad.pt")
    return tmp / "bad.pt"


def _custom_op_onnx(tmp: Path) -> Path:
    """The shipped export with one node moved to a custom operator domain (as a model built with a custom-op
    library would be)."""
    import onnx

    model = onnx.load(str(BUNDLED.with_suffix(".onnx")))
    node = next(n for n in model.graph.node if n.op_type == "Relu")
    node.domain = "com.example.ops"
    model.opset_import.append(onnx.helper.make_opsetid("com.example.ops", 1))
    onnx.save(model, str(tmp / "custom.onnx"))
    return tmp / "custom.onnx"


def _external_outside_onnx(tmp: Path) -> Path:
    """The shipped export with its weights in an external file one folder up (``../weights.bin``)."""
    import onnx

    model = onnx.load(str(BUNDLED.with_suffix(".onnx")))
    (tmp / "models").mkdir()
    path = tmp / "models" / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    (tmp / "models" / "weights.bin").rename(tmp / "weights.bin")  # onnx refuses to write '..'; a hand edit does not
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../weights.bin"
    path.write_bytes(model.SerializeToString())
    return path


def _rank3_onnx(tmp: Path) -> Path:
    """An ONNX file with bigseg's metadata whose model takes a single (3, H, W) image, not a batch."""
    import contextlib
    import io
    import warnings

    from bigseg.export import _set_onnx_meta

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.Conv2d(3, 3, 1), (torch.rand(3, 8, 8),), str(tmp / "r3.onnx"), dynamo=False,
                          input_names=["image"], dynamic_axes={"image": {1: "h", 2: "w"}})
    _set_onnx_meta(tmp / "r3.onnx", {"format": "bigseg-export", "version": 1, "arch": "light_unet",
                                     "classes": [c.to_dict() for c in CONCRETE], "precision": "fp32"})
    return tmp / "r3.onnx"


def _damaged(tmp: Path, world: Path, how: str) -> Path:
    import shutil

    store = tmp / "damaged.zarr"
    shutil.copytree(world / "good.zarr", store)
    if how == "missing image chunk":
        (store / "image" / "c" / "1" / "1" / "0").unlink()
    elif how.startswith("flipped"):
        chunk = store / how.split()[1] / "c" / "1" / "1"
        if how.split()[1] == "image":
            chunk = chunk / "0"
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    elif how == "truncated labels metadata":
        meta = store / "labels" / "zarr.json"
        meta.write_text(meta.read_text()[:200])
    return store


def _second_mask_bad(tmp: Path, world: Path) -> list:
    images, masks = tmp / "images", tmp / "masks"
    images.mkdir()
    masks.mkdir()
    for name in ("a", "b"):
        (images / f"{name}.png").write_bytes((world / "slab.png").read_bytes())
    (masks / "a.png").write_bytes((world / "slab.truth.png").read_bytes())
    Image.fromarray(np.full((300, 400), 7, np.uint8)).save(masks / "b.png")
    return ["import", "pairs", images, masks, tmp / "out"]


LOCAL = ["--workers", "1"]  # checkpoints are validated on a worker: its errors must reach stderr as one line


W = "{world}"
T = "{tmp}"
# (case, command line with {world}/{tmp} placeholders or a callable(tmp, world) -> args, expected message part)
CASES = [
    # ingest: image files
    ("ingest: image that does not exist", ["ingest", T + "/nothere.jpg", T + "/o.zarr"], "no such file"),
    ("ingest: zero-byte .jpg", lambda t, w: ["ingest", _write(t / "e.jpg", b""), t / "o.zarr"], "empty file"),
    ("ingest: text file named .jpg", lambda t, w: ["ingest", _write(t / "t.jpg", "hello\n"), t / "o.zarr"],
     "not a readable image"),
    ("ingest: truncated JPEG", lambda t, w: ["ingest", _write(t / "x.jpg", (w / "good.jpg").read_bytes()[:9000]),
                                            t / "o.zarr"], "x.jpg"),
    ("ingest: JPEG whose scan ends before the rows its header promises (not grey-filled and marked complete)",
     lambda t, w: ["ingest", _short_scan_jpeg(t), t / "o.zarr"], "premature end of data segment"),
    ("ingest: a 0.9 MB JPEG whose header claims 60000 x 60000 (not a 3.6 Gpx store marked complete)",
     lambda t, w: ["ingest", _short_scan_jpeg(t, 60000, 60000), t / "o.zarr"], "premature end of data segment"),
    ("ingest: truncated PNG", lambda t, w: ["ingest", _write(t / "x.png", (w / "slab.png").read_bytes()[:20000]),
                                           t / "o.zarr"], "x.png"),
    ("ingest: truncated TIFF", lambda t, w: ["ingest", _write(t / "x.tif", (w / "good.tif").read_bytes()[:90000]),
                                            t / "o.zarr"], "truncated TIFF"),
    ("ingest: random bytes named .png", lambda t, w: ["ingest", _write(t / "r.png", bytes(range(256)) * 40),
                                                     t / "o.zarr"], "not a readable image"),
    ("ingest: float32 TIFF (unsupported pixel format)", lambda t, w: ["ingest", _float_tiff(t), t / "o.zarr"],
     "unsupported pixel format"),
    ("ingest: a folder as the image", ["ingest", W, T + "/o.zarr"], "is a folder"),
    # ingest: masks
    ("ingest: mask of the wrong size", lambda t, w: [
        "ingest", w / "slab.png", t / "o.zarr", "--truth",
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(t / "m.png") or t / "m.png"], "truth mask is 10x10"),
    ("ingest: mask with a label outside the class table", lambda t, w: [
        "ingest", w / "slab.png", t / "o.zarr", "--truth",
        Image.fromarray(np.full((300, 400), 7, np.uint8)).save(t / "m.png") or t / "m.png"],
     "outside the class table"),
    # ingest: outputs
    ("ingest: existing store without --overwrite", ["ingest", W + "/slab.png", W + "/good.zarr"],
     "exists; pass --overwrite"),
    ("ingest: --overwrite with a corrupt image (old store kept)",
     lambda t, w: ["ingest", _write(t / "c.png", b"\x89PNG\r\n\x1a\nrubbish"), w / "good.zarr", "--overwrite"],
     "c.png"),
    ("ingest: output folder that does not exist", ["ingest", W + "/slab.png", T + "/no/such/o.zarr"],
     "does not exist"),
    ("ingest: output under a file", lambda t, w: ["ingest", w / "slab.png", _write(t / "f", "x") / "o.zarr"],
     "does not exist"),
    ("ingest: chunk size out of range", ["ingest", W + "/slab.png", T + "/o.zarr", "--chunk", "3"],
     "--chunk must be between"),
    # synth
    ("synth: JPEG wider than 65535 px", ["synth", T + "/big.jpg", "--size", "70000x10"], "65535"),
    ("synth: malformed --size", ["synth", T + "/s.png", "--size", "big"], "--size must be WIDTHxHEIGHT"),
    ("bench: a zero --size (said before a test store is made)", ["bench", "--size", "0x10"],
     "--size must be WIDTHxHEIGHT of positive numbers"),
    # infer
    ("infer: a folder that is not a store", lambda t, w: ["infer", (t / "d.zarr").mkdir() or t / "d.zarr"],
     "not a zarr store"),
    ("info: a file (a checkpoint) given as a store: no advice to write a store over it",
     lambda t, w: ["info", _write(t / "m.pt", "x")], "a file, not a zarr store"),
    ("infer: checkpoint that is a text file", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _write(t / "m.pt", "hello")],
     "not a checkpoint file"),
    ("infer: checkpoint with a pickle payload (refused, not run)", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _pickle_checkpoint(t, w)], "refused"),
    ("infer: checkpoint for other classes", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _other_classes_checkpoint(t)],
     "differ from the store's"),
    ("infer: checkpoint whose weights do not fit its architecture", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _wrong_shape_checkpoint(t)],
     "do not fit"),
    ("infer: checkpoint that does not exist", ["infer", W + "/good.zarr", "--overwrite", "--model", T + "/no.pt"],
     "no.pt"),
    ("infer: finished labels without --overwrite", ["infer", W + "/good.zarr", "--workers", "0"],
     "already complete"),
    ("infer: window larger than allowed", ["infer", W + "/good.zarr", "--overwrite", "--window", "100000"],
     "--window must be"),
    ("infer: overlap too large for the window", ["infer", W + "/good.zarr", "--overwrite", "--overlap", "800"],
     "--overlap must be"),
    ("infer: unknown device", ["infer", W + "/good.zarr", "--overwrite", "--device", "tpu"], "unknown device"),
    ("infer: ONNX file that is not a bigseg export (no metadata)", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _plain_onnx(t)],
     "not a bigseg export: the ONNX file has no 'bigseg' metadata"),
    ("infer: truncated ONNX file", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model",
        _write(t / "cut.onnx", _plain_onnx(t).read_bytes()[:60])], "not a readable ONNX file"),
    ("infer: ONNX file with an operator of a custom domain (needs a custom-op library)", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _custom_op_onnx(t)],
     "custom domain 'com.example.ops'"),
    ("infer: ONNX file whose external weights lie outside its folder", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _external_outside_onnx(t)],
     "point outside its folder (../weights.bin)"),
    ("infer: ONNX file with --backend torch", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--backend", "torch", "--model", _plain_onnx(t)],
     "runs with --backend onnxruntime"),
    ("infer: a TorchScript file as the model", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _torchscript(t)],
     "a TorchScript export"),
    ("infer: --precision int8 with --backend torch", [
        "infer", W + "/good.zarr", "--overwrite", "--precision", "int8", "--backend", "torch"],
     "--precision int8 runs on ONNX Runtime"),
    ("infer: --precision int8 for a checkpoint without an int8 export (says how to make one)", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--precision", "int8", "--model",
        _copy(BUNDLED, t / "mine.pt")], "has no int8 export"),
    ("infer: --precision int8 with an fp32 ONNX export", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--precision", "int8", "--model",
        BUNDLED.with_suffix(".onnx")], "not an int8 one"),
    ("infer: --precision int8 with an int8 export whose validation failed", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--precision", "int8", "--model",
        _int8_not_allowed(t)], "failed its validation rule"),
    ("infer: --precision int8 with an int8 file whose weights were zeroed after its validation", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--precision", "int8", "--model",
        _int8_weights_zeroed(t)],
     "not the one its accuracy figures were measured on"),
    ("infer: --precision fp32 with an int8 export", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--precision", "fp32", "--model",
        BUNDLED.with_suffix(".int8.onnx")], "an int8 export"),
    ("infer: --scheduler where nothing listens (said at once, not after dask's retries)", [
        "infer", W + "/good.zarr", "--overwrite", "--scheduler", "tcp://127.0.0.1:9"],
     "connection refused: nothing listens on port 9"),
    ("infer: --scheduler on an unknown host", [
        "infer", W + "/good.zarr", "--overwrite", "--scheduler", "tcp://no-such-host.invalid:8786"],
     "unknown host no-such-host.invalid"),
    ("infer: checkpoint with NaN weights", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _nan_checkpoint(t)], "NaN or inf"),
    ("infer: checkpoint whose meta lacks the architecture", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _malformed_checkpoint(t, "no arch")],
     "lacks the architecture"),
    ("infer: checkpoint whose state_dict is a list", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _malformed_checkpoint(t, "list")],
     "not a mapping of names to tensors"),
    ("infer: checkpoint with arch_kwargs width 'wide'", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _malformed_checkpoint(t, "wide")],
     "do not build"),
    ("infer: checkpoint whose logit offset has two values for three classes, one NaN", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _malformed_checkpoint(t, "offset")],
     "needs one finite number per class"),
    ("infer: bigseg ONNX export of a rank-3 model, --overwrite (finished labels kept)", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", "--workers", "0", "--model", _rank3_onnx(t)],
     "the model failed on a batch of windows"),
    ("infer (local cluster): checkpoint with a pickle payload (refused, not run)", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", *LOCAL, "--model", _pickle_checkpoint(t, w)], "refused"),
    ("infer (local cluster): checkpoint that is a text file", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", *LOCAL, "--model", _write(t / "m.pt", "hello")],
     "not a checkpoint file"),
    ("infer (local cluster): checkpoint of another architecture size", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", *LOCAL, "--model", _wrong_shape_checkpoint(t)], "do not fit"),
    ("infer (local cluster): checkpoint for other classes", lambda t, w: [
        "infer", w / "good.zarr", "--overwrite", *LOCAL, "--model", _other_classes_checkpoint(t)],
     "differ from the store's"),
    ("infer: a missing image chunk", lambda t, w: [
        "infer", _damaged(t, w, "missing image chunk"), "--overwrite", "--workers", "0"], "chunk 1.1.0 is missing"),
    ("infer: a flipped byte in an image chunk", lambda t, w: [
        "infer", _damaged(t, w, "flipped image"), "--overwrite", "--workers", "0"], "chunk 1.1.0 cannot be read"),
    ("infer: an image file as its own output (-o)", ["infer", W + "/good.jpg", "-o", W + "/good.jpg"],
     "is the image"),
    ("infer: --batch 0", ["infer", W + "/good.zarr", "--overwrite", "--batch", "0"], "--batch must be at least 1"),
    ("infer: --threads 0", ["infer", W + "/good.zarr", "--overwrite", "--threads", "0"],
     "--threads must be at least 1"),
    ("infer: --stripe below one chunk", ["infer", W + "/good.zarr", "--overwrite", "--workers", "0", "--stripe", "64"],
     "at least one chunk"),
    ("infer: --workers 10000", ["infer", W + "/good.zarr", "--overwrite", "--workers", "10000"],
     "--workers must be between"),
    ("infer: --scheduler an http URL", ["infer", W + "/good.zarr", "--overwrite", "--scheduler",
                                        "http://127.0.0.1:8787/status"], "not a dask scheduler address"),
    ("infer: --stats in a folder that does not exist (checked before the work)", [
        "infer", W + "/good.zarr", "--overwrite", "--stats", T + "/no/such/s.json"], "does not exist"),
    ("report: -o the store itself, --overwrite (the store kept)", [
        "report", W + "/good.zarr", "-o", W + "/good.zarr", "--overwrite"], "is the store"),
    ("report: a flipped byte in a labels chunk", lambda t, w: [
        "report", _damaged(t, w, "flipped labels"), "-o", t / "r"], "chunk 1.1 cannot be read"),
    ("report: --traverse-spacing nan", ["report", W + "/good.zarr", "-o", T + "/r", "--traverse-spacing", "nan"],
     "--traverse-spacing must be a positive number"),
    ("report: --entrapped-diameter nan", ["report", W + "/good.zarr", "-o", T + "/r", "--entrapped-diameter", "nan"],
     "--entrapped-diameter must be a positive number"),
    ("report: --pixel-size 1e-20 (no traverse line; was a KeyError)", [
        "report", W + "/good.zarr", "-o", T + "/r", "--pixel-size", "1e-20"], "no traverse line crosses"),
    ("calibrate: --size 128 (no traverse on the validation slabs)", [
        "calibrate", "light_unet", "-o", T + "/cal.pt", "--slabs", "3", "--size", "128"], "--size must be between"),
    ("report: --pixel-size nan", ["report", W + "/good.zarr", "-o", T + "/r", "--pixel-size", "nan"],
     "--pixel-size must be a positive number"),
    ("evaluate: a truncated array metadata file", lambda t, w: [
        "evaluate", _damaged(t, w, "truncated labels metadata")], "unreadable zarr metadata"),
    ("info --check: a missing image chunk", lambda t, w: ["info", "--check", _damaged(t, w, "missing image chunk")],
     "damaged: image: 1 bad chunks"),
    ("ingest: --pixel-size nan", ["ingest", W + "/slab.png", T + "/o.zarr", "--pixel-size", "nan"],
     "--pixel-size must be a positive number"),
    ("import pairs: the second mask bad (nothing imported)", _second_mask_bad, "outside the class table"),
    ("import pairs: a binary --colours file", lambda t, w: [
        "import", "pairs", w, w, t / "out", "--colours", _write(t / "c.txt", b"\xff\xfe\x00binary")],
     "not a text file"),
    # export
    ("export: existing file without --overwrite", lambda t, w: [
        "export", BUNDLED, "-o", _write(t / "o.onnx", "keep me")], "exists; pass --overwrite"),
    ("export: --int8 without --calibrate", ["export", str(BUNDLED), "-o", T + "/o.onnx", "--int8"],
     "--int8 needs --calibrate"),
    ("export: checkpoint with a pickle payload (refused, not run)", lambda t, w: [
        "export", _pickle_checkpoint(t, w), "-o", t / "o.onnx"], "refused"),
    ("export: export differs from PyTorch beyond --tolerance (nothing written)", [
        "export", str(BUNDLED), "-o", T + "/o.onnx", "--exporter", "legacy", "--tolerance", "0"],
     "differs from PyTorch by up to"),
    ("export: --int8 calibrated on a path that is not a store", [
        "export", str(BUNDLED), "-o", T + "/o.onnx", "--int8", "--calibrate", T + "/none.zarr"], "no such store"),
    ("export: --qat without --int8", ["export", str(BUNDLED), "-o", T + "/o.onnx", "--qat", W + "/good.zarr"],
     "--qat fine-tunes for an int8 export"),
    ("export: --qat-steps 0", ["export", str(BUNDLED), "-o", T + "/o.onnx", "--int8", "--calibrate", W + "/good.zarr",
                               "--qat", W + "/good.zarr", "--qat-steps", "0"], "--qat-steps must be at least 1"),
    ("export: --calibration-windows 0", ["export", str(BUNDLED), "-o", T + "/o.onnx", "--int8", "--calibrate",
                                         W + "/good.zarr", "--calibration-windows", "0"],
     "--calibration-windows must be at least 1"),
    ("export: --qat on a path that is not a store", [
        "export", str(BUNDLED), "-o", T + "/o.onnx", "--int8", "--calibrate", W + "/good.zarr", "--qat",
        T + "/none.zarr"], "no such store"),
    # train
    ("train: config that does not exist", ["train", "--config", T + "/none.yaml"], "no such config file"),
    ("train: malformed YAML", lambda t, w: ["train", "--config", _write(t / "c.yaml", "train: [a\nmodel: :")],
     "not valid YAML"),
    ("train: unknown key", lambda t, w: ["train", "--config", _config(t, w, learning_rate=0.1)],
     "learning_rate: unknown key"),
    ("train: value of the wrong type", lambda t, w: ["train", "--config", _config(t, w, crop="big")], "crop"),
    ("train: unknown architecture", lambda t, w: [
        "train", "--config", _config(t, w, model={"arch": "unet9000"})], "unknown architecture"),
    ("train: no stores match", lambda t, w: ["train", "--config", _config(t, w, train=[str(t / "*.zarr")])],
     "no stores match"),
    ("train: store without truth", lambda t, w: [
        "train", "--config", _config(t, w, train=[str(t / "nt.zarr")])
        if ingest(w / "slab.png", t / "nt.zarr") else None], "no complete truth mask"),
    ("train: a store whose truth is all unlabelled (255): named, not 'lower optimizer.lr'", lambda t, w: [
        "train", "--config", _config(t, w, train=[str(_unlabelled_store(t, w))])],
     "the truth has no labelled pixels"),
    ("train: optimizer.lr .inf", lambda t, w: ["train", "--config", _config(t, w, optimizer={"lr": float("inf")})],
     "optimizer.lr"),
    ("train: --config an image file", lambda t, w: ["train", "--config", w / "slab.png"], "not a text file"),
    ("train: seed -1", lambda t, w: ["train", "--config", _config(t, w, seed=-1)], "seed"),
    ("train: augment.scale [0, 0]", lambda t, w: ["train", "--config", _config(t, w, augment={"scale": [0, 0]})],
     "scale range"),
    ("train: model.init of another architecture", lambda t, w: [
        "train", "--config", _config(t, w, model={"arch": "light_unet", "width": 4, "init": str(BUNDLED)})],
     "but the config builds"),
    ("train: --stop-at 0", lambda t, w: ["train", "--config", _config(t, w), "--stop-at", "0"],
     "--stop-at must be at least 1"),
    ("train: --time-limit nan", lambda t, w: ["train", "--config", _config(t, w), "--time-limit", "nan"],
     "--time-limit must be a positive number"),
    ("train: --time-limit -1", lambda t, w: ["train", "--config", _config(t, w), "--time-limit", "-1"],
     "--time-limit must be a positive number"),
    ("import weights: --window -5", ["import", "weights", str(BUNDLED), "-o", T + "/o.pt", "--window", "-5"],
     "--window must be between"),
    ("import weights: inf in a BatchNorm buffer (named, not written)", lambda t, w: [
        "import", "weights", _inf_state(t), "-o", t / "o.pt"], "holds inf or NaN"),
    ("import weights: a small file holding a 1 GiB DEFLATE'd entry (refused before unpacking)", lambda t, w: [
        "import", "weights", _zip_bomb(t), "-o", t / "o.pt"], "zip bomb"),
    ("bench: --store holding labels, without --overwrite (the labels are kept)", [
        "bench", "--store", W + "/good.zarr", "--size", "4000x4000", "--window", "256"], "already holds labels"),
    # report, evaluate, info
    ("report: store without labels", lambda t, w: [
        "report", t / "nl.zarr" if ingest(w / "slab.png", t / "nl.zarr") else None], "no labels in the store"),
    ("report: no pixel size", lambda t, w: ["report", _store_without_pixel_size(t, w)], "--pixel-size UM"),
    ("report: existing report without --overwrite", ["report", W + "/good.zarr", "-o", W + "/good-report"],
     "exists; pass --overwrite"),
    ("report: negative traverse spacing", ["report", W + "/good.zarr", "-o", T + "/r", "--traverse-spacing", "-1"],
     "--traverse-spacing must be a positive number"),
    ("report: --region a mask PNG cut short (no partial region is left in the store)", lambda t, w: [
        "report", w / "good.zarr", "-o", t / "r", "--region", _truncated_mask(t)], "decoding failed"),
    ("report: --traverse-spacing wider than the section (no traverse)", [
        "report", W + "/good.zarr", "-o", T + "/r", "--traverse-spacing", "50"], "no traverse line crosses"),
    ("evaluate: store without labels", lambda t, w: [
        "evaluate", t / "nl.zarr" if ingest(w / "slab.png", t / "nl.zarr", truth=w / "slab.truth.png") else None],
     "labels"),
    ("info: path that does not exist", ["info", T + "/none.zarr"], "no such store"),
    # import
    ("import gimp: folder without Image/ and Semantic/", ["import", "gimp", T, T + "/out"], "expected the folders"),
    ("import pairs: image without a mask", lambda t, w: [
        "import", "pairs", w, (t / "masks").mkdir() or t / "masks", t / "out"], "no mask for"),
    ("import camvid: not a CamVid folder", ["import", "camvid", W, T + "/out"], "not a CamVid folder"),
]


@pytest.mark.parametrize("case,args,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, world, record_property, case, args, expected):
    record_property("reliability", ("bad input", case, f"error line says “{expected}”"))
    before = snapshot(world / "good.zarr", world / "good-report")
    args = args(tmp_path, world) if callable(args) else [a.format(world=world, tmp=tmp_path) for a in args]
    proc = run_cli(*args)
    line = error_line(proc)
    assert proc.returncode == 2, (proc.returncode, line)
    assert expected.lower() in line.lower(), line
    assert snapshot(world / "good.zarr", world / "good-report") == before
    assert not (tmp_path / "pwned").exists()
    leftovers = [p for p in tmp_path.rglob("*") if "partial" in p.name or p.name == "o.zarr" or p.suffix == ".lock"
                 or (p.name == "o.onnx" and p.read_bytes() != b"keep me") or p.name.startswith(".o.onnx")
                 or (p.parent.name == "out" and p.suffix == ".zarr") or p.name == "run"]
    assert not leftovers, leftovers


def test_scheduler_address_that_is_not_a_dask_scheduler(tmp_path, world, record_property):
    """A dashboard's HTTP port given as --scheduler accepts the connection and never speaks dask: the command
    gives up with one line instead of waiting for ever."""
    import http.server
    import threading

    record_property("reliability", ("bad input", "infer: --scheduler the port of an HTTP server (silent to dask)",
                                    "one line within ~3 s (it never greets as a dask scheduler does), nothing touched"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        before = snapshot(world / "good.zarr")
        t0 = time.perf_counter()
        proc = run_cli("infer", world / "good.zarr", "--overwrite", "--scheduler",
                       f"tcp://127.0.0.1:{server.server_address[1]}", timeout=120)
        assert "did not greet as a dask scheduler" in error_line(proc)
        assert time.perf_counter() - t0 < 15  # was ~21 s: dask's handshake timeout
        assert snapshot(world / "good.zarr") == before
    finally:
        server.shutdown()


def test_a_file_name_that_is_not_utf8_goes_through(tmp_path, world, record_property):
    record_property("reliability", ("bad input", "a legal non-UTF-8 file name (café in Latin-1)",
                                    "ingest, infer and report work; names shown with U+FFFD in reports"))
    name = os.fsdecode(b"caf\xe9")
    image = tmp_path / f"{name}.png"
    image.write_bytes((world / "slab.png").read_bytes())
    assert run_cli("infer", image, "--workers", "0", "--window", "256", "--overlap", "64").returncode == 0
    proc = run_cli("report", tmp_path / f"{name}.zarr")
    assert proc.returncode == 0, proc.stderr
    assert "caf\ufffd.zarr" in (tmp_path / f"{name}-report" / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("command,out", [("report", "."), ("export-ome", "."), ("report", ".."),
                                         ("ingest", ".")])
def test_output_that_is_the_current_folder(tmp_path, world, record_property, command, out):
    """``-o .`` with --overwrite would replace the folder the user stands in (and used to fail with "Device or
    resource busy", leaving a whole ``..partial-PID`` copy behind): refused before anything is written."""
    record_property("reliability", ("bad input", f"{command}: the output is the current folder or holds it "
                                                 f"({out}), --overwrite", "one line; the folder and its files kept"))
    here = tmp_path / "here"
    here.mkdir()
    (here / "keep.txt").write_text("mine")
    first = ["ingest", world / "slab.png", out] if command == "ingest" else [command, world / "good.zarr", "-o", out]
    before = snapshot(world / "good.zarr")
    proc = run_cli(*first, "--overwrite", cwd=here)
    assert proc.returncode == 2 and "is the current folder or holds it" in error_line(proc)
    assert (here / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["here", "keep.txt"]
    assert snapshot(world / "good.zarr") == before


def test_tiny_and_thin_synthetic_slabs_are_written_and_ingested(tmp_path, record_property):
    """synth --size 100x100 (and 64x64, 3000x40) used to fail in libvips ("tile size out of range": tiles larger
    than the image); a slab that small is written in strips and ingests."""
    record_property("reliability", ("bad input", "synth: slabs smaller than a tile (100x100, 64x64 TIFF, 3000x40)",
                                    "written and ingested, no error"))
    for name, size in (("s.png", "100x100"), ("s.tif", "64x64"), ("thin.png", "3000x40")):
        assert run_cli("synth", tmp_path / name, "--size", size).returncode == 0, name
        proc = run_cli("ingest", tmp_path / name, tmp_path / f"{name}.zarr")
        assert proc.returncode == 0, proc.stderr
        w, h = (int(v) for v in size.split("x"))
        assert tuple(__import__("zarr").open_group(str(tmp_path / f"{name}.zarr"), mode="r")["image"].shape) == \
            (h, w, 3)


def test_resume_after_the_model_changed_in_the_config(tmp_path, world, record_property):
    record_property("reliability", ("bad input", "train --resume after model.width changed in the config",
                                    "one line naming model.width and both values; the run's checkpoint kept"))
    cfg = _config(tmp_path, world, iterations=3)
    assert run_cli("train", "--config", cfg, "--stop-at", "1").returncode == 0
    before = (tmp_path / "run" / "last.pt").read_bytes()
    cfg = _config(tmp_path, world, iterations=3, model={"arch": "light_unet", "width": 8})
    line = error_line(run_cli("train", "--config", cfg, "--resume"))
    assert "model.width 4" in line and "now says 8" in line, line
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_finished_labels_are_refused_before_the_model_is_loaded(tmp_path, world, record_property):
    """infer on a store whose labels are complete, without --overwrite: said before any model is read or cluster
    started (it used to load the model first: 17.6 s and 1 GB for an imported ResNet-50)."""
    record_property("reliability", ("bad input", "infer: finished labels without --overwrite, with a model given",
                                    "refused before the model is read (no model line, no worker)"))
    proc = run_cli("infer", world / "good.zarr", "--workers", "2", "--model", BUNDLED)
    assert "labels are already complete" in error_line(proc)
    assert "model:" not in proc.stdout and "dashboard" not in proc.stdout + proc.stderr
