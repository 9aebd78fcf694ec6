"""The ``bigseg`` command: one thin click command per verb; the work is done by the library modules."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path

import click

from bigseg.defaults import DEFAULT_CHUNK, DEFAULT_ENTRAPPED_MM
from bigseg.errors import BigsegError, Terminated, raise_terminated
from bigseg.infer.options import DEFAULT_OVERLAP, DEFAULT_WINDOW, TTA
from bigseg.train.adapt_options import COLOUR_PRIORS, EDGE_RULES, AdaptOptions


class _Ctx:
    debug = False
    progress: bool | None = None


def _progress() -> bool:
    """--progress / --no-progress, else on unless BIGSEG_PROGRESS=0 (a bar on a terminal, log lines elsewhere)."""
    from bigseg.progress import default_enabled

    return default_enabled() if _Ctx.progress is None else _Ctx.progress


def _fail(message: str, code: int = 2):
    click.echo(f"bigseg: error: {message}", err=True)
    sys.exit(code)


def _stopped(message: str, code: int):
    """An interrupted run's one line; then, unless --debug, whatever the libraries print while they tear down
    (dask's cluster closing at exit, its comms' unretrieved task errors) goes to /dev/null: it follows the line
    that said what happened, and told the user nothing more."""
    click.echo(f"bigseg: error: {message}", err=True)
    if not _Ctx.debug:
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    sys.exit(code)


def _exit_at_once_on_signal(code: int) -> None:
    """Once the command has finished, a SIGTERM or Ctrl-C during the process's teardown (dask's cluster closing,
    threads joining, atexit) ends it at once with the command's own status and no more words: the work is done or
    already said to be stopped, and the signal asked for an end. (Without this, Python restores the default
    handlers while it finalises, and a SIGTERM there ended a finished run with status -15; one a moment earlier
    printed a traceback from an atexit callback.)"""
    import signal

    def now(signum, frame):
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)

    signal.signal(signal.SIGTERM, now)
    signal.signal(signal.SIGINT, now)


def main(argv=None):
    """Entry point: BigsegError becomes one line on stderr and exit status 2 (traceback with --debug); whatever the
    outcome, a signal after the command has finished ends the process with that outcome's status."""
    try:
        _main(argv)
    except SystemExit as exc:
        code = exc.code
        _exit_at_once_on_signal(code if isinstance(code, int) else (0 if code is None else 1))
        raise
    _exit_at_once_on_signal(0)


def _main(argv=None):
    import signal

    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        cli.main(args=argv, prog_name="bigseg", standalone_mode=False)
    except Terminated:
        _stopped("terminated (SIGTERM); run the same command again to resume", 143)
    except click.exceptions.Abort as exc:  # click turns Ctrl-C (and our SIGTERM) into Abort
        if isinstance(exc.__cause__, Terminated):
            _stopped("terminated (SIGTERM); run the same command again to resume", 143)
        _stopped("interrupted; run the same command again to resume", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BigsegError as exc:
        if _Ctx.debug:
            raise
        _fail(str(exc))
    except KeyboardInterrupt:
        _stopped("interrupted; run the same command again to resume", 130)
    except OSError as exc:  # disk full, file too large, permissions, I/O errors: the system's words, one line
        if _Ctx.debug:
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        _fail(f"file system error: {exc.strerror or exc}{where} (outputs in progress were not marked complete)")
    except Exception as exc:  # an unexpected failure: still one line, unless --debug
        if _Ctx.debug:
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (run 'bigseg --debug ...' for the traceback)", 1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--progress/--no-progress", default=None,
              help="Show progress: a bar on a terminal, a line every 10 s in logs [default: on].")
@click.version_option(package_name="bigseg")
def cli(debug, progress):
    """bigseg: semantic segmentation of gigapixel images (concrete sections, road scenes, slides, maps)."""
    _Ctx.debug = debug
    _Ctx.progress = progress
    if progress is not None:  # for everything this command runs, in this process or its workers
        os.environ["BIGSEG_PROGRESS"] = "1" if progress else "0"
    from bigseg.cluster import set_debug

    set_debug(debug)


def _parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise BigsegError(f"--size must be WIDTHxHEIGHT of positive numbers (e.g. 4000x3000), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _style_help() -> str:
    from bigseg.synth.styles import HELD_OUT, STYLES

    trained = [n for n in STYLES if n not in HELD_OUT]
    return ("classic (the original generator), random (every parameter drawn from --seed), "
            "random-N (drawn from N, the same look at any --seed), "
            f"{', '.join(trained)}, or a held-out style: {', '.join(HELD_OUT)}.")


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--size", default="4000x3000", show_default=True, help="WIDTHxHEIGHT in pixels.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--style", default="classic", show_default=True, help="Look of the section: " + _style_help())
@click.option("--truth", type=click.Path(dir_okay=False), help="Truth mask path [default: beside OUT].")
@click.option("--pixel-size", type=float, help="Micrometres per pixel [default: the style's; classic 10].")
@click.option("--aggregate", type=float, help="Target stone area fraction [default: the style's; classic 0.68].")
@click.option("--air", type=float, help="Target air-void area fraction [default: the style's; classic 0.05].")
def synth(out, size, seed, style, truth, pixel_size, aggregate, air):
    """Write a synthetic polished concrete section OUT (.tif/.png/.jpg) and its exact truth mask."""
    from bigseg.synth import SynthParams, synthesize

    w, h = _parse_size(size)
    params = SynthParams(w, h, seed=seed, pixel_size_um=pixel_size, aggregate_fraction=aggregate,
                         air_fraction=air, style=style)
    s = synthesize(out, params, truth=truth, progress=_progress())
    click.echo(f"wrote {s['image']} ({w}x{h}, seed {seed}, style {s['style']}, {s['pixel_size_um']:.3g} um/px) "
               f"and truth {s['truth']}")
    f, t = s["fractions"], s["targets"]
    click.echo(
        f"truth fractions: paste {f['paste']:.4f}  stone {f['stone']:.4f}  void {f['void']:.4f}  "
        f"(targets: stone {t['stone']:.3g}, void {t['void']:.3g})"
    )


@cli.command()
@click.argument("image", type=click.Path())
@click.argument("store", type=click.Path())
@click.option("--truth", type=click.Path(), help="Ground-truth mask of the same size.")
@click.option("--pixel-size", type=float, help="Micrometres per pixel [default: from the file's resolution].")
@click.option("--chunk", default=DEFAULT_CHUNK, show_default=True, type=int,
              help="Chunk side in pixels (a power of two gives the preview all its levels; with others it stops at the "
                   "largest power of two that divides a strip of chunk rows).")
@click.option("--overwrite", is_flag=True, help="Replace an existing store.")
@click.option("--autorotate/--no-autorotate", default=True, show_default=True,
              help="Turn the picture as its EXIF/TIFF orientation tag says (as viewers do), or keep the file's order.")
def ingest(image, store, truth, pixel_size, chunk, overwrite, autorotate):
    """Stream IMAGE (JPEG/PNG/TIFF/BigTIFF) into the zarr slab store STORE."""
    from bigseg.ingest import ingest as run

    s = run(image, store, truth=truth, pixel_size=pixel_size, chunk=chunk, overwrite=overwrite,
            progress=_progress(), autorotate=autorotate)
    if s.autorotated:
        click.echo(f"turned as the file's orientation tag ({s.orientation}) says; --no-autorotate keeps the "
                   "file's order")
    px = f"{s.pixel_size_um:.3g} um/px" if s.pixel_size_um else "pixel size unknown (use --pixel-size)"
    click.echo(f"ingested {s.image} -> {s.store}: {s.width}x{s.height}, chunk {s.chunk}, {px}"
               + (f", truth {s.truth}" if s.truth else ""))


@cli.command("synth-set")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--train", "n_train", default=6, show_default=True, type=int, help="Number of training slabs.")
@click.option("--val", "n_val", default=2, show_default=True, type=int, help="Number of validation slabs.")
@click.option("--size", default=2048, show_default=True, type=int, help="Side of each square slab (px).")
@click.option("--seed", default=100, show_default=True, type=int)
@click.option("--style", default="classic", show_default=True,
              help="classic, random (a style drawn per slab) or a named training style.")
@click.option("--overwrite", is_flag=True)
def synth_set(out_dir, n_train, n_val, size, seed, style, overwrite):
    """Make a synthetic training set: OUT_DIR/train/*.zarr and OUT_DIR/val/*.zarr with truth."""
    from bigseg.synth import make_training_set

    make_training_set(out_dir, n_train, n_val, size, seed, overwrite, style=style, echo=click.echo,
                      progress=_progress())


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(),
              help="YAML training config: a file, or the name of a config shipped with bigseg (synthetic-concrete, "
              "synthetic-concrete-finetune, generalization-light-unet, ...; a wrong name lists them all).")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--stop-at", type=int, help="Checkpoint and stop after this many iterations.")
@click.option("--time-limit", type=float, help="Checkpoint and stop after this many seconds.")
@click.option("--find-lr", is_flag=True, help="Only sweep the learning rate (a short run, no checkpoint): writes "
              "OUT/lr-finder.png and prints a suggested optimizer.lr.")
@click.option("--find-lr-steps", default=100, show_default=True, type=int, help="Steps of the --find-lr sweep.")
def train(config_path, resume, stop_at, time_limit, find_lr, find_lr_steps):
    """Train a model on slab stores with truth, or on synthetic sections (the shipped configs: configs/*.yaml in a
    clone, by name after pip install)."""
    from bigseg.train.config import load_config

    cfg = load_config(config_path)  # a config's mistake is one line before torch is imported
    if find_lr:
        from bigseg.train.lr_finder import find_lr as sweep

        r = sweep(cfg, steps=find_lr_steps, echo=click.echo, progress=_progress())
        click.echo(f"swept {len(r['lrs'])} steps from {r['lrs'][0]:.1e} to {r['lrs'][-1]:.1e}; plot: {r['plot']}")
        click.echo(f"suggested optimizer.lr: {r['suggestion']:.2g}" if r["suggestion"] else
                   "no suggestion: the loss did not fall; try more --find-lr-steps")
        return
    from bigseg.train.loop import train as run

    s = run(cfg, resume=resume, stop_at=stop_at, echo=click.echo, progress=_progress(), time_limit=time_limit)
    click.echo(f"trained {s['iterations']}/{s['of']} iterations in {s['seconds']:.0f} s "
               f"({s['it_per_second']:.2f} it/s); loss {s['first_loss']:.4f} -> {s['last_loss']:.4f}")
    if s["val"]:
        click.echo("validation IoU: " + ", ".join(f"{k} {v:.4f}" for k, v in s["val"]["iou"].items() if v is not None)
                   + f"; mean {s['val']['mean_iou']:.4f}")
    if s["model"]:
        click.echo(f"model for inference: {s['model']}")


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("-o", "--out", type=click.Path(), help="Store for an image INPUT [default: INPUT with .zarr].")
@click.option("--model", type=click.Path(), help="Checkpoint or ONNX export, or a bundled model: light_unet (the "
              "default), deeplabv3, or deeplabv3plus-adapt (a base for bigseg adapt, not for reading as it is).")
@click.option("--backend", type=click.Choice(["torch", "onnxruntime"]),
              help="Run the model with torch or ONNX Runtime [default: onnxruntime for a .onnx model, and on a CPU for "
              "a checkpoint whose verified export is ready (the bundled models ship one); else torch].")
@click.option("--workers", type=int, help="Local worker processes [default: cores/2, or 0 where that is 1; GPUs "
              "with cuda]; 0: this process (threads).")
@click.option("--scheduler", help="Address of an existing dask scheduler, e.g. tcp://host:8786.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--window", default=DEFAULT_WINDOW, show_default=True, type=int, help="Window side (px).")
@click.option("--overlap", default=DEFAULT_OVERLAP, show_default=True, type=int, help="Overlap between windows (px).")
@click.option("--batch", type=int, help="Windows per forward pass [default: 2 on CPU, 8 on CUDA].")
@click.option("--threads", type=int, help="Torch threads per CPU worker [default: cores / workers].")
@click.option("--stripe", type=int, help="Width (px) of the column stripes processed at a time; memory grows with "
              "it, not with the image [default: 8192, at least 4 batches of windows].")
@click.option("--probabilities", is_flag=True, help="Also write class probabilities (uint8, x255).")
@click.option("--stats", "stats_path", type=click.Path(dir_okay=False), help="Write the statistics as JSON here.")
@click.option("--overwrite", is_flag=True, help="Recompute labels that already exist (they stay until the new ones "
              "are complete).")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Where ONNX exports of checkpoints are kept [default: $XDG_CACHE_HOME/bigseg/exports].")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model in each worker (large GPU jobs).")
@click.option("--precision", type=click.Choice(["fp32", "int8"]),
              help="int8: the checkpoint's calibrated int8 export (shipped for the bundled model, or made with "
              "'bigseg export --int8'), ~1.2x faster whole on a 2-core CPU, run only when its measured accuracy allows "
              "[default: fp32, or what an .onnx model is].")
@click.option("--tta", default="none", show_default=True,
              type=click.Choice(TTA),
              help="Test-time augmentation: average each window's logits with its left-right mirror's (flip: 2x the "
              "model's time), with all three mirrors' (flip4: 4x), over scales 0.75, 1 and 1.25 (multiscale: ~3.1x) "
              "or those scales each with its mirror (flip-multiscale: ~6.3x); memory per window (RESULTS.md).")
@click.option("--object-rule/--no-object-rule", default=True, show_default=True,
              help="Apply the void-object rule a model adapted by 'bigseg adapt' learned from its strokes (void "
              "objects that look like what the strokes called paste or stone are relabelled); no effect on other "
              "models.")
@click.option("--grow-void-edges/--no-grow-void-edges", default=True, show_default=True,
              help="Where an adapted model's rule grows the voids it keeps to their edges (bigseg adapt's default): "
              "do so. --no-grow-void-edges keeps them as the rule left them, to compare where the labels already "
              "draw voids whole (the growth then makes them too large).")
def infer(input_path, out, model, backend, workers, scheduler, device, window, overlap, batch, threads, stripe,
          probabilities, stats_path, overwrite, cache_dir, compile_, precision, tta, object_rule, grow_void_edges):
    """Segment INPUT (an image file or a slab store) into the store's labels; print class statistics."""
    from bigseg.infer import InferOptions
    from bigseg.infer import infer as run
    from bigseg.report.stats import format_table

    if stats_path:  # checked before hours of work, not after
        from bigseg.paths import refuse_overlap

        refuse_overlap(stats_path, "--stats", ("input", input_path), ("store", out))
        folder = Path(stats_path).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise BigsegError(f"--stats {stats_path}: the folder {folder} does not exist or is not writable")
    opts = InferOptions(window=window, overlap=overlap, batch=batch, device=device, workers=workers,
                        scheduler=scheduler, threads=threads, stripe=stripe, probabilities=probabilities,
                        overwrite=overwrite, progress=_progress(), backend=backend, cache_dir=cache_dir,
                        compile=compile_, precision=precision, tta=tta, object_rule=object_rule,
                        grow_void_edges=grow_void_edges)
    s = run(input_path, out=out, model=model, options=opts, echo=click.echo)
    n, w = s.windows_computed, s.workers
    click.echo(f"labels written to {s.store}/labels: {s.width}x{s.height} px, {n} window{'s' * (n != 1)} in "
               f"{s.seconds:.1f} s ({s.megapixels_per_second:.2f} Mpx/s, "
               + (f"{w} worker{'s' * (w != 1)})" if w else "in this process)"))
    click.echo(format_table(s.stats))
    if "object_rule" in s.stats:
        r = s.stats["object_rule"]
        grown = (f" and grew the voids it kept to their edges by {r['grown_pixels']} px" if "grown_pixels" in r
                 else "")
        click.echo(f"the adapted model's object rule relabelled {r['relabelled_objects']} void objects or pieces "
                   f"({r['relabelled_pixels']} px){grown}; --no-object-rule leaves them as the network said")
    if stats_path:
        Path(stats_path).write_text(json.dumps(s.stats, indent=2))
        click.echo(f"statistics written to {stats_path}")


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="File to write (.onnx or .pt).")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True)
@click.option("--int8", is_flag=True, help="Quantize to int8 for CPU inference (ONNX Runtime, static, QDQ).")
@click.option("--calibrate", multiple=True, type=click.Path(),
              help="Slab store(s) whose images calibrate (and check) the int8 model; repeat for several.")
@click.option("--calibration-windows", default=32, show_default=True, type=int,
              help="Windows (up to 512², drawn at random from --calibrate) that set the int8 ranges; as many others "
              "check the int8 labels against fp32.")
@click.option("--tolerance", default=1e-3, show_default=True, type=float,
              help="Largest logit difference from PyTorch accepted (fp32 exports).")
@click.option("--exporter", type=click.Choice(["dynamo", "legacy"]), default="dynamo", show_default=True,
              help="torch's ONNX exporter: torch.export-based, or the deprecated TorchScript-based one (faster).")
@click.option("--fp16-storage", is_flag=True, help="Store the ONNX weights as float16 (half the file; cast to "
              "float32 when ONNX Runtime loads it); give a --tolerance like 0.05.")
@click.option("--qat", multiple=True, type=click.Path(),
              help="With --int8: fine-tune through a simulation of the int8 rounding first (quantization-aware), "
              "on crops of these stores' images, to give the fp32 model's own labels (no truth needed); for when "
              "plain int8 moves too many labels. Repeat for several stores.")
@click.option("--qat-steps", default=300, show_default=True, type=int, help="Steps of the quantization-aware "
              "fine-tune (4 crops of 256² each; ~0.2 s a step for the bundled model on 2 cores).")
@click.option("--qat-lr", default=1e-5, show_default=True, type=float, help="Its learning rate (Adam).")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def export(checkpoint, out, fmt, int8, calibrate, calibration_windows, tolerance, exporter, fp16_storage, qat,
           qat_steps, qat_lr, overwrite):
    """Export CHECKPOINT to ONNX or TorchScript with its metadata, verified against PyTorch."""
    from bigseg.export import export as run

    r = run(checkpoint, out, fmt, int8=int8, calibrate=list(calibrate), calibration_windows=calibration_windows,
            tolerance=tolerance, exporter=exporter, fp16_storage=fp16_storage, qat=list(qat), qat_steps=qat_steps,
            qat_lr=qat_lr, overwrite=overwrite, echo=click.echo)
    click.echo(f"wrote {r['path']} ({r['format']}, {r['precision']}, {r['arch']}, {r['bytes'] / 1e6:.1f} MB)")


@cli.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Calibrated checkpoint [default: MODEL in place].")
@click.option("--slabs", default=16, show_default=True, type=int, help="Validation slabs (random styles).")
@click.option("--size", default=2048, show_default=True, type=int, help="Side of each slab (px).")
@click.option("--workdir", type=click.Path(file_okay=False), help="Keep (and reuse) the validation slabs here.")
@click.option("--workers", default=0, show_default=True, type=int, help="dask workers (0: this process).")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
def calibrate(model, out, slabs, size, workdir, workers, overwrite):
    """Record how confident MODEL is on validation styles, so that reports can warn outside that range."""
    from bigseg.checkpoint import model_path
    from bigseg.trust import calibrate as run

    run(model_path(model), out, slabs=slabs, size=size, workdir=workdir, workers=workers, overwrite=overwrite,
        echo=click.echo)


@cli.command()
@click.argument("stores", nargs=-1, required=True, type=click.Path())
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the result as JSON.")
@click.option("--against", type=click.Choice(["truth", "annotations"]), default="truth", show_default=True,
              help="What the labels are scored against: the truth mask, or the strokes painted in the store "
              "(per-class accuracy on the painted pixels).")
def evaluate(stores, json_path, against):
    """Compare labels with truth (or painted strokes) in STORES: confusion matrix, per-class IoU, pixel accuracy."""
    from bigseg.report.evaluate import evaluate as run
    from bigseg.report.evaluate import format_confusion

    r = run(list(stores), reference=against)
    click.echo(format_confusion(r))
    if json_path:
        Path(json_path).write_text(json.dumps(r.to_dict(), indent=2))


@cli.group("import")
def import_():
    """Import annotated images (GIMP layers, CamVid, image/mask folders) as slab stores with truth, or trained
    weights (a torchvision state dict) as a bigseg checkpoint."""


def _import_options(f):
    f = click.option("--overwrite", is_flag=True, help="Replace existing stores.")(f)
    f = click.option("--chunk", default=DEFAULT_CHUNK, show_default=True, type=int, help="Chunk side (px).")(f)
    f = click.option("--pixel-size", type=float, help="Micrometres per pixel [default: from the files].")(f)
    return f


def _imported(r):
    click.echo(f"{len(r.stores)} stores ({', '.join(f'{k} {v}' for k, v in r.split.items())}); classes: "
               + ", ".join(f"{c.id} {c.name}" for c in r.classes))


def _floats(text: str | None, flag: str):
    if text is None:
        return None
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise BigsegError(f"{flag} takes one number or three (e.g. 0.35 or 0.485,0.456,0.406), got {text!r}") from None
    if len(values) not in (1, 3):
        raise BigsegError(f"{flag} takes one number or three, got {len(values)}")
    return values


@import_.command("weights")
@click.argument("file", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="The bigseg checkpoint to write.")
@click.option("--arch", default="auto", show_default=True, help="Architecture, or auto (from the names and shapes).")
@click.option("--classes", "classes", default=None, help="concrete (0 paste, 1 stone, 2 void; the default for 3 "
              "classes) or a colour table file (R G B name per line).")
@click.option("--mean", help="Normalisation mean the network was trained with: one value or three (its channel "
              "order) [default: ImageNet's].")
@click.option("--std", help="Normalisation std: one value or three [default: ImageNet's].")
@click.option("--bgr", is_flag=True, help="The network was trained on BGR input (OpenCV's channel order).")
@click.option("--window", default=DEFAULT_WINDOW, show_default=True, type=int, help="Crop size it was trained on.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
def import_weights(file, out, arch, classes, mean, std, bgr, window, overwrite):
    """A torchvision segmentation state dict (DeepLabV3, LR-ASPP, FCN) -> a bigseg checkpoint."""
    from bigseg.weights_import import import_weights as run

    r = run(file, out, arch=arch, classes=classes, mean=_floats(mean, "--mean"), std=_floats(std, "--std"),
            bgr=bgr, window=window, overwrite=overwrite, echo=click.echo)
    click.echo(f"wrote {r['path']}: bigseg infer IMAGE --model {r['path']}")


@import_.command("annotations")
@click.argument("store", type=click.Path())
@click.argument("mask", type=click.Path())
@click.option("--none-colour", default="0,0,0", show_default=True,
              help="For an RGB mask: the colour that means 'not annotated' (R,G,B); other colours are the class "
              "colours. Grey or indexed masks: class ids, 255 = not annotated.")
@click.option("--overwrite", is_flag=True, help="Replace annotations the store already holds.")
def import_annotations(store, mask, none_colour, overwrite):
    """A sparse mask MASK (PNG/TIFF, the store's size) -> STORE's annotations, for 'bigseg adapt'."""
    from bigseg.annotations import import_mask

    colour = _floats(none_colour, "--none-colour")
    if colour is None or len(colour) != 3 or any(not (0 <= v <= 255 and v == int(v)) for v in colour):
        raise BigsegError(f"--none-colour takes R,G,B of 0..255, got {none_colour!r}")
    import_mask(store, mask, overwrite=overwrite, none_colour=tuple(int(v) for v in colour), echo=click.echo)


@import_.command("gimp")
@click.argument("folder", type=click.Path())
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--threshold", default=0.2, show_default=True, type=float,
              help="A layer marks its class where it is brighter than this fraction of white.")
@click.option("--precedence", help="Class that wins where layers overlap [default: the higher id, void over stone]; "
              "'stone' is the original air-void trainer's rule.")
@_import_options
def import_gimp(folder, outdir, threshold, precedence, pixel_size, chunk, overwrite):
    """FOLDER/Image/<name>.png + FOLDER/Semantic/<id>_<class>/<name>.png -> OUTDIR/<name>.zarr."""
    from bigseg.datasets import import_gimp as run

    _imported(run(folder, outdir, threshold=threshold, pixel_size=pixel_size, chunk=chunk, overwrite=overwrite,
                  precedence=precedence, echo=click.echo))


@import_.command("camvid")
@click.argument("folder", type=click.Path())
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--void", "void_name", help="Name of the class imported as ignore [default: Void / Unlabelled].")
@_import_options
def import_camvid(folder, outdir, void_name, pixel_size, chunk, overwrite):
    """A CamVid folder (train/ + trainannot/ ..., or images/ + labels/ + codes.txt) -> OUTDIR/<split>/*.zarr."""
    from bigseg.datasets import import_camvid as run

    _imported(run(folder, outdir, void_name=void_name, pixel_size=pixel_size, chunk=chunk, overwrite=overwrite,
                  echo=click.echo))


@import_.command("pairs")
@click.argument("images", type=click.Path())
@click.argument("masks", type=click.Path())
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--colours", "colour_table", type=click.Path(dir_okay=False),
              help="Class table, 'R G B name' per line [default: concrete: 0 paste, 1 stone, 2 void].")
@click.option("--void", "void_name", help="Name of a class in --colours to import as ignore.")
@_import_options
def import_pairs(images, masks, outdir, colour_table, void_name, pixel_size, chunk, overwrite):
    """Images in IMAGES with masks of the same name in MASKS -> OUTDIR/<name>.zarr."""
    from bigseg.datasets import import_pairs as run

    _imported(run(images, masks, outdir, colour_table=colour_table, void_name=void_name, pixel_size=pixel_size,
                  chunk=chunk, overwrite=overwrite, echo=click.echo))


@cli.command()
@click.argument("stores", metavar="STORE...", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", type=click.Path(file_okay=False),
              help="Report folder [default: STORE-report beside it; required for several slabs].")
@click.option("--pixel-size", type=float, help="Micrometres per pixel [default: each store's].")
@click.option("--traverse-spacing", default=1.0, show_default=True, type=float, help="Traverse line spacing (mm).")
@click.option("--traverse-direction", default="horizontal", show_default=True,
              type=click.Choice(["horizontal", "vertical", "both"]), help="Direction of the traverse lines.")
@click.option("--region", help="Only the specimen counts: a mask file (non-zero inside) or 'auto' (the slab found "
              "against a plain background); kept in the store.")
@click.option("--paste-content", type=float, help="Paste content (% of the concrete) from the mix design: used for "
              "p/A and the spacing factors beside the measured one.")
@click.option("--max-aggregate", type=float, help="Nominal maximum aggregate size (mm): warns when the traverse is "
              "shorter than ASTM C457 Table 1 asks.")
@click.option("--entrapped-diameter", default=DEFAULT_ENTRAPPED_MM, show_default=True, type=float,
              help="Voids above this size (mm) count as entrapped air.")
@click.option("--entrapped-criterion", default="diameter", show_default=True, type=click.Choice(["diameter", "chord"]),
              help="Size by the void's equivalent diameter in the section, or by chord length on the traverse.")
@click.option("--edge-chords", default="left-end", show_default=True, type=click.Choice(["left-end", "all"]),
              help="Chords cut by an edge: counted when they start inside (unbiased), or all.")
@click.option("--aggregate-voids", default="exclude", show_default=True, type=click.Choice(["exclude", "include"]),
              help="Voids lying in aggregate (pores): not air (EN 480-11), or counted as air.")
@click.option("--min-void-diameter", default=0.0, show_default=True, type=float,
              help="Ignore voids smaller than this equivalent diameter (um); 0: every void.")
@click.option("--truth", is_flag=True, help="Also analyse the store's truth and show the differences.")
@click.option("--source", default="labels", show_default=True, type=click.Choice(["labels", "truth"]),
              help="The mask measured: the model's labels, or the store's truth (a mask traced by a person, "
              "imported with ingest --truth): the same report, no model.")
@click.option("--specimen", help="Specimen name or number, for the report's header.")
@click.option("--operator", help="Who made the analysis, for the report's header.")
@click.option("--notes", help="Free text for the report's header.")
@click.option("--scheduler", help="Address of an existing dask scheduler [default: threads in this process].")
@click.option("--overwrite", is_flag=True, help="Replace an existing report folder.")
def report(stores, out, pixel_size, traverse_spacing, traverse_direction, region, paste_content, max_aggregate,
           entrapped_diameter, entrapped_criterion, edge_chords, aggregate_voids, min_void_diameter, truth, source,
           specimen, operator, notes, scheduler, overwrite):
    """Air-void report (ASTM C457, EN 480-11) of one slab store, or of the slabs of one specimen."""
    from bigseg.report.report import ReportOptions, format_summary, make_report

    options = ReportOptions(pixel_size=pixel_size, spacing_mm=traverse_spacing, entrapped_mm=entrapped_diameter,
                            truth=truth, direction=traverse_direction, region=region, paste_content=paste_content,
                            max_aggregate_mm=max_aggregate, entrapped_criterion=entrapped_criterion,
                            edge_chords=edge_chords, aggregate_voids=aggregate_voids,
                            min_void_diameter_um=min_void_diameter, source=source, specimen=specimen,
                            operator=operator, notes=notes, command="bigseg " + " ".join(sys.argv[1:]))
    doc = make_report(list(stores) if len(stores) > 1 else stores[0], out, overwrite=overwrite, scheduler=scheduler,
                      echo=click.echo, options=options)
    click.echo(format_summary(doc))
    click.echo(f"report written to {doc['output']}/ (report.html, stats.json, stats.csv, pictures)")


@cli.command()
@click.argument("stores", metavar="STORE...", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="The adapted checkpoint (.pt); "
              "its verified ONNX export is written beside it.")
@click.option("--model", type=click.Path(), help="Base model: a checkpoint (an imported one too) or a bundled "
              "model's name [default: the bundled light_unet; deeplabv3plus-adapt, a DeepLabV3+: better on the "
              "development looks, not on the held-out styles, and its adapted models infer slower].")
@click.option("--minutes", default=10.0, show_default=True, type=float,
              help="Time budget for fine-tuning; it stops earlier when the loss stops falling. The command "
              "takes a little longer: reading and growing the strokes before, the rule, held-back score, list and "
              "ONNX export after (13 s on a 3000 x 2000 slab here).")
@click.option("--steps", type=int, help="A step budget instead (--minutes still caps it): the same strokes, "
              "seed and steps give the same model on any machine load.")
@click.option("--prior", default=AdaptOptions.prior, show_default=True, type=float,
              help="Weight of the base model's own predictions on unpainted pixels (keeps boundaries and what it "
              "knew; 0: strokes only).")
@click.option("--grow", default=AdaptOptions.grow, show_default=True, type=int,
              help="Grow each stroke this far (px) over pixels of its colour, to the edge of its region, so the "
              "fine-tune learns where classes end (0: the painted pixels only).")
@click.option("--grow-by", default=AdaptOptions.grow_by, show_default=True, type=click.Choice(["class", "stroke"]),
              help="Whose colours a stroke grows over: its class's, or its own (a paste stroke over a dark sand "
              "grain then fills the grain; measured better on one development style, worse on another).")
@click.option("--colour-components", default=AdaptOptions.colour_components, show_default=True,
              type=click.IntRange(1, 4),
              help="Gaussians in each class's colour model when strokes grow by class. One Gaussian of voids painted "
              "as a dark cavity with a white lining spans every grey, and void strokes grew over the paste around "
              "small voids; two took void IoU 0.54 -> 0.67 and air error 1.97 -> 0.57 points on two such looks, "
              "but void IoU 0.79 -> 0.72 on two held-out styles (RESULTS.md, 'What the high air was'): 1 to compare.")
@click.option("--colour-choice", default=AdaptOptions.colour_choice, show_default=True,
              type=click.Choice(["all", "per-class"]),
              help="Every class --colour-components Gaussians, or each class its own number up to it: the one under "
              "which fewest of the strokes' own colours would be grown over by another class (RESULTS.md, 'Two "
              "colour models where they tell the strokes apart').")
@click.option("--edges", default=AdaptOptions.edges, show_default=True, type=click.Choice(EDGE_RULES),
              help="Where grown strokes of two classes meet, an edge pixel goes to the side whose nearby pure colour "
              "it is nearer (local: the side that makes up more of a blurred edge pixel), or to the nearer class "
              "colour model (model, before 2026-12-06: a void's model spread over its rim tones grew void a pixel "
              "round each void). On four new looks (8 slabs) local read void IoU 0.721 against 0.676 and air 0.67 "
              "against 0.91 points off on average "
              "(RESULTS.md, 'Void edges in the grown labels').")
@click.option("--colour-prior", default=AdaptOptions.colour_prior, show_default=True,
              type=click.Choice(COLOUR_PRIORS),
              help="Which class a colour is nearest when strokes grow: the highest density with each Gaussian "
              "weighted by the stroke pixels it models (strokes, the default since 2026-12-06: a colour both classes' "
              "strokes hold, such as a void's paste-grey filling, goes to the class whose strokes hold more of it), "
              "or the least Mahalanobis distance (none, before: void strokes on such a filling grew void round every "
              "painted void). On four new looks (8 slabs) strokes read void IoU 0.810 against 0.794 and air 0.31 "
              "against 0.49 points off on average (RESULTS.md, 'Void strokes on a paste-grey filling').")
@click.option("--balance", default=AdaptOptions.balance, show_default=True, type=click.Choice(["pixel", "class"]),
              help="Average the cross-entropy over painted pixels, or per class (rare classes weigh more).")
@click.option("--replay", default=AdaptOptions.replay, show_default=True, type=float,
              help="Weight of synthetic concrete crops with exact truth (the bundled model's training mix) trained "
              "on beside the strokes; they teach where voids end and keep small voids (concrete classes only; "
              "0: off). Its crops are mostly void; over three development hands its air error ran from -0.5 to "
              "+0.8 points (RESULTS.md): check the air content against a traced area.")
@click.option("--replay-band", default=AdaptOptions.replay_band, show_default=True, type=int,
              help="Replay's loss only within this many px of a void: every pixel of it taught the slab's paste and "
              "stone what synthetic ones look like (measured: a stone colour read as paste).")
@click.option("--crop", default=AdaptOptions.crop, show_default=True, type=int, help="Crop side (px).")
@click.option("--batch", default=AdaptOptions.batch, show_default=True, type=int, help="Crops per step.")
@click.option("--lr", default=AdaptOptions.lr, show_default=True, type=float, help="Peak learning rate (AdamW).")
@click.option("--held-back", default=AdaptOptions.held_back, show_default=True, type=float,
              help="Share of each class's strokes held back to score the result.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of adapt's own draws (which strokes are held back, the crops): the same strokes with another "
              "seed read air up to 1.4 points differently on development slabs; adapt twice and compare (README).")
@click.option("--held-back-seed", type=int, help="Seed of which strokes are held back alone [default: --seed]: "
              "two runs with other --seed and the same --held-back-seed are scored on the same strokes.")
@click.option("--threads", type=int, help="Torch threads [default: the cores this process may use].")
@click.option("--tta", default="none", show_default=True,
              type=click.Choice(TTA),
              help="Score the held-back strokes with these views, as 'bigseg infer --tta' will run the model.")
@click.option("--object-rule/--no-object-rule", default=True, show_default=True,
              help="Fit a rule on whole void objects from the objects the strokes touch (darkest and mean grey, "
              "roundness; needs 5 painted over false voids), kept when the held-back strokes do not say it does "
              "harm; infer applies it. On the development style with dark sand grains, with --replay 1: void IoU "
              "0.71 -> 0.77, air +0.60 -> -0.05 points, spacing factor -16 -> +5 % (RESULTS.md).")
@click.option("--cut-merged-voids/--no-cut-merged-voids", default=AdaptOptions.cut_merged_voids, show_default=True,
              help="With a kept object rule, judge each void object cut where the grey rises inside it (a void's lit "
              "rim), so that a dark grain labelled void together with a void it touches is judged on its own.")
@click.option("--grow-void-edges/--no-grow-void-edges", default=AdaptOptions.grow_void_edges, show_default=True,
              help="With a kept object rule, grow the voids it keeps by up to 2 px to the half-way grey between each "
              "void's core and its surroundings (dark voids only). The two together, replayed on the adapted models "
              "of 16 development slabs: void IoU 0.729 -> 0.771, air error unchanged (0.30 points); on the 16 "
              "held-out slabs void IoU 0.854 -> 0.865, air error 0.29 -> 0.33, targets met 47 -> 47. Each alone did "
              "worse: the cut reads air low, the growth high (RESULTS.md, 'Cut merged objects where the grey rises').")
@click.option("--void-shift", default=AdaptOptions.void_shift, show_default=True, type=float,
              help="Added to the adapted model's void logit: crops around strokes show voids far more often than a "
              "slab holds them, so doubtful pixels come out void (negative: fewer, smaller voids; 0: none). Chosen on "
              "the development styles: air within 0.3 points on 6 of 9 slabs instead of 3 (RESULTS.md).")
@click.option("--crf", default=AdaptOptions.crf, show_default=True, type=float,
              help="Weight of a local CRF loss on each crop (Tang et al. 2018): neighbouring pixels of one colour "
              "pay for different labels, so what the strokes teach inside a region reaches its edges. An "
              "experiment (0: none); RESULTS.md, 'A CRF loss'.")
@click.option("--zoom-out", default=AdaptOptions.zoom_out, show_default=True, type=float,
              help="Half the training crops are read from up to this many times their size and shrunk, so that "
              "painted voids are also seen as small ones (no brush stroke fits in a small void). An experiment (1: "
              "none); RESULTS.md, 'Small voids'.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
def adapt(stores, out, model, minutes, steps, prior, grow, grow_by, colour_components, colour_choice, edges,
          colour_prior, balance, replay, replay_band, crop, batch, lr, held_back, seed, held_back_seed, threads, tta,
          object_rule, grow_void_edges, cut_merged_voids, void_shift, crf, zoom_out, overwrite):
    """Fine-tune a model to your concrete from strokes painted on STORE (bigseg serve STORE --annotate, or bigseg
    import annotations), in minutes on a CPU; scores it on strokes it held back and lists where to paint next.

    How many strokes (benchmarks/adapt.py, 3000 x 2000 px synthetic slabs): about 40 per class, under 0.5 % of
    the slab's pixels; on one style with this loop air content was +0.8 / +1.1 points off at 10 per class, within
    0.12 at 40 and 80, void IoU 0.75 -> 0.85 from 10 to 80 (RESULTS.md, "Figures against the number of
    strokes"). Paint half of them, adapt, look at the new labels in the viewer, paint the other half over what is
    still wrong, and adapt again from the first result (--model FIRST.pt): on the development style that
    took air content from +1.51 to +0.29 points of the truth, where 40 strokes per class painted blind moved it
    little. Paint every class, spread over the slab: about a fifth of each class's strokes is held back to score
    the result. Where voids come out too small or too few, try --replay 1 (synthetic truth near voids; on the
    development style void IoU 0.57 -> 0.71 at the same steps, spacing factor worse: one run, RESULTS.md). Once
    strokes have been painted over five or more false voids (dark grains), a rule on whole void objects is fitted
    from them and infer applies it (--no-object-rule: not). Adapt where the base model's report is flagged or its
    labels are visibly wrong: on two held-out styles the bundled model already read nearly right, adapting made
    air content worse (+0.41 -> +0.82 and +0.08 -> +1.13 points on their sibling slabs), so keep the base's report
    to compare. A larger base: --model deeplabv3plus-adapt (a DeepLabV3+ shipped as a base for adapting) met 30 of 40
    target cells on five development and validation looks against the bundled model's 21, but 39 of 64 against
    48 on the eight held-out styles (its spacing factor read 11-15 % high on six slabs); its adapted models infer
    slower. Where time allows, adapt from both on the same strokes: a base whose held-back strokes score clearly lower
    (a class under 90 %) met fewer targets on the development looks; two scores near 100 % do not rank them
    (RESULTS.md, "Do the held-back strokes pick the better base?").
    """
    opts = AdaptOptions(minutes=minutes, steps=steps, prior=prior, grow=grow, grow_by=grow_by,
                        colour_components=colour_components, colour_choice=colour_choice, edges=edges,
                        colour_prior=colour_prior,
                        balance=balance, replay=replay, replay_band=replay_band, crop=crop, batch=batch, lr=lr,
                        held_back=held_back,
                        seed=seed, held_back_seed=held_back_seed, threads=threads, tta=tta, object_rule=object_rule,
                        grow_void_edges=grow_void_edges, cut_merged_voids=cut_merged_voids, void_shift=void_shift,
                        crf=crf, zoom_out=zoom_out)
    from bigseg.checkpoint import model_path
    from bigseg.train.adapt_checks import check_inputs

    # a mistake in the options, stores or output is said at once, before torch is imported (seconds when busy)
    check_inputs([str(s) for s in stores], Path(out), model_path(model), overwrite, opts)
    from bigseg.train.adapt import adapt as run
    r = run(list(stores), out, base=model, options=opts, overwrite=overwrite, echo=click.echo, progress=_progress(),
            command="bigseg " + " ".join(sys.argv[1:]))
    if r.suggestions:
        click.echo("where to paint next (the adapted model is least sure of itself there):")
        for k, g in enumerate(r.suggestions, 1):
            x1, y1 = g["x"] + g["width"], g["y"] + g["height"]
            click.echo(f"  {k}. {Path(g['store']).name} x {g['x']}..{x1}, y {g['y']}..{y1}: flips change "
                       f"{100 * g['flip_disagreement']:.1f} % of labels, {100 * g['unsure']:.1f} % unsure")


@cli.command()
@click.option("--arch", default="light_unet", show_default=True, help="Model architecture (random weights "
              "unless it is the bundled light_unet or --checkpoint is given).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Model checkpoint to measure.")
@click.option("--size", default="6000x6000", show_default=True, help="WIDTHxHEIGHT of the test image.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--window", default=DEFAULT_WINDOW, show_default=True, type=int)
@click.option("--overlap", default=DEFAULT_OVERLAP, show_default=True, type=int)
@click.option("--batch", type=int)
@click.option("--workers", type=int)
@click.option("--store", type=click.Path(), help="Keep (or reuse) the test store here.")
@click.option("--monai", is_flag=True, help="Also run MONAI's sliding_window_inference (pip install monai).")
@click.option("--backend", type=click.Choice(["torch", "onnxruntime"]),
              help="Backend of bigseg's run and of the limit (MONAI always runs torch) [default: what bigseg infer "
              "chooses].")
@click.option("--stripe", type=int, help="bigseg infer's --stripe [default: its default].")
@click.option("--precision", type=click.Choice(["fp32", "int8"]),
              help="bigseg infer's --precision (MONAI always runs the fp32 checkpoint) [default: fp32].")
@click.option("--overwrite", is_flag=True, help="With --store: replace the labels the store already holds.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench(arch, checkpoint, size, device, window, overlap, batch, workers, store, monai, backend, stripe, precision,
          overwrite, as_json):
    """Throughput and memory: bigseg end to end vs the model alone (and MONAI) on one synthetic image."""
    from bigseg.bench import bench as run

    r = run(arch=arch, checkpoint=checkpoint, size=_parse_size(size), device=device, window=window, overlap=overlap,
            batch=batch, workers=workers, store=store, monai=monai, backend=backend, stripe=stripe,
            precision=precision, overwrite=overwrite, echo=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps(r.to_dict(), indent=2))
        return
    click.echo(f"{r['megapixels']:.1f} Mpx, {r['windows']} windows of {window} px, {arch} ({r['backend']}"
               + (f", {r['precision']}" if r["precision"] != "fp32" else "") + f") on {device}"
               + (f" ({r['gpu']})" if r["gpu"] else f", {r['workers']} workers x {r['threads_per_worker']} threads"))
    click.echo(f"  model alone      {r['limit_mpx_per_s']:8.2f} Mpx/s")
    click.echo(f"  bigseg infer     {r['end_to_end_mpx_per_s']:8.2f} Mpx/s   efficiency {r['efficiency']:.2f}; "
               f"peak RSS {r['peak_total_rss_mb']:.0f} MB (largest worker {r['peak_worker_rss_mb']:.0f} MB)")
    click.echo(f"  whole call       {r['whole_mpx_per_s']:8.2f} Mpx/s   ({r['whole_seconds']:.1f} s with cluster "
               f"start, model load and finishing)")
    if monai:
        click.echo(f"  MONAI sliding    {r['monai_mpx_per_s']:8.2f} Mpx/s   peak RSS {r['monai_peak_rss_mb']:.0f} MB; "
                   f"bigseg is {r['speed_vs_monai']:.2f}x as fast computing, {r['whole_speed_vs_monai']:.2f}x whole "
                   f"(with start-up and model load: {r['whole_seconds']:.1f} s vs {r['monai_whole_seconds']:.1f} s), "
                   f"with {r['rss_vs_monai']:.2f}x the memory; labels agree on "
                   f"{100 * r['label_agreement_with_monai']:.2f} % of pixels")


@cli.command()
@click.option("--out", default="demo-output", show_default=True, type=click.Path(file_okay=False))
@click.option("--size", default="3000x2000", show_default=True, help="WIDTHxHEIGHT of the synthetic slab.")
@click.option("--workers", type=int, help="Local dask worker processes [default: as bigseg infer].")
def demo(out, size, workers):
    """The whole job on a bundled default: synthetic slab -> ingest -> infer -> report."""
    from bigseg.demo import run_demo

    run_demo(out, _parse_size(size), workers=workers, echo=click.echo, progress=_progress())


@cli.command("export-ome")
@click.argument("store", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="The OME-Zarr to write "
              "(name it .ome.zarr).")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
def export_ome(store, out, overwrite):
    """Copy STORE's image, labels and truth as OME-Zarr 0.5 (NGFF) multiscales, for napari, vizarr and other NGFF
    viewers."""
    from bigseg.formats.ome_zarr import export_ome as run

    run(store, out, overwrite=overwrite, echo=click.echo)


@cli.command("export-tiff")
@click.argument("store", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="The TIFF to write.")
@click.option("--layer", default="labels", show_default=True, type=click.Choice(["labels", "image", "truth",
              "probabilities"]), help="What to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
def export_tiff(store, out, layer, overwrite):
    """Write one layer of STORE as a tiled, pyramidal, compressed BigTIFF (class colours as a palette), for GIS,
    QuPath and ImageJ."""
    from bigseg.formats.tiff import export_tiff as run

    run(store, out, layer=layer, overwrite=overwrite, echo=click.echo)


@cli.command("export-objects")
@click.argument("store", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="voids.geojson (QuPath: File > Import objects; GIS), voids.csv or voids.parquet.")
@click.option("--class", "classes", multiple=True, default=("void",), show_default=True,
              help="Class whose objects to write (repeat for more: --class void --class stone).")
@click.option("--layer", default="labels", show_default=True, type=click.Choice(["labels", "truth"]),
              help="The mask: the model's labels, or the traced truth.")
@click.option("--entrapped-diameter", default=DEFAULT_ENTRAPPED_MM, show_default=True, type=float,
              help="Voids of at least this equivalent diameter (mm) are entrapped air (as in the report).")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
def export_objects(store, out, classes, layer, entrapped_diameter, overwrite):
    """Write every void (or object of other classes) of STORE as one object: outline, area, equivalent diameter,
    centroid in mm, entrained or entrapped; joined across chunk borders, streamed at any size."""
    from bigseg.formats.objects import export_objects as run

    run(store, out, classes=tuple(classes), layer=layer, entrapped_mm=entrapped_diameter, overwrite=overwrite,
        echo=click.echo)


@cli.command()
@click.argument("paths", metavar="STORE_OR_FOLDER...", nargs=-1, required=True, type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 lets other machines see these stores.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@click.option("--cache-mb", default=128, show_default=True, type=click.IntRange(1, 65536),
              help="Memory for rendered tiles (MB).")
@click.option("--annotate", is_flag=True, help="Paint strokes per class in the viewer (brush, eraser, undo), saved "
              "into each store's annotations as you paint; the only write the service then accepts.")
def serve(paths, host, port, cache_mb, annotate):
    """Look at results in a browser: a viewer and Deep Zoom tiles of image, labels, truth, errors and confidence of
    the stores given (a folder: the stores in it). Read-only unless --annotate; a store being inferred shows its
    progress."""
    from bigseg.serve import serve as run

    run(list(paths), host=host, port=port, cache_bytes=cache_mb * 2**20, echo=click.echo, annotate=annotate)


@cli.command()
@click.argument("store", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--check", is_flag=True, help="Read every chunk of every array; list missing or damaged ones (exit 2).")
def info(store, as_json, check):
    """Print a summary of the slab store STORE: arrays, completeness, class table, statistics."""
    from bigseg.summary import store_summary

    s = store_summary(store, check=check, echo=click.echo if check and not as_json else None)
    damaged = {name: a["problems"] for name, a in s["arrays"].items() if a.get("problems")}
    if as_json:
        click.echo(json.dumps(s, indent=2))
    if damaged:
        first = next(iter(damaged))
        raise BigsegError(f"{store}: damaged: " + "; ".join(f"{n}: {len(p)} bad chunks" for n, p in damaged.items())
                          + f" (first: {first} {damaged[first][0]}); ingest or infer again with --overwrite")
    if as_json:
        return
    click.echo(f"{s['path']}: {s['width']}x{s['height']} px, pixel size "
               + (f"{s['pixel_size_um']:.3g} um" if s["pixel_size_um"] else "unknown"))
    click.echo("classes: " + ", ".join(f"{c['id']} {c['name']}" for c in s["classes"]))
    width = max([20, *(len(name) for name in s["arrays"])])
    for name, a in s["arrays"].items():
        state = "complete" if a["complete"] else "INCOMPLETE"
        if check:
            state += ", every chunk readable"
        click.echo(f"  {name:{width}s} {str(tuple(a['shape'])):22s} {a['dtype']:8s} chunks {tuple(a['chunks'])}  "
                   f"{state}")
    a = s.get("annotations")
    if a:
        click.echo(f"annotations: {a['strokes']} strokes or imports; painted " + ", ".join(
            f"{k} {v:,} px" for k, v in a["painted"].items()) + f" (last change {a['updated']})")
    m = s.get("labels_made_by")
    if m:
        click.echo(f"labels made by {m['model'] or m['arch']} (sha256 {(m['sha256'] or '?')[:12]}, {m['arch']}; "
                   f"{m['backend']}, {m['precision']}; window {m['window']}, overlap {m['overlap']})")
    if s.get("stats"):
        from bigseg.report.stats import format_table

        click.echo(format_table(s["stats"]))


@cli.command()
@click.argument("recipe", type=click.Path())
@click.option("--jobs", type=int, help="SLURM: batch jobs to submit [default: 1]; Kubernetes: worker pods "
              "[default: the recipe's workers].")
@click.option("--print-script", is_flag=True, help="Only print what would be submitted (offline): the batch script "
              "each SLURM job runs, or the Kubernetes DaskCluster resource (for kubectl apply -f).")
def cluster(recipe, jobs, print_script):
    """Start a cluster of bigseg workers from RECIPE (a YAML file, or a shipped recipe's name: slurm-gpu,
    slurm-cpu, k8s-gpu, k8s-cpu) -- SLURM jobs with dask-jobqueue, or Kubernetes pods with the Dask Kubernetes
    Operator -- print its scheduler's address for bigseg infer --scheduler, and keep it until Ctrl-C."""
    import shutil
    import time

    from bigseg.hpc import KubernetesRecipe, job_script, kube_cluster, load_recipe, resource_yaml, slurm_cluster

    r = load_recipe(recipe)
    if jobs is not None and jobs < (0 if isinstance(r, KubernetesRecipe) else 1):
        raise BigsegError(f"--jobs must be at least {0 if isinstance(r, KubernetesRecipe) else 1}, got {jobs}")
    if isinstance(r, KubernetesRecipe):
        if print_script:
            click.echo(resource_yaml(r, jobs), nl=False)
            return
        c = kube_cluster(r, jobs)
        gpus = r.gpus_per_worker
        what = f"{jobs if jobs is not None else r.workers} worker pod(s) asked for"
    else:
        if print_script:
            click.echo(job_script(r))
            return
        if shutil.which("sbatch") is None:
            raise BigsegError("sbatch not found: start the cluster on the SLURM login node (--print-script shows the "
                              "job script anywhere)")
        c = slurm_cluster(r, jobs=jobs or 1)
        gpus = r.gpus_per_job
        what = f"listening on {r.listen}: reachable from the compute nodes; {jobs or 1} job(s) submitted"
    threads = r.cores_per_worker if isinstance(r, KubernetesRecipe) else r.cores_per_job
    click.echo(f"scheduler {c.scheduler_address} ({what}). In another shell:\n"
               f"  bigseg infer IMAGE --scheduler {c.scheduler_address}"
               + (" --device cuda" if gpus else f" --threads {threads}")
               + "\nCtrl-C stops the cluster" + ("" if isinstance(r, KubernetesRecipe) else " and cancels its jobs")
               + ".")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        c.close()


if __name__ == "__main__":  # pragma: no cover
    main()
