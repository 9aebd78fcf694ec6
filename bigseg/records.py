"""What bigseg stores in attributes and checkpoint metadata, typed: the run record a labels array is staged with
(its resume key), the model's provenance a report prints, and the confidence reference ``bigseg calibrate``
measures. Each is a frozen dataclass with ``to_attrs`` (the JSON-ready dict, the same keys as the dicts these
replaced, so stores and checkpoints written before read the same) and ``from_attrs`` (tolerant of records written
by older versions: a missing key takes its default)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACCURATE_POINTS = 0.3
"""Air content within this many percentage points of the truth: "right" (the issue's target). ``bigseg calibrate``
sets its warning from the validation slabs right and wrong by it; the report says the model's record by it."""


@dataclass(frozen=True)
class RunRecord:
    """What a labels array was (or is being) computed with; a staged run resumes only under the same record.
    ``precision``, ``tta``, ``object_rule`` and ``rule_growth_off`` are left out of the attributes at their
    defaults, so that runs staged before they existed still resume. ``object_rule``: whether an adapted model's
    void-object rule was applied (:mod:`bigseg.object_rule`); ``rule_growth_off``: whether its edge growth was
    turned off for this run (a resume never mixes chunks grown and not)."""

    checkpoint_sha256: str
    arch: str
    window: int
    overlap: int
    batch: int
    classes: tuple[str, ...]
    backend: str
    precision: str = "fp32"
    tta: str = "none"
    object_rule: bool = False
    rule_growth_off: bool = False  # the rule's edge growth turned off at infer (--no-grow-void-edges)

    def to_attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"checkpoint_sha256": self.checkpoint_sha256, "arch": self.arch, "window": self.window,
                               "overlap": self.overlap, "batch": self.batch, "classes": list(self.classes),
                               "backend": self.backend}
        if self.precision != "fp32":
            out["precision"] = self.precision
        if self.tta != "none":
            out["tta"] = self.tta
        if self.object_rule:
            out["object_rule"] = True
        if self.rule_growth_off:
            out["rule_growth_off"] = True
        return out

    @classmethod
    def from_attrs(cls, d: dict) -> RunRecord:
        return cls(d["checkpoint_sha256"], d["arch"], int(d["window"]), int(d["overlap"]), int(d["batch"]),
                   tuple(d["classes"]), d.get("backend", "torch"), d.get("precision", "fp32"), d.get("tta", "none"),
                   bool(d.get("object_rule", False)), bool(d.get("rule_growth_off", False)))


@dataclass(frozen=True)
class FigureRange:
    """One confidence figure over the validation slabs: its range and how well it ranked the errors."""

    description: str
    median: float
    max: float
    spearman_with_air_error: float | None
    spearman_with_spacing_factor_error: float | None

    @property
    def rank(self) -> float:
        """How well the figure orders both errors (the one a lab reports, and the spacing factor)."""
        return (self.spearman_with_air_error or 0.0) + (self.spearman_with_spacing_factor_error or 0.0)


@dataclass(frozen=True)
class UnfamiliarGate:
    """Images whose ``figure`` is above ``threshold`` are unlike the model's training data."""

    figure: str
    threshold: float
    rule: str


@dataclass(frozen=True)
class ConfidenceReference:
    """What ``bigseg calibrate`` measured on validation slabs: the figure chosen, the threshold above which a
    report warns and the rule that set it, every figure's range, the unfamiliar-image gate, and each slab's own
    reading (``per_slab``: seed, air error in points, spacing factor error, every figure) so that the rule can be
    checked, or another rule measured, without measuring the slabs again."""

    slabs: int
    size: int | None
    styles: str
    air_error_median: float | None
    air_error_max: float | None
    figures: dict[str, FigureRange] = field(default_factory=dict)
    figure: str | None = None
    threshold: float | None = None
    rule: str = ""
    unfamiliar: UnfamiliarGate | None = None
    per_slab: list[dict] = field(default_factory=list)

    def to_attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"slabs": self.slabs, "size": self.size, "styles": self.styles}
        if self.air_error_median is not None and self.air_error_max is not None:
            out["air_error_points"] = {"median": self.air_error_median, "max": self.air_error_max}
        out["figures"] = {k: vars(v) for k, v in self.figures.items()}
        if self.figure is not None:
            out.update(figure=self.figure, threshold=self.threshold, rule=self.rule)
        if self.unfamiliar is not None:
            out["unfamiliar"] = vars(self.unfamiliar)
        if self.per_slab:
            out["per_slab"] = [dict(r) for r in self.per_slab]
        return out

    @classmethod
    def from_attrs(cls, d: dict) -> ConfidenceReference:
        air = d.get("air_error_points") or {}
        gate = d.get("unfamiliar")
        return cls(slabs=int(d.get("slabs", 0)), size=d.get("size"), styles=str(d.get("styles", "")),
                   air_error_median=None if air.get("median") is None else float(air["median"]),
                   air_error_max=None if air.get("max") is None else float(air["max"]),
                   figures={k: FigureRange(v.get("description", ""), float(v["median"]), float(v["max"]),
                                           v.get("spearman_with_air_error"),
                                           v.get("spearman_with_spacing_factor_error"))
                            for k, v in (d.get("figures") or {}).items()},
                   figure=d.get("figure"), threshold=None if d.get("threshold") is None else float(d["threshold"]),
                   rule=str(d.get("rule", "")),
                   unfamiliar=UnfamiliarGate(gate["figure"], float(gate["threshold"]), gate.get("rule", ""))
                   if gate else None,
                   per_slab=[dict(r) for r in d.get("per_slab") or []])


@dataclass(frozen=True)
class ModelProvenance:
    """What a report says about the model that made the labels: file, sha256, architecture, what it was trained
    on, its confidence reference (when calibrated) and, for a model made by ``bigseg adapt``, that record."""

    file: str
    sha256: str
    arch: str | None
    bundled: bool
    trained_on: Any = None
    description: str | None = None
    confidence_reference: ConfidenceReference | None = None
    precision: str = "fp32"
    adapted: dict | None = None

    def to_attrs(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "arch": self.arch, "bundled": self.bundled,
                "trained_on": self.trained_on, "description": self.description,
                "confidence_reference": self.confidence_reference.to_attrs() if self.confidence_reference else None,
                "precision": self.precision, "adapted": self.adapted}

    @classmethod
    def from_attrs(cls, d: dict) -> ModelProvenance:
        ref = d.get("confidence_reference")
        return cls(file=str(d.get("file", "")), sha256=str(d.get("sha256", "")), arch=d.get("arch"),
                   bundled=bool(d.get("bundled", False)), trained_on=d.get("trained_on"),
                   description=d.get("description"),
                   confidence_reference=ConfidenceReference.from_attrs(ref) if ref else None,
                   precision=d.get("precision", "fp32"), adapted=d.get("adapted"))
