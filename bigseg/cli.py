"""The ``bigseg`` command: one thin click command per verb; the work is done by the library modules."""

from __future__ import annotations

import json
import re
import sys

import click

from bigseg.errors import BigsegError


class _Ctx:
    debug = False


def _fail(message: str, code: int = 2):
    click.echo(f"bigseg: error: {message}", err=True)
    sys.exit(code)


def main(argv=None):
    """Entry point: BigsegError becomes one line on stderr and exit status 2 (traceback with --debug)."""
    try:
        cli.main(args=argv, prog_name="bigseg", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BigsegError as exc:
        if _Ctx.debug:
            raise
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # an unexpected failure: still one line, unless --debug
        if _Ctx.debug:
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (run 'bigseg --debug ...' for the traceback)", 1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="bigseg")
def cli(debug):
    """bigseg: semantic segmentation of gigapixel images (concrete sections, road scenes, slides, maps)."""
    _Ctx.debug = debug


def _parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise BigsegError(f"--size must be WIDTHxHEIGHT (e.g. 4000x3000), got {text!r}")
    return int(m.group(1)), int(m.group(2))


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--size", default="4000x3000", show_default=True, help="WIDTHxHEIGHT in pixels.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--truth", type=click.Path(dir_okay=False), help="Truth mask path [default: beside OUT].")
@click.option("--pixel-size", default=10.0, show_default=True, type=float, help="Micrometres per pixel.")
@click.option("--aggregate", default=0.68, show_default=True, type=float, help="Target stone area fraction.")
@click.option("--air", default=0.05, show_default=True, type=float, help="Target air-void area fraction.")
def synth(out, size, seed, truth, pixel_size, aggregate, air):
    """Write a synthetic polished concrete section OUT (.tif/.png/.jpg) and its exact truth mask."""
    from bigseg.synth import SynthParams, synthesize

    w, h = _parse_size(size)
    params = SynthParams(w, h, seed=seed, pixel_size_um=pixel_size, aggregate_fraction=aggregate,
                         air_fraction=air)
    s = synthesize(out, params, truth=truth, progress=sys.stderr.isatty())
    click.echo(f"wrote {s['image']} ({w}x{h}, seed {seed}, {pixel_size} um/px) and truth {s['truth']}")
    f = s["fractions"]
    click.echo(
        f"truth fractions: paste {f['paste']:.4f}  stone {f['stone']:.4f}  void {f['void']:.4f}  "
        f"(targets: stone {aggregate}, void {air})"
    )


@cli.command()
@click.argument("image", type=click.Path())
@click.argument("store", type=click.Path())
@click.option("--truth", type=click.Path(), help="Ground-truth mask of the same size.")
@click.option("--pixel-size", type=float, help="Micrometres per pixel [default: from the file's resolution].")
@click.option("--chunk", default=1024, show_default=True, type=int, help="Chunk side in pixels.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store.")
def ingest(image, store, truth, pixel_size, chunk, overwrite):
    """Stream IMAGE (JPEG/PNG/TIFF/BigTIFF) into the zarr slab store STORE."""
    from bigseg.ingest import ingest as run

    s = run(image, store, truth=truth, pixel_size=pixel_size, chunk=chunk, overwrite=overwrite,
            progress=sys.stderr.isatty())
    px = f"{s['pixel_size_um']:.3g} um/px" if s["pixel_size_um"] else "pixel size unknown (use --pixel-size)"
    click.echo(f"ingested {s['image']} -> {s['store']}: {s['width']}x{s['height']}, chunk {s['chunk']}, {px}"
               + (f", truth {s['truth']}" if s["truth"] else ""))


@cli.command()
@click.option("--out", default="demo-output", show_default=True, type=click.Path(file_okay=False))
@click.option("--size", default="3000x2000", show_default=True, help="WIDTHxHEIGHT of the synthetic slab.")
@click.option("--workers", default=2, show_default=True, type=int)
def demo(out, size, workers):
    """The whole job on a bundled default: synthetic slab -> ingest -> infer -> statistics."""
    from bigseg.demo import run_demo

    run_demo(out, _parse_size(size), workers=workers, echo=click.echo)


@cli.command()
@click.argument("store", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(store, as_json):
    """Print a summary of the slab store STORE: arrays, completeness, class table, statistics."""
    from bigseg.summary import store_summary

    s = store_summary(store)
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    click.echo(f"{s['path']}: {s['width']}x{s['height']} px, pixel size "
               + (f"{s['pixel_size_um']:.3g} um" if s["pixel_size_um"] else "unknown"))
    click.echo("classes: " + ", ".join(f"{c['id']} {c['name']}" for c in s["classes"]))
    for name, a in s["arrays"].items():
        state = "complete" if a["complete"] else "INCOMPLETE"
        click.echo(f"  {name:14s} {str(tuple(a['shape'])):22s} {a['dtype']:8s} chunks {tuple(a['chunks'])}  {state}")
    if s.get("stats"):
        from bigseg.report.stats import format_table

        click.echo(format_table(s["stats"]))


if __name__ == "__main__":  # pragma: no cover
    main()
