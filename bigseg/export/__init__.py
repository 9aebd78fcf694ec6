"""Portable models: export a checkpoint to ONNX (fp32 or int8) or TorchScript, verified against PyTorch.

An export carries the checkpoint's metadata (architecture, class table, training window, normalisation, the
checkpoint's sha256) so that it is self-contained: in ONNX as the ``bigseg`` metadata property (JSON), in
TorchScript as the extra file ``bigseg.json``. The normalisation is part of the exported graph (see
:mod:`bigseg.models`): input is RGB float in [0, 1], shape (B, 3, H, W), any B, H, W; output logits (B, C, H, W).

Every export is checked before it is written: the exported model and PyTorch run on the same inputs (random
images of two sizes other than the tracing size, so a size baked into the graph is caught) and the largest
absolute logit difference is printed; above ``tolerance`` the export fails and nothing is written. An int8
model (ONNX Runtime static quantization, QDQ, per-channel weights, calibrated on windows of the user's own
stores) is checked on held-out windows of those stores: label agreement with PyTorch is printed and must
reach ``min_agreement``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np

from bigseg import store as st
from bigseg.checkpoint import file_digest, load
from bigseg.errors import BigsegError
from bigseg.modelfile import EXPORT_FORMAT, META_KEY, graph_digest, onnx_available, ort_session
from bigseg.paths import refuse_overlap
from bigseg.results import ExportResult

FORMATS = ("onnx", "torchscript")
EXPORTERS = ("dynamo", "legacy")
"""torch's ONNX exporters: ``dynamo`` (torch.export-based, torch's default and future; 20-30 s for a torchvision
model) and ``legacy`` (TorchScript-based, deprecated by torch, ~30x faster). bigseg falls back to the legacy one
when the dynamo exporter fails on a model."""
TRACE_SHAPE = (1, 3, 192, 256)
CHECK_SHAPES = ((2, 3, 160, 224), (1, 3, 288, 200))
QAT_POOL_WINDOWS = 48  # uint8 windows (up to 512²) held for --qat's crops: ~38 MB, whatever the stores' size


# ---------------------------------------------------------------------------------------------------------
# exporting


def export(checkpoint: str | os.PathLike, out: str | os.PathLike, fmt: str = "onnx", *, int8: bool = False,
           calibrate: list | tuple = (), tolerance: float = 1e-3, min_agreement: float = 0.99,
           calibration_windows: int = 32, exporter: str = "dynamo", fp16_storage: bool = False,
           qat: list | tuple = (), qat_steps: int = 300, qat_lr: float = 1e-5, overwrite: bool = False,
           echo=print) -> ExportResult:
    """Export ``checkpoint`` to ``out`` (ONNX or TorchScript), verified; returns what was written and checked.

    ``fp16_storage``: the ONNX file stores its weights as float16, each behind a Cast to float32 that ONNX Runtime
    folds when it loads the file: half the file, the same fp32 arithmetic (the check against PyTorch runs on
    the stored file, so give a ``tolerance`` that admits float16 weights' rounding, e.g. 0.05).

    ``qat``: stores whose images a quantization-aware fine-tune (:mod:`bigseg.export.qat`, ``qat_steps`` steps at
    ``qat_lr``) draws its crops from before the int8 export; the labels are still checked against the original
    fp32 model, beside those of post-training quantization alone."""
    import torch

    if fmt not in FORMATS:
        raise BigsegError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if exporter not in EXPORTERS:
        raise BigsegError(f"unknown ONNX exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if int8 and fmt != "onnx":
        raise BigsegError("--int8 applies to ONNX exports (ONNX Runtime quantization); use --format onnx")
    if fp16_storage and (int8 or fmt != "onnx"):
        raise BigsegError("--fp16-storage applies to fp32 ONNX exports (not --int8, not TorchScript)")
    if qat and not int8:
        raise BigsegError("--qat fine-tunes for an int8 export: add --int8 (and --calibrate STORE)")
    if qat and qat_steps < 1:
        raise BigsegError(f"--qat-steps must be at least 1, got {qat_steps}")
    if qat and not (0 < qat_lr < 1):
        raise BigsegError(f"--qat-lr must be between 0 and 1, got {qat_lr:g}")
    if int8 and calibration_windows < 1:
        raise BigsegError(f"--calibration-windows must be at least 1, got {calibration_windows}")
    if int8 and not calibrate:
        raise BigsegError("--int8 needs --calibrate STORE (one or more slab stores of images like those the model "
                          "will segment): int8 ranges are measured on real windows, not guessed")
    out = Path(out)
    refuse_overlap(out, "-o", ("checkpoint", checkpoint), *[("calibration store", s) for s in calibrate],
                   *[("--qat store", s) for s in qat])
    if out.exists() and not overwrite:
        raise BigsegError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise BigsegError(f"{out.parent}: no such folder")
    st.remove_stale_partials(out.parent, out.name)  # what an export killed with -9 left
    if fmt == "onnx":
        onnx_available()
    model, meta = load(checkpoint)  # safe load; errors name what does not fit
    window = int(meta.get("window") or 512)
    calib = _store_windows(calibrate, calibration_windows * 2, min(window, 512)) if int8 else None
    teacher, qat_record = model, None
    if qat:
        from bigseg.export.qat import qat_finetune

        assert calib is not None  # made above: --qat needs --int8
        pool = _store_windows(qat, QAT_POOL_WINDOWS, min(window, 512), seed=1, raw=True)
        model, qat_record = qat_finetune(teacher, pool, calib[:calibration_windows], steps=qat_steps, lr=qat_lr,
                                         stores=qat, echo=echo)
    export_meta = {k: v for k, v in meta.items() if k not in ("config",)}
    export_meta.update({
        "format": EXPORT_FORMAT, "version": 1, "precision": "int8" if int8 else "fp32",
        "source_checkpoint_sha256": file_digest(checkpoint), "window": window,
        "input": "RGB float32 in [0, 1], shape (batch, 3, height, width); normalisation is inside the model",
        "normalisation": {"mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist(),
                          "channel_order": "BGR" if model.bgr else "RGB",
                          "applied": "inside the model: RGB input reordered to the channel order, then "
                                     "(x - mean) / std"},
        "output": "logits float32, shape (batch, classes, height, width)",
    })
    torch.manual_seed(0)
    with st.output_lock(out), _partial_dir(out) as tmp:
        tmp_out = Path(tmp) / out.name
        if fmt == "onnx":
            fp32 = Path(tmp) / "fp32.onnx"
            export_meta["exporter"] = _export_onnx(model, fp32, exporter)
            if fp16_storage:
                export_meta["weights_stored_as"] = _fp16_storage(fp32)
            runner, label = _onnx_runner(fp32), "ONNX"
        else:
            _export_torchscript(model, tmp_out, export_meta)
            runner, label = _torchscript_runner(tmp_out), "TorchScript"
        check = _compare(model, runner, tolerance, str(checkpoint))
        echo(f"{label} export matches PyTorch: max abs logit difference {check['max_abs_diff']:.2e} "
             f"(tolerance {tolerance:g}) on inputs {check['shapes']}")
        verified = {"fp32_max_abs_logit_diff": check["max_abs_diff"], "tolerance": tolerance}
        if fmt == "onnx":
            if int8:
                assert calib is not None  # made above when int8
                held_out = calib[calibration_windows:]
                _quantize_int8(fp32, tmp_out, calib[:calibration_windows], Path(tmp))
                agree = _label_agreement(teacher, _onnx_runner(tmp_out), held_out)
                echo(f"int8 model: labels agree with PyTorch fp32 on {100 * agree['agreement']:.2f} % of pixels of "
                     f"{len(held_out)} held-out windows (max abs logit difference {agree['max_abs_diff']:.3f})")
                if qat_record is not None:
                    plain = _ptq_agreement(teacher, exporter, calib[:calibration_windows], held_out, Path(tmp))
                    echo(f"post-training quantization alone: {100 * plain['agreement']:.2f} % "
                         f"(max abs logit difference {plain['max_abs_diff']:.3f})")
                if agree["agreement"] < min_agreement:
                    raise BigsegError(f"int8 quantization changes {100 * (1 - agree['agreement']):.2f} % of labels "
                                      f"(more than {100 * (1 - min_agreement):.2f} %); use the fp32 export")
                verified.update({"int8_label_agreement": agree["agreement"], "int8_check_windows": len(held_out),
                                 "calibration_windows": calibration_windows,
                                 "calibration_stores": [str(s) for s in calibrate],
                                 "graph_sha256": graph_digest(tmp_out)})  # the graph these figures are of
                if qat_record is not None:
                    verified["qat"] = qat_record.to_dict()
                    verified["int8_label_agreement_without_qat"] = plain["agreement"]
            else:
                os.replace(fp32, tmp_out)
            export_meta["verified"] = verified
            _set_onnx_meta(tmp_out, export_meta)
        os.replace(tmp_out, out)
    return ExportResult(path=str(out), format=fmt, precision=export_meta["precision"], arch=meta["arch"],
                        bytes=out.stat().st_size, verified=verified)


@contextlib.contextmanager
def _partial_dir(out: Path):
    """A working folder ``.NAME.partial-PID`` beside ``out``, removed afterwards (and by the next export, if this
    one is killed)."""
    import shutil

    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and deprecation warnings; keep the CLI's output to bigseg's own lines."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _export_onnx(model, path: Path, exporter: str = "dynamo") -> str:
    """Write ``model`` as ONNX with dynamic batch, height and width; returns the exporter that did it."""
    import torch

    x = torch.rand(*TRACE_SHAPE)
    names = {"input_names": ["image"], "output_names": ["logits"]}  # the same in both exporters
    dynamo_error = None
    if exporter == "dynamo":
        try:
            from torch.export import Dim

            dims = {0: Dim("batch", min=1, max=1024), 2: Dim("height", min=32, max=8192),
                    3: Dim("width", min=32, max=8192)}
            with _quiet():
                torch.onnx.export(model, (x,), str(path), dynamo=True, dynamic_shapes=(dims,), external_data=False,
                                  verbose=False, input_names=names["input_names"],
                                  output_names=names["output_names"])
            return "dynamo"
        except Exception as exc:  # the torch.export-based exporter can't take every model: try TorchScript's
            dynamo_error = f"{str(exc).splitlines()[0][:200]}; then "
    axes = {0: "batch", 2: "height", 3: "width"}
    try:
        with _quiet():
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                              dynamic_axes={"image": axes, "logits": axes}, input_names=names["input_names"],
                              output_names=names["output_names"])
    except Exception as exc:
        raise BigsegError(f"ONNX export failed ({dynamo_error or ''}{str(exc).splitlines()[0][:200]})") from exc
    return "legacy"


def _fp16_storage(path: Path) -> str:
    """Rewrite an ONNX file so that its float32 weights (of 16 values or more) are stored as float16, each read
    through a Cast to float32 (constant-folded by ONNX Runtime at load); returns what was done, in words."""
    import onnx
    import onnx.numpy_helper as nh
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    casts, halves, n = [], [], 0
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < 16:
            continue
        half = nh.from_array(nh.to_array(init).astype(np.float16), f"{init.name}__fp16")
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_fp32"))
        halves.append(half)
        graph.initializer.remove(init)
        n += 1
    graph.initializer.extend(halves)
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.save(model, str(path))
    return f"float16 ({n} weight tensors, each cast to float32 at load)"


def _set_onnx_meta(path: Path, meta: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    model.doc_string = f"bigseg export of {meta['arch']} ({meta['precision']}); metadata in '{META_KEY}'"
    onnx.save(model, str(path))


def _export_torchscript(model, path: Path, meta: dict) -> None:
    import torch

    with _quiet(), torch.no_grad():  # torch.jit is deprecated in favour of torch.export, but libtorch loads it
        traced = torch.jit.trace(model, torch.rand(*TRACE_SHAPE), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"bigseg.json": json.dumps(meta)})


def _onnx_runner(path: Path):
    session = ort_session(path)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _torchscript_runner(path: Path):
    import torch

    with _quiet():
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(x):
        with torch.no_grad():
            return loaded(torch.from_numpy(x)).numpy()

    return run


def _compare(model, runner, tolerance: float, source: str) -> dict:
    import torch

    worst = 0.0
    rng = np.random.default_rng(0)
    for shape in CHECK_SHAPES:
        x = rng.random(shape, dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = runner(x)
        if got.shape != ref.shape:
            raise BigsegError(f"{source}: the export gives logits of shape {got.shape} for input {shape}, "
                              f"PyTorch {ref.shape}; not written")
        worst = max(worst, float(np.abs(got - ref).max()))
    if not worst <= tolerance:
        raise BigsegError(f"{source}: the export differs from PyTorch by up to {worst:.3g} in the logits (tolerance "
                          f"{tolerance:g}); not written")
    return {"max_abs_diff": worst, "shapes": [list(s) for s in CHECK_SHAPES]}


def _store_windows(stores, n: int, size: int, seed: int = 0, raw: bool = False) -> list[np.ndarray]:
    """``n`` random ``size`` x ``size`` windows (float NCHW in [0, 1], batch 1) from the stores' images; ``raw``:
    as stored (uint8 HWC)."""
    images = []
    for s in stores:
        group = st.open_store(s)
        images.append(st.array(group, "image"))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image = images[i % len(images)]
        h, w = image.shape[:2]
        sh, sw = min(size, h), min(size, w)
        y, x = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
        crop = np.asarray(image[y : y + sh, x : x + sw])
        if raw:
            out.append(crop)
            continue
        out.append(np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0)
    return out


def _quantize_int8(fp32: Path, out: Path, windows: list[np.ndarray], tmp: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(windows)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {"image": x}

    prepared = tmp / "prepared.onnx"
    with _quiet():
        try:
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimisation; quantize the plain export if it fails
            prepared = fp32
        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True,
                        nodes_to_exclude=logit_nodes(prepared),
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})


ALL_INPUTS = {"Add", "Sum", "Concat", "Mul", "Sub"}  # ops whose every input carries the logits' data


def logit_nodes(path: Path) -> list[str]:
    """The nodes that make the logits: the convolutions that produce them and what follows them to the output
    (resizing, adding a refinement). They stay float in an int8 export: rounded to 256 steps over their
    calibrated range (~0.1 logit), the logits themselves moved labels where two classes are close -- two fifths of
    the bundled model's int8 label changes (measured 2026-12-03; RESULTS.md) -- for the cost of one 1 x 1
    convolution at float."""
    import onnx

    graph = onnx.load(str(path)).graph
    made_by = {o: n for n in graph.node for o in n.output}
    names: list[str] = []
    stack = [o.name for o in graph.output]
    while stack:
        node = made_by.get(stack.pop())
        if node is None or node.name in names:
            continue
        names.append(node.name)
        if node.op_type != "Conv":  # stop at the convolutions; follow the data, not shapes
            stack.extend(i for i in (node.input if node.op_type in ALL_INPUTS else node.input[:1]) if i)
    return names


def _ptq_agreement(model, exporter: str, calibration: list[np.ndarray], held_out: list[np.ndarray],
                   tmp: Path) -> dict:
    """Post-training quantization of ``model`` alone, on the same windows: what ``--qat`` is measured against."""
    plain = tmp / "ptq"
    plain.mkdir()
    _export_onnx(model, plain / "fp32.onnx", exporter)
    _quantize_int8(plain / "fp32.onnx", plain / "int8.onnx", calibration, plain)
    return _label_agreement(model, _onnx_runner(plain / "int8.onnx"), held_out)


def _label_agreement(model, runner, windows: list[np.ndarray]) -> dict:
    import torch

    same = total = 0
    worst = 0.0
    for x in windows:
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = runner(x)
        same += int((got.argmax(1) == ref.argmax(1)).sum())
        total += ref.shape[0] * ref.shape[2] * ref.shape[3]
        worst = max(worst, float(np.abs(got - ref).max()))
    return {"agreement": same / total, "max_abs_diff": worst}
