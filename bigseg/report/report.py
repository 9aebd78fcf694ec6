"""``bigseg report``: statistics, air-void parameters and pictures for one slab store, written to a folder.

Outputs (all in one folder, written under a temporary name and moved into place only when complete):
``stats.json`` (everything, with units and the bigseg version), ``stats.csv`` (one row per parameter),
``quicklook.png`` (image + mask overlay + legend), ``chords.png`` / ``voids.png`` (histograms, concrete
classes only) and ``report.html`` (self-contained: the pictures are embedded, it opens offline).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import json
import math
from pathlib import Path

import numpy as np

from bigseg import store as st
from bigseg.classes import concrete_ids
from bigseg.errors import BigsegError
from bigseg.paths import display, refuse_overlap
from bigseg.report import airvoid, render
from bigseg.report.stats import statistics_from_counts

DEFAULT_SPACING_MM = 1.0
DEFAULT_ENTRAPPED_MM = 1.0


def default_output(store) -> Path:
    p = Path(store)
    return p.with_name((p.name[:-5] if p.name.endswith(".zarr") else p.name) + "-report")


def _area_parameters(stats: dict) -> dict:
    out = {}
    for name, e in stats["classes"].items():
        out[f"{name}_fraction"] = {"value": 100 * e["fraction"], "unit": "%", "description": f"{name} area fraction"}
        if "area_mm2" in e:
            out[f"{name}_area"] = {"value": e["area_mm2"], "unit": "mm2", "description": f"{name} area"}
    return out


def analyse(store, array: str, classes, px: float | None, spacing_mm: float, entrapped_mm: float,
            client=None) -> dict:
    """Area statistics and (for concrete class tables) air-void parameters of one mask in the store."""
    ids = concrete_ids(classes)
    if ids:
        m = airvoid.measure_mask(store, array, ids["void"], len(classes), spacing_mm * 1000.0 / px, client=client)
    else:  # not a concrete class table: area statistics only
        m = airvoid.measure_mask(store, array, None, len(classes), None, client=client)
    counts = np.concatenate([m.class_pixels, [m.unlabelled_pixels]])
    stats = statistics_from_counts(counts, classes, px, array)
    result = {"areas": stats, "parameters": {}}
    if ids:  # the air-void figures first: they are what a lab reports
        av = airvoid.airvoid_parameters(m, ids, px, spacing_mm, entrapped_mm)
        result["parameters"].update(av.pop("parameters"))
        result["airvoid"] = av
    result["parameters"].update(_area_parameters(stats))
    return result


def _difference(a: dict, b: dict) -> dict:
    out = {}
    for k, pa in a.items():
        pb = b.get(k)
        va, vb = pa["value"], pb["value"] if pb else None
        diff = va - vb if isinstance(va, int | float) and isinstance(vb, int | float) else None
        out[k] = {"value": diff, "unit": pa["unit"], "description": "labels - truth"}
    return out


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return f"{v:d}"
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.6g}"


def _value(doc: dict, source: str, key: str):
    """A parameter's value for ``source`` (labels, truth or difference); None where it has none."""
    params = doc[source] if source == "difference" else doc[source]["parameters"]
    return params.get(key, {}).get("value")


def write_csv(path: Path, doc: dict) -> None:
    sources = [s for s in ("labels", "truth", "difference") if s in doc]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["parameter", "unit", *sources, "description"])
        for key, p in doc["labels"]["parameters"].items():
            row = [key, p["unit"]]
            for s in sources:
                v = _value(doc, s, key)
                row.append("" if v is None else v)
            w.writerow([*row, p["description"]])


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _settings_text(settings: dict) -> str:
    if not settings:
        return ""
    return (f"Traverse lines every {settings['traverse_spacing_mm']:g} mm; voids are "
            f"{settings['connectivity']}-connected components, entrapped above "
            f"{settings['entrapped_diameter_mm']:g} mm equivalent diameter.")


def write_html(path: Path, doc: dict, pictures: dict[str, bytes]) -> None:
    sources = [s for s in ("labels", "truth", "difference") if s in doc]
    head = "".join(f"<th>{s}</th>" for s in sources)
    rows = []
    for key, p in doc["labels"]["parameters"].items():
        cells = []
        for s in sources:
            v = _value(doc, s, key)
            cells.append(f"<td>{_fmt(v)}</td>")
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(p['unit'])}</td>{''.join(cells)}"
                    f"<td class=d>{html.escape(p['description'])}</td></tr>")
    settings = doc["labels"].get("airvoid", {}).get("settings", {})
    figs = "".join(f"<figure>{_img(png, name)}<figcaption>{html.escape(name)}</figcaption></figure>"
                   for name, png in pictures.items())
    text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>bigseg report: {html.escape(doc['store'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}} td.d{{text-align:left;color:#555}}
th{{text-align:left}} img{{max-width:100%}} figure{{margin:1em 0}}</style></head><body>
<h1>bigseg report</h1>
<p>Store <code>{html.escape(doc['store'])}</code>: {doc['width']} &times; {doc['height']} px,
pixel size {_fmt(doc['pixel_size_um'])} &micro;m. bigseg {html.escape(doc['bigseg_version'])}, {doc['created']}.
{_settings_text(settings)}</p>
<table><tr><th>parameter</th><th>unit</th>{head}<th>description</th></tr>
{chr(10).join(rows)}
</table>
{figs}
<p>Formulas and their sources: bigseg's docs/report.md (ASTM C457/C457M-16, Powers 1949).</p>
</body></html>
"""
    path.write_text(text, encoding="utf-8")


def make_report(store, out=None, pixel_size: float | None = None, spacing_mm: float = DEFAULT_SPACING_MM,
                entrapped_mm: float = DEFAULT_ENTRAPPED_MM, truth: bool = False, overwrite: bool = False,
                scheduler: str | None = None, echo=print) -> dict:
    """Analyse STORE's labels (and with ``truth`` its truth) and write the report folder; returns stats.json."""
    from bigseg import __version__

    for flag, value in (("--pixel-size", pixel_size), ("--traverse-spacing", spacing_mm),
                        ("--entrapped-diameter", entrapped_mm)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise BigsegError(f"{flag} must be a positive number, got {value}")
    group = st.open_store(store)
    airvoid.check_mask(group, "labels", store)
    if truth:
        airvoid.check_mask(group, "truth", store)
    classes = st.class_table(group)
    px = pixel_size or st.pixel_size_um(group)
    if px is None and concrete_ids(classes):
        raise BigsegError(f"{store} has no pixel size, which the air-void parameters need: pass --pixel-size UM "
                          "(micrometres per pixel)")
    out = Path(out) if out else default_output(store)
    refuse_overlap(out, "-o", ("store", store))
    h, w = group["labels"].shape

    from bigseg.cluster import dask_client

    # without --scheduler: dask's threads in this process (reading and labelling chunks release the GIL)
    with dask_client(0, scheduler, echo=echo) as client, st.staged_output(out, overwrite) as tmp:
        tmp.mkdir()
        doc = {"bigseg_version": __version__, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "store": display(Path(store).resolve()), "width": int(w), "height": int(h), "pixel_size_um": px,
               "classes": [c.to_dict() for c in classes]}
        echo(f"analysing {store}/labels ({w}x{h} px)")
        doc["labels"] = analyse(store, "labels", classes, px, spacing_mm, entrapped_mm, client)
        if truth:
            echo(f"analysing {store}/truth")
            doc["truth"] = analyse(store, "truth", classes, px, spacing_mm, entrapped_mm, client)
            doc["difference"] = _difference(doc["labels"]["parameters"], doc["truth"]["parameters"])
        (tmp / "stats.json").write_text(json.dumps(doc, indent=2, allow_nan=False))  # always valid JSON
        write_csv(tmp / "stats.csv", doc)
        pictures = _pictures(store, doc, classes)
        for name, png in pictures.items():
            (tmp / name).write_bytes(png)
        write_html(tmp / "report.html", doc, pictures)
    doc["output"] = str(out)
    return doc


def _pictures(store, doc: dict, classes) -> dict[str, bytes]:
    fractions = {c.name: doc["labels"]["areas"]["classes"][c.name]["fraction"] for c in classes}
    pictures = {"quicklook.png": render.quicklook_png(store, "labels", fractions)}
    if "truth" in doc:
        fractions = {c.name: doc["truth"]["areas"]["classes"][c.name]["fraction"] for c in classes}
        pictures["quicklook-truth.png"] = render.quicklook_png(store, "truth", fractions)
    if "airvoid" in doc["labels"]:
        sources = [s for s in ("labels", "truth") if s in doc]
        pictures["chords.png"] = render.histogram_png(
            {s: doc[s]["airvoid"]["chord_length_histogram"] for s in sources}, "chord lengths on the traverse",
            "chord length (um)")
        pictures["voids.png"] = render.histogram_png(
            {s: doc[s]["airvoid"]["void_diameter_histogram"] for s in sources}, "void sizes",
            "equivalent diameter (um)")
    return pictures


def format_summary(doc: dict) -> str:
    """The key figures for the terminal."""
    keys = ["air_content", "paste_content", "aggregate_content", "paste_air_ratio", "voids_per_mm",
            "average_chord_length", "specific_surface", "spacing_factor", "void_count", "entrained_air_content",
            "entrapped_air_content", "traverse_length"]
    params = doc["labels"]["parameters"]
    if "air_content" not in params:
        keys = list(params)
    lines = []
    for k in keys:
        p = params[k]
        line = f"{k:24s} {_fmt(p['value']):>10s} {p['unit']:6s}"
        if "truth" in doc:
            line += f"  truth {_fmt(doc['truth']['parameters'][k]['value']):>10s}"
        lines.append(line)
    return "\n".join(lines)
