"""``bigseg report``: the air-void report of a specimen (one slab store, or several slabs of one specimen).

Outputs (one folder, written under a temporary name and moved into place only when complete):
``stats.json`` (everything: each figure with its unit, formula and source, uncertainty intervals, the exact chord
histogram, the EN 480-11 class table, provenance), ``stats.csv`` (one row per figure), pictures (the quicklook,
full-resolution crops, the confidence map and, with ``--truth``, the error map; histograms) and ``report.html``
(self-contained: pictures embedded, methods appendix included; opens offline, prints as the lab's document).

Several slabs of one specimen: traverse lengths, chords, void counts and areas are summed over the slabs (their
pixel sizes may differ), never ratios averaged; each slab's own figures are kept beside the total.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bigseg import __version__
from bigseg import store as st
from bigseg.checkpoint import BUNDLED_MODELS, adapt_base_note, bundled_name
from bigseg.classes import concrete_ids
from bigseg.cluster import dask_client
from bigseg.defaults import DEFAULT_ENTRAPPED_MM
from bigseg.errors import BigsegError
from bigseg.paths import display, refuse_overlap
from bigseg.report import airvoid, html, render
from bigseg.report.doubt import doubt
from bigseg.report.glossary import figure
from bigseg.report.measure import AGGREGATE_VOIDS, DIRECTIONS, EDGE_RULES, measure_mask
from bigseg.report.region import set_region
from bigseg.report.stats import statistics_from_counts

DEFAULT_SPACING_MM = 1.0
ENTRAPPED_CRITERIA = ("diameter", "chord")


SOURCES = ("labels", "truth")
"""The masks a report can measure: a model's labels (bigseg infer), or the truth traced by a person (no model)."""


@dataclass(frozen=True)
class ReportOptions:
    """How the figures are measured (every choice is recorded in the report's settings)."""

    pixel_size: float | None = None  # um; None: each store's own
    spacing_mm: float = DEFAULT_SPACING_MM
    entrapped_mm: float = DEFAULT_ENTRAPPED_MM
    entrapped_criterion: str = "diameter"
    direction: str = "horizontal"
    edge_chords: str = "left-end"
    aggregate_voids: str = "exclude"
    min_void_diameter_um: float = 0.0
    paste_content: float | None = None  # % of the concrete, from the mix design
    max_aggregate_mm: float | None = None
    region: str | None = None  # "auto" or a mask file; None: the store's region if it has one, else the image
    truth: bool = False
    source: str = "labels"  # the mask measured: a model's labels, or a traced one (truth) with no model
    specimen: str | None = None
    operator: str | None = None
    notes: str | None = None
    command: str | None = None

    def check(self) -> None:
        for flag, value in (("--pixel-size", self.pixel_size), ("--traverse-spacing", self.spacing_mm),
                            ("--entrapped-diameter", self.entrapped_mm), ("--max-aggregate", self.max_aggregate_mm)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise BigsegError(f"{flag} must be a positive number, got {value}")
        if not (math.isfinite(self.min_void_diameter_um) and self.min_void_diameter_um >= 0):
            raise BigsegError(f"--min-void-diameter must be 0 or more, got {self.min_void_diameter_um}")
        if self.paste_content is not None and not (math.isfinite(self.paste_content)
                                                   and 0 < self.paste_content < 100):
            raise BigsegError(f"--paste-content is a percentage of the concrete, between 0 and 100; got "
                              f"{self.paste_content}")
        if self.source not in SOURCES:
            raise BigsegError(f"--source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.source != "labels" and self.truth:
            raise BigsegError(f"--truth compares a model's labels with the truth; with --source {self.source} the "
                              "report already measures the traced mask (leave out --truth)")
        for flag, choice, allowed in (("--traverse-direction", self.direction, DIRECTIONS),
                                      ("--edge-chords", self.edge_chords, EDGE_RULES),
                                      ("--aggregate-voids", self.aggregate_voids, AGGREGATE_VOIDS),
                                      ("--entrapped-criterion", self.entrapped_criterion, ENTRAPPED_CRITERIA)):
            if choice not in allowed:
                raise BigsegError(f"{flag} must be one of {', '.join(allowed)}, got {choice!r}")


def default_output(store) -> Path:
    """``NAME-report`` beside a store on disk; in the current folder for a store at a URL."""
    p = Path(st.name_of(store)) if st.is_url(store) else Path(store)
    return p.with_name((p.name[:-5] if p.name.endswith(".zarr") else p.name) + "-report")


def _area_parameters(stats: dict) -> dict:
    out = {}
    for name, e in stats["classes"].items():
        out[f"{name}_fraction"] = {"value": 100 * e["fraction"], "unit": "%", "description": f"{name} area fraction"}
        if "area_mm2" in e:
            out[f"{name}_area"] = {"value": e["area_mm2"], "unit": "mm2", "description": f"{name} area"}
    return out


def analyse(store, array: str, classes, px: float | None, spacing_mm: float, entrapped_mm: float,
            client=None, options: ReportOptions | None = None) -> dict:
    """Area statistics and (for concrete class tables) air-void figures of one mask in the store: {areas,
    parameters, airvoid, totals}."""
    o = options or ReportOptions(spacing_mm=spacing_mm, entrapped_mm=entrapped_mm)
    ids = concrete_ids(classes)
    group = st.open_store(store)
    region = "region" if "region" in group else None
    spacing_px: float | None = None
    min_px = 1
    if ids:
        if px is None:
            raise BigsegError(f"{store}: the air-void figures need the pixel size (--pixel-size)")
        spacing_px = spacing_mm * 1000.0 / px
        if o.min_void_diameter_um:
            min_px = math.ceil(math.pi * (o.min_void_diameter_um / 2 / px) ** 2)
    m = measure_mask(store, array, ids, len(classes), spacing_px, client=client, direction=o.direction,
                     edge_chords=o.edge_chords, aggregate_voids=o.aggregate_voids, min_void_px=max(1, min_px),
                     region=region)
    counts = np.concatenate([m.class_pixels, [m.unlabelled_pixels]])
    stats = statistics_from_counts(counts, classes, px, array)
    result: dict[str, Any] = {"areas": stats, "parameters": {}}
    if ids:
        assert px is not None and spacing_px is not None  # checked above
        t = airvoid.Totals.of(m, ids, px, spacing_px)
        result["totals"] = t
        settings = {"direction": o.direction, "edge_chords": o.edge_chords, "aggregate_voids": o.aggregate_voids,
                    "min_void_diameter_um": o.min_void_diameter_um, "max_aggregate_mm": o.max_aggregate_mm,
                    "region": region is not None}
        av = airvoid.airvoid_parameters(t, spacing_mm, entrapped_mm, o.entrapped_criterion,
                                        o.paste_content / 100 if o.paste_content else None, settings)
        result["parameters"].update(av.pop("parameters"))
        result["airvoid"] = av
    else:  # not a concrete table: the area figures are the report
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


def _value(doc: dict, source: str, key: str):
    """A parameter's value for ``source`` (labels, truth or difference); None where it has none."""
    params = doc[source] if source == "difference" else doc[source]["parameters"]
    return params.get(key, {}).get("value")


def write_csv(path: Path, doc: dict) -> None:
    sources = [s for s in ("labels", "truth", "difference") if s in doc]
    with open(path, "w", newline="", encoding="utf-8", errors="replace") as fh:
        w = csv.writer(fh)
        w.writerow(["parameter", "name", "group", "unit", *sources, "low 95 %", "high 95 %", "formula", "source"])
        ci = doc["labels"].get("airvoid", {}).get("uncertainty", {})
        for key, p in doc["labels"]["parameters"].items():
            f = figure(key)
            row = [key, f.name, f.group, p["unit"]]
            for s in sources:
                v = _value(doc, s, key)
                row.append("" if v is None else v)
            interval = ci.get(key) if isinstance(ci.get(key), dict) else None
            row += [interval["low"] if interval else "", interval["high"] if interval else "", f.formula, f.source]
            w.writerow(row)


def _slab(store, options: ReportOptions, client, echo) -> dict:
    """One slab: checks, region, the labels (and truth) measured, provenance and confidence."""
    group = st.open_store(store)
    source = options.source
    airvoid.check_mask(group, source, store)
    if options.truth:
        airvoid.check_mask(group, "truth", store)
    classes = st.class_table(group)
    px = options.pixel_size or st.pixel_size_um(group)
    if px is None and concrete_ids(classes):
        raise BigsegError(f"{store} has no pixel size, which the air-void parameters need: pass --pixel-size UM "
                          "(micrometres per pixel)")
    if options.region:
        info = set_region(store, options.region)
        echo(f"region of {store}: {info['method']}, {info['inside_pixels']} pixels inside")
    group = st.open_store(store)
    mask = st.array(group, source)
    h, w = mask.shape
    attrs: dict[str, Any] = dict(mask.attrs)
    confidence = attrs.get("confidence") if source == "labels" else None
    model: dict[str, Any] = (attrs.get("model") or {}) if source == "labels" else {"traced": source}
    window = (attrs.get("run") or {}).get("window") if source == "labels" else None
    where = st.location(store) if st.is_url(store) else Path(store).resolve()
    slab = {"store": display(where), "width": int(w), "height": int(h), "pixel_size_um": px,
            "window": window,
            "classes": [c.to_dict() for c in classes],
            "region": dict(group["region"].attrs) if "region" in group else None,
            "model": model, "confidence": confidence,
            "doubt": doubt(confidence, model.get("confidence_reference"), model.get("adapted"))
            if concrete_ids(classes) and source == "labels" else None}
    echo(f"analysing {store}/{source} ({w}x{h} px)")
    slab["labels"] = analyse(store, source, classes, px, options.spacing_mm, options.entrapped_mm, client, options)
    if options.truth:
        echo(f"analysing {store}/truth")
        slab["truth"] = analyse(store, "truth", classes, px, options.spacing_mm, options.entrapped_mm, client,
                                options)
    return slab


def _specimen(slabs: list[dict], source: str, options: ReportOptions) -> dict:
    """The figures of the slabs together (sums of totals) for ``source`` (labels or truth)."""
    total = slabs[0][source]["totals"]
    for s in slabs[1:]:
        total = total + s[source]["totals"]
    settings = dict(slabs[0][source]["airvoid"]["settings"])
    av = airvoid.airvoid_parameters(total, options.spacing_mm, options.entrapped_mm, options.entrapped_criterion,
                                    options.paste_content / 100 if options.paste_content else None, settings)
    return {"parameters": av.pop("parameters"), "airvoid": av, "totals": total,
            "areas": {"classes": {k: {"area_mm2": v, "fraction": v / total.analysed_mm2}
                                  for k, v in total.class_mm2.items()}, "area_mm2": total.analysed_mm2}}


def make_report(store, out=None, pixel_size: float | None = None, spacing_mm: float = DEFAULT_SPACING_MM,
                entrapped_mm: float = DEFAULT_ENTRAPPED_MM, truth: bool = False, overwrite: bool = False,
                scheduler: str | None = None, echo=print, options: ReportOptions | None = None, **more) -> dict:
    """Analyse the store's labels (and with ``truth`` its truth) and write the report folder; returns the
    stats.json document (plus "output", the folder).

    ``store`` may be a list of the slab stores of one specimen. How the figures are measured: ``options`` (a
    :class:`ReportOptions`, as the CLI gives it), or the keywords here and in ``more`` (the other fields of
    ReportOptions: direction, edge_chords, aggregate_voids, min_void_diameter_um, paste_content,
    max_aggregate_mm, region, entrapped_criterion, source, specimen, operator, notes, command), not both.
    ``source="truth"`` measures the traced mask instead of a model's labels (stats.json keeps the figures under
    "labels", the measured mask, and says which in "source")."""
    if options is None:
        options = ReportOptions(pixel_size=pixel_size, spacing_mm=spacing_mm, entrapped_mm=entrapped_mm,
                                truth=truth, **more)
    elif more or pixel_size is not None or truth or spacing_mm != DEFAULT_SPACING_MM \
            or entrapped_mm != DEFAULT_ENTRAPPED_MM:
        raise TypeError("make_report: give options or the measuring keywords, not both")
    options.check()
    stores = list(store) if isinstance(store, list | tuple) else [store]
    if not stores:
        raise BigsegError("give at least one store")
    if len({s_ if st.is_url(s_) else Path(s_).resolve() for s_ in map(str, stores)}) != len(stores):
        raise BigsegError("a store is given twice: each slab counts once")
    if options.region not in (None, "auto") and len(stores) > 1:
        raise BigsegError("--region MASK applies to one store; with several slabs use --region auto or set each "
                          "slab's region with a report of its own")
    for s in stores:
        st.open_store(s)  # clear errors for non-stores before anything is written
    out = Path(out) if out else (default_output(stores[0]) if len(stores) == 1 else None)
    if out is None:
        raise BigsegError("several slabs: name the specimen's report folder with -o")
    refuse_overlap(out, "-o", *[("store", s) for s in stores])

    # without --scheduler: dask's threads in this process (reading and labelling chunks release the GIL)
    with dask_client(0, scheduler, echo=echo) as client, st.staged_output(out, overwrite) as tmp:
        tmp.mkdir()
        slabs = [_slab(s, options, client, echo) for s in stores]
        classes = st.class_table(st.open_store(stores[0]))
        concrete = concrete_ids(classes) is not None
        if len(slabs) > 1 and not concrete:
            raise BigsegError("several slabs make one report for concrete class tables only")
        doc = {"title": "Air-void analysis of hardened concrete" if concrete else "Segmentation report",
               "bigseg_version": __version__, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "specimen": options.specimen, "operator": options.operator, "notes": options.notes,
               "command": options.command, "settings": _settings(options), "classes": slabs[0]["classes"],
               "source": options.source,
               "slabs": [_slab_summary(s) for s in slabs]}
        first = slabs[0]
        doc.update({k: first[k] for k in ("store", "width", "height", "pixel_size_um")})
        for source in ("labels", "truth") if options.truth else ("labels",):
            if len(slabs) == 1 or not concrete:
                doc[source] = {k: v for k, v in first[source].items() if k != "totals"}
            else:
                doc[source] = {k: v for k, v in _specimen(slabs, source, options).items() if k != "totals"}
        if options.truth:
            doc["difference"] = _difference(doc["labels"]["parameters"], doc["truth"]["parameters"])
        doc["warnings"] = _warnings(doc, slabs)
        pictures = render.pictures(stores, doc, classes)  # (records where its crops are in the doc)
        for name, png in pictures.items():
            (tmp / name).write_bytes(png)
        (tmp / "stats.json").write_text(json.dumps(_jsonable(doc), indent=2, allow_nan=False))  # valid JSON
        write_csv(tmp / "stats.csv", doc)
        # any text from a non-UTF-8 file name shows U+FFFD where its odd bytes are (as paths.display does)
        page = html.document(doc, pictures).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        (tmp / "report.html").write_text(page, encoding="utf-8")
    doc["output"] = str(out)
    return doc


def _settings(o: ReportOptions) -> dict:
    keep = ("spacing_mm", "entrapped_mm", "entrapped_criterion", "direction", "edge_chords", "aggregate_voids",
            "min_void_diameter_um", "paste_content", "max_aggregate_mm", "pixel_size", "source")
    return {k: v for k, v in asdict(o).items() if k in keep}


def _slab_summary(s: dict) -> dict:
    out = {k: s[k] for k in ("store", "width", "height", "pixel_size_um", "region", "model", "confidence", "doubt")}
    out["parameters"] = s["labels"]["parameters"]
    if "truth" in s:
        out["truth_parameters"] = s["truth"]["parameters"]
    return out


SYNTHETIC_ONLY = ("labels from the bundled model {name}, trained on synthetic sections only and never on a real "
                  "one: before signing, check it on annotated images of your own concrete (bigseg evaluate) or adapt "
                  "it to them (bigseg adapt)")
"""The caveat every report of a bundled model's labels carries (README: not fit for a signed report unchecked)."""

ENTRAPPED_BLIND = ("this model found none of the 11 entrapped voids (1 mm and more across) on four 8192² classic "
                   "test slabs -- large shaded voids read as stone -- so the entrapped air and the entrapped void "
                   "count read low: look at the large voids in the quicklook before reporting them")
KNOWN_LIMITS = {
    "466a0154e3d63d2c6ba795648c37df628ef8b5b15708753ec659164b407df559": ENTRAPPED_BLIND,  # light_unet
    "440203d873fddd0bc7919cb4d900337b6e00045370d6c1353455370e55337fdc": ENTRAPPED_BLIND,  # deeplabv3plus-adapt
}
"""What a model file is measured not to do, by its sha256 (benchmarks/RESULTS.md, "Entrapped voids", 2026-12-07):
said in every report of its labels. A file shipped later is claimed for only once it has been measured."""


def _warnings(doc: dict, slabs: list[dict]) -> list[str]:
    out = []
    for s in slabs:
        d = s.get("doubt")
        if d and (d.get("flag") or d.get("note")):
            out.append(f"{Path(s['store']).name}: {d['message']}")
        wide = _wider_than_window(s)
        if wide:
            out.append(f"{Path(s['store']).name}: {wide}")
        model = s.get("model") or {}
        if model.get("bundled"):
            shipped = bundled_name(model.get("sha256"))  # a copy elsewhere is named as the model it is
            name = BUNDLED_MODELS[shipped].name if shipped else Path(str(model.get("file"))).name
            out.append(f"{Path(s['store']).name}: " + SYNTHETIC_ONLY.format(name=name))
            limit = KNOWN_LIMITS.get(str(model.get("sha256")))
            if limit:
                out.append(f"{Path(s['store']).name}: {limit}")
            note = adapt_base_note(model.get("sha256"))
            if note:
                out.append(f"{Path(s['store']).name}: labels read without adapting: {note}")
    out += doc["labels"].get("airvoid", {}).get("warnings", [])
    return out


def _wider_than_window(slab: dict) -> str | None:
    """A warning when voids are wider than the model's window: it never saw them whole (large voids are also where
    models err most: shadowed, or read as stone)."""
    totals = (slab.get("labels") or {}).get("totals")
    window, px = slab.get("window"), slab.get("pixel_size_um")
    if totals is None or not window or not px or not hasattr(totals, "void_areas_mm2"):
        return None
    window_mm = window * px / 1000
    diam = 2.0 * np.sqrt(np.asarray(totals.void_areas_mm2, float) / np.pi)
    n = int((diam >= window_mm).sum())
    if not n:
        return None
    return (f"{n} void{'s' if n > 1 else ''} wider than the model's window ({window} px = {window_mm:.3g} mm): it "
            "never saw them whole; check them in the crops and the quicklook, or infer with a larger --window")


def _jsonable(value):
    """stats.json holds plain JSON: numpy numbers become Python ones."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return f"{v:d}"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"  # 30000, not 3e+04


SUMMARY_KEYS = ["air_content", "spacing_factor", "spacing_factor_procedure_a", "specific_surface", "voids_per_mm",
                "paste_air_ratio", "micro_air_content_a300", "paste_content", "aggregate_content",
                "average_chord_length", "void_count", "entrained_air_content", "entrapped_air_content",
                "traverse_length"]


def format_summary(doc: dict) -> str:
    """The key figures for the terminal."""
    params = doc["labels"]["parameters"]
    keys = [k for k in SUMMARY_KEYS if k in params] if "air_content" in params else list(params)
    ci = doc["labels"].get("airvoid", {}).get("uncertainty", {})
    lines = []
    for k in keys:
        p = params[k]
        line = f"{figure(k).name:42s} {_fmt(p['value']):>10s} {p['unit']:6s}"
        interval = ci.get(k) if isinstance(ci.get(k), dict) else None
        if interval:
            line += f" [{_fmt(interval['low'])}, {_fmt(interval['high'])}]"
        if "truth" in doc:
            line += f"  truth {_fmt(doc['truth']['parameters'][k]['value']):>10s}"
        lines.append(line)
    if ci:
        lines.append("[..]: 95 % interval from traverse sampling only, not the segmentation's own errors")
    for w in doc.get("warnings", []):
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)

