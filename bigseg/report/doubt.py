"""The confidence check a report carries: the candidate figures of doubt read from a labels' confidence summary,
and whether a slab's labels lie outside what the model showed on its validation slabs (the reference written by
``bigseg calibrate``, :mod:`bigseg.trust`), with the two gates beside it (an unfamiliar image, a second model
that disagrees) and the held-back strokes of an adapted model. Pure: no model, no store."""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

from bigseg.records import ACCURATE_POINTS, ConfidenceReference

FIGURES = {
    "uncertain_fraction": "share of pixels whose most likely class has a probability below 0.9",
    "one_minus_confidence": "1 - mean probability of the chosen class",
    "air_soft_hard_gap": "|air content from summed probabilities - air content from labels| / air content from "
                         "labels (pixels torn between void and another class)",
}


FIGURES.update({  # on a sample of windows, after the pass (bigseg.infer.stability)
    "void_view_disagreement": "1 - agreement of the void pixels among the window and its flipped and transposed "
                              "views (sampled windows)",
    "void_view_spread": "relative spread of the void pixel count over the flipped and transposed views (sampled "
                        "windows)",
    "stone_view_disagreement": "1 - agreement of the stone pixels among the views (sampled windows)",
    "void_model_disagreement": "1 - agreement of the void pixels with a second model's (sampled windows)",
    "air_model_gap": "difference between this model's and a second model's void share on the sampled windows "
                     "(percentage points)",
    "feature_shift": "shift of the network's feature statistics from those of its training data (batch-norm "
                     "running means; sampled windows)",
    "early_feature_shift": "shift of the feature statistics of the network's first layers (colour and contrast) "
                           "from those of its training data (sampled windows)",
})


NOT_RANKED = ("feature_shift", "early_feature_shift")
"""Figures never chosen to rank errors: the feature shifts say how unlike the training data an image is (a gate of
their own, :data:`UNFAMILIAR_MARGIN`), not how wrong the labels are among familiar images."""
UNFAMILIAR_MARGIN = 1.5
"""An image whose feature shift exceeds this many times the largest on the validation slabs is unfamiliar."""
UNFAMILIAR_FIGURES = ("early_feature_shift", "feature_shift")
"""The figures the unfamiliar-image gate can be set on, the better first (``bigseg calibrate`` takes the first its
validation slabs measured; references written before the early figure existed gate on the all-layer one)."""
SECOND_OPINION_POINTS = 0.5
"""Two models whose void shares on the sampled windows differ by more than this (percentage points): at least one
of them is off by half of it or more; the report says so (a fixed rule, the accuracy a lab needs: no slab 0.5
points off without a warning)."""


def figures(confidence: dict) -> dict[str, float]:
    """The candidate figures of doubt from a labels' confidence summary."""
    out = {"uncertain_fraction": confidence["uncertain_fraction"],
           "one_minus_confidence": 1.0 - confidence["mean_confidence"]}
    if "air_content_hard" in confidence:
        hard = confidence["air_content_hard"]
        out["air_soft_hard_gap"] = abs(confidence["air_content_soft"] - hard) / max(hard, 1e-4)
    views = confidence.get("stability") or {}
    for key in ("void_view_disagreement", "void_view_spread", "feature_shift", "early_feature_shift",
                "void_model_disagreement", "air_model_gap"):
        if views.get(key) is not None:
            out[key] = float(views[key])
    if "stone" in (views.get("view_agreement") or {}):
        out["stone_view_disagreement"] = 1.0 - float(views["view_agreement"]["stone"])
    return out


WEAK_RANK = 0.3
"""A chosen figure whose Spearman with the validation slabs' air errors is below this is said to rank them weakly."""


_RULE_COUNTS = re.compile(r"\(only (\d+) of (\d+) were within")
"""The counts in the rule ``bigseg calibrate`` writes when too few slabs were right, for references written before
each slab's reading was kept (the bundled model's)."""


def _record(reference: ConfidenceReference) -> tuple[int, str] | None:
    """(validation slabs off by more than :data:`ACCURATE_POINTS`, the model's record on its validation slabs in
    words: how often it read air right, its median error, and, when weak, how little the chosen figure ranked the
    errors) from the slabs' own readings, or the counts its rule states; None when neither is there."""
    errors = [abs(float(r["air_error_points"])) for r in reference.per_slab if "air_error_points" in r]
    if errors:
        right, total = sum(e <= ACCURATE_POINTS for e in errors), len(errors)
    else:
        m = _RULE_COUNTS.search(reference.rule)
        if m is None:
            return None
        right, total = int(m.group(1)), int(m.group(2))
    out = f"it read air content within {ACCURATE_POINTS:g} points on only {right} of its {total} validation slabs"
    if reference.air_error_median is not None:
        out += f", {reference.air_error_median:.2g} points off at the median"
    figure = reference.figures.get(reference.figure or "")
    rank = figure.spearman_with_air_error if figure is not None else None
    if rank is not None and rank < WEAK_RANK:
        out += f", and this figure barely ranked their errors: Spearman {rank:+.2f}"
    return total - right, out


def _threshold_basis(reference: ConfidenceReference, flagged: bool = True) -> str:
    """What the threshold is, in words, from the rule :func:`calibrate` recorded (none before rules were recorded:
    the most over all validation slabs). When the model was right on too few validation slabs for a range, its
    record is said with it: the warning is then on almost every slab, and a lab must know that it says more about
    the model than about this slab; and an unflagged slab is less doubtful than those, not shown right."""
    rule = reference.rule
    if rule.startswith("the largest") and "within" in rule:
        return "the most it reached on validation slabs where its air content was right"
    if rule.startswith("the median"):
        return "the median of its validation slabs"
    if rule.startswith("the smallest"):
        found = _record(reference)
        if found is None:  # a rule worded before its counts were
            return ("as doubtful as validation slabs where its air content was wrong (it was right on too few for a "
                    "range)")
        wrong, record = found
        if flagged:
            return (f"as doubtful as the {wrong} validation slabs where its air content was more than "
                    f"{ACCURATE_POINTS:g} points off ({record}; only an image less doubtful than all of them goes "
                    "unflagged, so this warning says as much about the model as about this slab)")
        return (f"less doubtful than all {wrong} validation slabs where its air content was more than "
                f"{ACCURATE_POINTS:g} points off ({record}: unflagged, not shown right)")
    return f"the most it reached on its {reference.slabs} validation slabs"


ADAPTED_MIN_ACCURACY = 0.95
"""An adapted model whose labels are right on less than this share of any class's held-back stroke pixels gets the
low-confidence warning."""


ADAPTED_AIR_RECORD = ("the score did not predict the air content's error where it was measured (rank correlation "
                      "+0.04 over 126 synthetic slabs; with today's defaults adapted labels read air within 0.3 points "
                      "on 8 of 16 held-out slabs, within 0.6 on 10, and up to 2.1 points off)")
"""What the held-back score does not say, measured (benchmarks/RESULTS.md, "What the held-back strokes tell";
``python benchmarks/adapt_trust.py``): it ranks void IoU a little and the air content's error not at all, so a
passing score must not read as a right air content. The held-out band is the README's table (RESULTS.md, "The
held-out table with local edges and the colour prior", 2026-12-06)."""


ADAPTED_LOOK_LIMIT = 0.15
"""A slab whose look (:func:`profile_distance` of the first layers' feature statistics) lies further than this from
every slab a model was adapted on gets the low-confidence warning: the held-back strokes say nothing about it.
Measured on development and validation slabs with the bundled model and two adapted ones (benchmarks/RESULTS.md,
"Is this the slab it was adapted to?"; ``python benchmarks/look_distance.py``): a slab's sibling (same style,
another seed) 0.012-0.076 from it; slabs of another style 0.15-6.7, except look-alikes (classic against crushed,
dark random styles against contrast: 0.02-0.10); 0.15 is twice the siblings' largest."""


def profile_distance(a: list | None, b: list | None) -> float | None:
    """How far apart two looks are (``early_profile`` of :mod:`bigseg.infer.stability`: per early batch-norm layer,
    the channel means in running standard deviations): the squared difference, averaged over channels and then
    layers (the units of ``feature_shift``); None when they were not measured on the same layers."""
    if not a or not b or [len(x) for x in a] != [len(x) for x in b]:
        return None
    return float(sum(sum((p - q) ** 2 for p, q in zip(x, y, strict=True)) / len(x)
                     for x, y in zip(a, b, strict=True)) / len(a))


def look_distance(adapted: dict, confidence: dict | None) -> tuple[float, str] | None:
    """The distance of a slab's look (its labels' confidence summary) from the nearest slab the model was adapted
    on, and that slab's name; None when either side was not measured (older models or labels)."""
    mine = ((confidence or {}).get("stability") or {}).get("early_profile")
    best = None
    for store, theirs in (adapted.get("painted_profiles") or {}).items():
        d = profile_distance(mine, theirs)
        if d is not None and (best is None or d < best[0]):
            best = (d, Path(store).name)
    return best


def adapted_doubt(adapted: dict, confidence: dict | None = None) -> dict:
    """The confidence check of a model made by ``bigseg adapt``: its accuracy on the strokes it held back (painted
    on this lab's own slabs) replaces the base model's synthetic validation range, which says nothing about it --
    as long as this slab looks like the slabs it was adapted on (:data:`ADAPTED_LOOK_LIMIT`)."""
    acc = {k: v for k, v in (adapted.get("held_back_accuracy") or {}).items() if v is not None}
    n = sum((adapted.get("held_back_strokes") or {}).values())
    look = look_distance(adapted, confidence)
    if look is not None and not look[0] <= ADAPTED_LOOK_LIMIT:
        # adapted on this slab alone, a model forgets the ones it was adapted on (benchmarks/RESULTS.md, "Following
        # the report's advice"): the advice names them beside it
        theirs = " ".join(shlex.quote(s) for s in adapted.get("painted_profiles") or {})
        return {"flag": True, "figure": "look_distance", "value": look[0], "threshold": ADAPTED_LOOK_LIMIT,
                "message": f"low confidence: this slab looks unlike the slab(s) the model was adapted on (the "
                           f"feature statistics of its first layers lie {look[0]:.3g} from {look[1]}'s, above "
                           f"{ADAPTED_LOOK_LIMIT:g}), so its held-back strokes say nothing about these labels; "
                           "paint a few strokes on this slab and adapt again on it together with the slab(s) the "
                           f"model was adapted on, so that it keeps them (bigseg adapt {theirs} THIS_STORE --model "
                           "THE_ADAPTED_MODEL)"}
    alike = (f" (this slab looks like {look[1]}, one it was adapted on: {look[0]:.3g} apart, within "
             f"{ADAPTED_LOOK_LIMIT:g})" if look is not None else "")
    seen = {"look_distance": look[0]} if look is not None else {}
    if not acc:
        return {"flag": True, "figure": "held_back_accuracy", "value": None, "threshold": ADAPTED_MIN_ACCURACY,
                **seen, "message": "low confidence: the adapted model was scored on no held-back strokes (paint "
                                   "more strokes per class and adapt again)"}
    worst = min(acc, key=lambda k: acc[k])
    parts = ", ".join(f"{k} {100 * v:.1f} %" for k, v in acc.items())
    if acc[worst] < ADAPTED_MIN_ACCURACY:
        return {"flag": True, "figure": "held_back_accuracy", "value": acc[worst], "threshold": ADAPTED_MIN_ACCURACY,
                **seen,
                "message": f"low confidence: on {n} strokes it held back, the model adapted to this concrete (bigseg "
                           f"adapt){alike} labels only {parts} of the pixels right ({worst} below "
                           f"{100 * ADAPTED_MIN_ACCURACY:.0f} %); paint more {worst} strokes where it is wrong "
                           "and adapt again"}
    return {"flag": False, "figure": "held_back_accuracy", "value": acc[worst], "threshold": ADAPTED_MIN_ACCURACY,
            "note": True, **seen,
            "message": f"labels from a model adapted to this concrete (bigseg adapt){alike}: on {n} strokes it held "
                       f"back it labels {parts} of the pixels right; strokes lie inside regions, so class boundaries "
                       f"are not tested by this check, and {ADAPTED_AIR_RECORD}: look at the quicklook and the "
                       "crops before signing"}


def doubt(confidence: dict | None, reference: ConfidenceReference | dict | None, adapted: dict | None = None) -> dict:
    """Whether a store's labels lie outside the confidence range the model showed on its validation styles:
    {"flag": bool or None, "figure", "value", "threshold", "message"}; for an adapted model, its held-back
    strokes decide (:func:`adapted_doubt`). ``reference`` as calibrate made it, or as stored (its attributes)."""
    if isinstance(reference, dict):
        reference = ConfidenceReference.from_attrs(reference)
    if adapted:
        return adapted_doubt(adapted, confidence)
    if not confidence:
        return {"flag": None, "note": True,
                "message": "not checked: these labels carry no confidence figures (made by an older bigseg); run "
                           "bigseg infer again before relying on them"}
    values = figures(confidence)
    if reference is None or reference.figure not in values or reference.threshold is None:
        v = values["uncertain_fraction"]
        return {"flag": None, "note": True, "figure": "uncertain_fraction", "value": v,
                "message": f"not checked: the model was never calibrated, so there is no range to tell whether these "
                           f"labels can be trusted ({100 * v:.2f} % of pixels uncertain); check it on annotated images "
                           "of your own (bigseg evaluate) or calibrate it (bigseg calibrate MODEL)"}
    name = reference.figure
    v, limit = values[name], reference.threshold
    flag = bool(v > limit) if math.isfinite(v) else True
    where = _threshold_basis(reference, flag)
    message = f"{FIGURES[name]} is {v:.4g}, {'above' if flag else 'within'} {limit:.4g}, {where}"
    out: dict = {"flag": flag, "figure": name, "value": v, "threshold": limit, "message": message}
    reasons = [message] if flag else []
    gate = reference.unfamiliar
    shift = values.get(gate.figure) if gate else None
    if gate and shift is not None and not shift <= gate.threshold:
        what = "feature shift of its first layers" if gate.figure == "early_feature_shift" else "feature shift"
        reasons.append(f"the image is unlike the model's training data ({what} {shift:.3g}, above "
                       f"{gate.threshold:.3g}: {gate.rule}), where a confident softmax means nothing")
        out.update(flag=True, unfamiliar=True)
    gap = values.get("air_model_gap")
    if gap is not None and not gap <= SECOND_OPINION_POINTS:
        second = Path(str((confidence.get("stability") or {}).get("second_model", "a second model"))).name
        reasons.append(f"a second model ({second}) reads the void share of the sampled windows {gap:.2f} points "
                       f"differently (more than {SECOND_OPINION_POINTS:g}): at least one of the two is off")
        out.update(flag=True, second_opinion_points=gap)
    if out["flag"]:
        out["message"] = ("low confidence: " + "; ".join(reasons) + "; these figures may be wrong -- look at the "
                          "quicklook, or adapt the model to this concrete (bigseg adapt)")
    return out
