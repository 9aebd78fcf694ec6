"""The report as a document a lab reads, signs and hands out: one self-contained HTML file (pictures embedded,
methods appendix included), laid out for the screen and for print."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from bigseg.report.glossary import FIGURES, GROUPS, figure

CSS = """
body{font-family:"Helvetica Neue",Arial,sans-serif;margin:0;color:#1d2329;background:#f4f5f7}
main{max-width:1050px;margin:0 auto;background:#fff;padding:36px 48px 56px;box-shadow:0 0 12px #0001}
h1{font-size:26px;margin:0 0 4px} h2{font-size:18px;margin:34px 0 8px;border-bottom:2px solid #1f4e9c;
padding-bottom:3px;color:#1f4e9c} h3{font-size:15px;margin:22px 0 6px}
.sub{color:#5b6570;margin:0 0 18px}
table{border-collapse:collapse;width:100%;font-size:13.5px;margin:6px 0}
th,td{padding:4px 8px;border-bottom:1px solid #dde1e6;text-align:right;vertical-align:top}
table.r{table-layout:fixed} table.r td:first-child,table.r th:first-child{width:38%} table.r td.u{width:60px}
th:first-child,td:first-child{text-align:left} thead th{background:#eef2f8;border-bottom:2px solid #c5cfdc}
td.u{text-align:left;color:#5b6570;width:60px} td.n{text-align:left}
.meta{display:grid;grid-template-columns:170px 1fr;gap:3px 14px;font-size:13.5px;margin:0 0 8px}
.meta div:nth-child(odd){color:#5b6570}
.key{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin:14px 0 6px}
.key div{background:#f3f6fb;border:1px solid #d5deea;border-radius:6px;padding:10px 12px}
.key b{display:block;font-size:21px;color:#12325f} .key span{font-size:12px;color:#5b6570}
.warn{background:#fff4e5;border:1px solid #f0b35a;border-left:6px solid #e08600;padding:10px 14px;margin:14px 0;
border-radius:4px;font-size:14px} .warn.bad{background:#fdecec;border-color:#e7a1a1;border-left-color:#c62828}
.ok{background:#eef8ef;border:1px solid #a9d5ad;border-left:6px solid #2e7d32;padding:8px 14px;margin:14px 0;
border-radius:4px;font-size:14px}
figure{margin:14px 0} figure img{max-width:100%;border:1px solid #d5dbe2} figcaption{font-size:12.5px;color:#5b6570}
.sign{display:grid;grid-template-columns:1fr 1fr;gap:30px;margin-top:40px;font-size:13px}
.sign div{border-top:1px solid #333;padding-top:4px}
.methods{font-size:13px;line-height:1.5} .methods td,.methods th{font-size:12.5px}
code{font-size:12px;background:#f1f3f5;padding:1px 4px;border-radius:3px}
@media print{body{background:#fff} main{box-shadow:none;padding:0} h2{break-after:avoid} figure{break-inside:avoid}}
"""


def _e(text) -> str:
    return html.escape("" if text is None else str(text))


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,d}".replace(",", "\u2009")
    if abs(v) >= 1000:  # 30 000, not 3e+04
        return f"{v:,.0f}".replace(",", "\u2009")
    return f"{v:.4g}"


UNITS = {"mm2": "mm²", "1/mm": "mm⁻¹", "1/mm2": "mm⁻²", "1": "", "%": "%", "mm": "mm"}


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _meta_rows(items) -> str:
    return "".join(f"<div>{_e(k)}</div><div>{v}</div>" for k, v in items if v not in (None, ""))


def _key_figures(doc: dict) -> str:
    p = doc["labels"]["parameters"]
    ci = doc["labels"].get("airvoid", {}).get("uncertainty", {})
    boxes = []
    for key in ("air_content", "spacing_factor", "specific_surface", "micro_air_content_a300"):
        if key not in p:
            continue
        interval = ci.get(key) if isinstance(ci.get(key), dict) else None
        rng = (f"95 % interval {_fmt(interval['low'])}–{_fmt(interval['high'])} (traverse sampling only)"
               if interval else "")
        boxes.append(f"<div><span>{_e(figure(key).name)}</span><b>{_fmt(p[key]['value'])} "
                     f"{UNITS.get(p[key]['unit'], p[key]['unit'])}</b><span>{rng}</span></div>")
    return f'<div class="key">{"".join(boxes)}</div>' if boxes else ""


def _tables(doc: dict) -> str:
    sources = [s for s in ("labels", "truth", "difference") if s in doc]
    heads = {"labels": "measured", "truth": "truth", "difference": "measured − truth"}
    ci = doc["labels"].get("airvoid", {}).get("uncertainty", {})
    params = doc["labels"]["parameters"]
    by_group: dict[str, list[str]] = {}
    for key in params:
        by_group.setdefault(figure(key).group, []).append(key)
    out = []
    for group in [g for g in GROUPS if g in by_group] + [g for g in by_group if g not in GROUPS]:
        rows = []
        for key in by_group[group]:
            p = params[key]
            cells = []
            for s in sources:
                v = (doc[s] if s == "difference" else doc[s]["parameters"]).get(key, {}).get("value")
                cells.append(f"<td>{_fmt(v)}</td>")
            interval = ci.get(key) if isinstance(ci.get(key), dict) else None
            ci_cell = f"<td>{_fmt(interval['low'])} – {_fmt(interval['high'])}</td>" if interval else "<td></td>"
            rows.append(f"<tr><td class=n>{_e(figure(key).name)}</td>{''.join(cells)}{ci_cell}"
                        f"<td class=u>{_e(UNITS.get(p['unit'], p['unit']))}</td></tr>")
        head = "".join(f"<th>{heads[s]}</th>" for s in sources)
        out.append(f"<h3>{_e(group)}</h3><table class=r><thead><tr><th>figure</th>{head}"
                   f"<th>95 % interval (traverse sampling only)</th><th></th></tr></thead>"
                   f"<tbody>{''.join(rows)}</tbody></table>")
    return "".join(out)


def _slab_table(doc: dict) -> str:
    if len(doc["slabs"]) < 2:
        return ""
    keys = [k for k in ("air_content", "spacing_factor", "voids_per_mm", "traverse_length", "analysed_area",
                        "void_count") if k in doc["labels"]["parameters"]]
    head = "".join(f"<th>{_e(figure(k).name)}</th>" for k in keys)
    rows = []
    for s in doc["slabs"]:
        rows.append(f"<tr><td>{_e(Path(s['store']).name)}</td><td>{_fmt(s['pixel_size_um'])}</td>"
                    + "".join(f"<td>{_fmt(s['parameters'][k]['value'])}</td>" for k in keys) + "</tr>")
    total = doc["labels"]["parameters"]
    rows.append("<tr><th>specimen (sums)</th><th></th>" + "".join(f"<th>{_fmt(total[k]['value'])}</th>"
                                                                  for k in keys) + "</tr>")
    return (f"<h2>Slabs</h2><p>Traverse lengths, chords, voids and areas are summed over the slabs; the specimen's "
            f"figures are computed from the sums.</p><table><thead><tr><th>slab</th><th>µm/px</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _model_block(doc: dict) -> str:
    parts = []
    for s in doc["slabs"]:
        m = s.get("model") or {}
        if m.get("traced"):
            rows_traced = [("slab", _e(Path(s["store"]).name)),
                           ("measured", _e(f"the traced mask '{m['traced']}' of the store: no model made these "
                                           "figures; they are as good as the tracing"))]
            parts.append(f'<div class="meta">{_meta_rows(rows_traced)}</div>')
            continue
        trained = m.get("trained_on") or []
        trained_text = "; ".join(str(t) for t in trained[:3]) + (" ..." if len(trained) > 3 else "")
        conf = s.get("confidence") or {}
        d = s.get("doubt") or {}
        rows = [("slab", _e(Path(s["store"]).name)), ("model", _e(Path(m.get("file", "")).name or "unknown")
                                                      + (" (bundled)" if m.get("bundled") else "")),
                ("architecture", _e(m.get("arch"))), ("sha256", f"<code>{_e(m.get('sha256', ''))}</code>"),
                ("precision", "int8 (its calibrated export; labels differ from fp32 on a small share of pixels, "
                              "mostly along class boundaries)" if m.get("precision") == "int8" else None),
                ("trained on", _e(trained_text)),
                ("adapted", _e(_adapted_text(m["adapted"])) if m.get("adapted") else None),
                ("mean confidence", _fmt(conf.get("mean_confidence")) if conf else None),
                ("uncertain pixels", f"{100 * conf['uncertain_fraction']:.2f} %" if conf else None),
                ("confidence check", _e(d.get("message")))]
        parts.append(f'<div class="meta">{_meta_rows(rows)}</div>')
    return "".join(parts)


def _adapted_text(a: dict) -> str:
    base = (a.get("base") or {}).get("file") or "?"
    strokes = sum((a.get("strokes") or {}).values())
    acc = ", ".join(f"{k} {100 * v:.1f} %" for k, v in (a.get("held_back_accuracy") or {}).items() if v is not None)
    return (f"from {Path(base).name} by bigseg adapt on {strokes} strokes ({len(a.get('stores') or [])} slab(s), "
            f"{a.get('when', '?')}); held-back strokes labelled right: {acc or 'none scored'}"
            + (f" (scored with --tta {a['tta']})" if a.get("tta") not in (None, "none") else "")
            + (_rule_text(a.get("object_rule_fit") or {}) if a.get("object_rule_applied") else ""))


def _rule_text(fit: dict) -> str:
    steps = [t for k, t in (("cut_merged", "objects cut where the grey rises inside them first"),
                            ("grow_edges", "the voids it kept grown to their edges"),
                            ("growth_off_at_infer", "its growth of the voids it kept turned off for these labels"))
             if fit.get(k)]
    return ("; void objects judged by the rule it learned from the strokes' objects (darkest and mean grey, "
            "roundness)" + (f" -- {'; '.join(steps)}" if steps else ""))


def _warnings(doc: dict) -> str:
    out = []
    for w in doc.get("warnings", []):
        cls = "warn bad" if w.split(": ", 1)[-1].startswith("low confidence") or "low confidence" in w else "warn"
        out.append(f'<div class="{cls}">{_e(w)}</div>')
    if not out and doc.get("source", "labels") != "labels":
        out.append(f'<div class="ok">No warnings: the figures are measured on the traced mask '
                   f"'{_e(doc['source'])}' (no model) and pass the plausibility checks.</div>")
    if not out:
        out.append('<div class="ok">No warnings: the model was calibrated and these labels lie within the range '
                   "where it was right on its validation slabs, and the figures pass the plausibility checks. This "
                   "is not a check against your own annotations.</div>")
    return "".join(out)


FIGURE_CAPTIONS = {
    "quicklook": "The section with the segmentation drawn over it: voids filled blue, stone outlined yellow, paste "
                 "as it is{scale}.",
    "quicklook-truth": "The truth (annotation) drawn the same way.",
    "errors": "Where the segmentation and the truth disagree.",
    "crops": "Full-resolution crops: where the voids are densest{truth} — picture | segmentation"
             "{truth_panel}.",
    "confidence": "The model's confidence: mean probability of the class it chose, over 16 px blocks (yellow: "
                  "sure; dark: torn between classes).",
    "chords": "Lengths of the chords counted on the traverse.",
    "voids": "Sizes of the voids in the section (equivalent diameters).",
}


def _pictures(doc: dict, pictures: dict[str, bytes]) -> str:
    out = []
    truth = "truth" in doc
    for name, png in pictures.items():
        base = name[:-4]
        key = base.rsplit("-", 1)[0] if base.rsplit("-", 1)[-1].isdigit() else base
        caption = FIGURE_CAPTIONS.get(key, key).format(
            scale="", truth=" and where they disagree most with the truth" if truth else "",
            truth_panel=" | truth" if truth else "")
        if key != base:
            caption = f"Slab {base.rsplit('-', 1)[1]}: " + caption
        out.append(f"<figure>{_img(png, name)}<figcaption>{_e(caption)}</figcaption></figure>")
    return "".join(out)


def _settings_rows(doc: dict) -> list:
    s = doc["settings"]
    rows = [("traverse", f"{s['direction']} lines every {s['spacing_mm']:g} mm"),
            ("chords cut by an edge", "counted when they start inside (unbiased)" if s["edge_chords"] == "left-end"
             else "all counted"),
            ("voids in aggregate", "not air: counted as stone" if s["aggregate_voids"] == "exclude" else
             "counted as air"),
            ("entrapped air", f"{s['entrapped_criterion']} above {s['entrapped_mm']:g} mm"),
            ("smallest void", f"{s['min_void_diameter_um']:g} µm" if s["min_void_diameter_um"] else "every void"),
            ("paste content P", f"{s['paste_content']:g} % (mix design)" if s["paste_content"] else
             "measured on the section"),
            ("maximum aggregate", f"{s['max_aggregate_mm']:g} mm" if s["max_aggregate_mm"] else None)]
    return [(k, _e(v)) for k, v in rows]


def methods() -> str:
    """The methods appendix: how the section is measured, and every figure's formula and source."""
    rows = "".join(f"<tr><td class=n>{_e(f.name)}</td><td class=n>{_e(f.formula)}</td><td class=n>{_e(f.source)}"
                   f"</td></tr>" for f in FIGURES.values())
    return f"""<h2>Methods</h2><div class="methods">
<p><b>Segmentation.</b> Every pixel of the scanned section is assigned a class (paste with fine aggregate, stone =
coarse aggregate, void = air void) by a neural network applied in overlapping windows whose predictions are blended
with smooth weights. The class convention: grains under 2 mm count as paste; cracks, polishing scratches and
pull-outs are not voids.</p>
<p><b>Areal analysis</b> (ASTM C457 Procedure B, every pixel a point): the area fraction of each class in the section
estimates its volume fraction in the concrete (Delesse's principle). <b>Linear traverse</b> (Procedure A): straight
lines at a fixed spacing; on each, the runs of void pixels are chords. Only pixels inside the specimen count; a chord
cut by the specimen's edge counts in its length but is counted as a chord only when it starts inside (the unbiased
rule of stereology). <b>Voids</b> are 4-connected regions of void pixels; a void surrounded by stone (over 90 % of its
boundary) is a pore of the aggregate and is not counted as air (EN 480-11 §3.1). <b>EN 480-11</b> figures come from
the chords up to 4 mm sorted into 28 classes and unfolded into sphere sizes (A300 = air in voids up to 300 µm).
<b>Uncertainty</b>: the traverse lines, each with the band of section it stands for, are resampled with replacement
(bootstrap); the intervals are the 2.5 and 97.5 percentiles of the recomputed figures. They cover where the
traverse lines fall, not the segmentation's own errors (see the confidence check and, where there is one, the
comparison with a traced truth). <b>Confidence</b>: the model's
probability of the class it chose, compared with its range on validation sections; outside it, the report warns.</p>
<table class=m><thead><tr><th>figure</th><th style="text-align:left">formula</th><th style="text-align:left">source
</th></tr></thead><tbody>{rows}</tbody></table>
<p>ASTM C457/C457M-16, Standard Test Method for Microscopical Determination of Parameters of the Air-Void System in
Hardened Concrete. EN 480-11:2005, Admixtures for concrete, mortar and grout — Test methods — Part 11: Determination
of air void characteristics in hardened concrete. T. C. Powers (1949), The air requirement of frost-resistant
concrete, Proc. Highway Research Board 29. H. J. G. Gundersen (1977), Notes on the estimation of the numerical density
of arbitrary profiles: the edge effect, J. Microscopy 111. B. Efron, R. Tibshirani (1993), An Introduction to the
Bootstrap.</p></div>"""


def document(doc: dict, pictures: dict[str, bytes]) -> str:
    slabs = doc["slabs"]
    px = ", ".join(f"{_fmt(s['pixel_size_um'])}" for s in slabs)
    size = ", ".join(f"{s['width']} × {s['height']} px" for s in slabs)
    info = [("specimen", _e(doc.get("specimen") or "—")), ("operator", _e(doc.get("operator") or "—")),
            ("date", _e(doc["created"][:10])), ("slabs", _e(", ".join(Path(s["store"]).name for s in slabs))),
            ("image", _e(size)), ("pixel size", _e(f"{px} µm")),
            ("measured mask", _e("the traced truth (no model)") if doc.get("source", "labels") != "labels"
             else None),
            ("specimen region", _e(", ".join((s["region"] or {}).get("method", "whole image") for s in slabs))),
            ("notes", _e(doc.get("notes")))]
    run = [("bigseg", _e(doc["bigseg_version"])), ("created", _e(doc["created"])),
           ("command", f"<code>{_e(doc.get('command'))}</code>" if doc.get("command") else None)]
    concrete = "air_content" in doc["labels"]["parameters"]
    settings = (f'<h2>Measurement settings</h2><div class="meta">{_meta_rows(_settings_rows(doc))}</div>'
                if concrete else "")
    body = f"""<main>
<h1>{_e(doc['title'])}</h1>
<p class="sub">{_e('ASTM C457 and EN 480-11 figures from a segmented section' if concrete else 'class areas')}</p>
<div class="meta">{_meta_rows(info)}</div>
{_warnings(doc)}
{_key_figures(doc)}
<h2>Results</h2>
{_tables(doc)}
{_slab_table(doc)}
{settings}
<h2>Model and confidence</h2>{_model_block(doc)}
<h2>Pictures</h2>{_pictures(doc, pictures)}
{methods()}
<h2>Record</h2><div class="meta">{_meta_rows(run)}</div>
<div class="sign"><div>Analysed by</div><div>Checked and approved by</div></div>
</main>"""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(doc["title"])}: '
            f'{_e(doc.get("specimen") or Path(slabs[0]["store"]).name)}</title><style>{CSS}</style></head>'
            f"<body>{body}</body></html>\n")
