"""What the verbs return: frozen dataclasses, typed for callers and mypy, that still read like the dicts they
replace (``r["path"]`` and ``r.path`` are the same), so scripts written against the dicts keep working."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Result:
    """Base of the verbs' results: attribute access, dict-style reading (``r["key"]``, ``"key" in r``,
    ``r.get``), and :meth:`to_dict` for JSON."""

    def __getitem__(self, key: str) -> Any:
        if key not in self:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in {f.name for f in fields(self)}

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self else default

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ExportResult(Result):
    """:func:`bigseg.export.export`: the file written and how it was checked against PyTorch."""

    path: str
    format: str
    precision: str
    arch: str
    bytes: int
    verified: dict


@dataclass(frozen=True)
class TrainResult(Result):
    """:func:`bigseg.train.loop.train`: the run folder, iterations done of the planned, losses, validation."""

    out: str
    iterations: int
    of: int
    seconds: float
    first_loss: float | None
    last_loss: float | None
    val: dict | None
    model: str | None  # OUT/model.pt once every iteration is done; None for a run stopped early
    it_per_second: float


@dataclass(frozen=True)
class ImportResult(Result):
    """:func:`bigseg.weights_import.import_weights`: the checkpoint written and what it was read as."""

    path: str
    arch: str
    classes: list
    bgr: bool
    aux_dropped: int  # tensors of an auxiliary head left out
    max_abs_diff: float  # against the bare network fed as the original trainer fed it


@dataclass(frozen=True)
class SynthResult(Result):
    """:func:`bigseg.synth.synthesize`: the image and truth written, and what the truth holds."""

    image: str
    truth: str
    width: int
    height: int
    seed: int
    style: str  # "classic" or a named / random style
    style_parameters: dict | None  # every parameter of a styled slab (None for classic)
    pixel_size_um: float
    pixel_counts: dict  # truth pixels per class name
    fractions: dict  # truth area fraction per class name
    targets: dict  # the stone and void fractions the generator aimed at


MONAI_FIGURES = ("monai_seconds", "monai_load_seconds", "monai_mpx_per_s", "monai_peak_rss_mb", "speed_vs_monai",
                 "monai_whole_seconds", "whole_speed_vs_monai", "rss_vs_monai", "label_agreement_with_monai")


@dataclass(frozen=True)
class BenchResult(Result):
    """:func:`bigseg.bench.bench`: the model alone (the limit), bigseg end to end and the whole call, memory, and
    (when MONAI ran beside) MONAI's figures; times in seconds, throughput in megapixels per second."""

    arch: str
    backend: str
    precision: str
    device: str
    gpu: str | None
    cpu_cores: int
    size: list[int]
    megapixels: float
    window: int
    overlap: int
    batch: int | None
    stripe: int | None
    workers: int
    threads_per_worker: int
    windows: int
    limit_seconds: float
    limit_mpx_per_s: float
    end_to_end_seconds: float
    end_to_end_mpx_per_s: float
    efficiency: float
    cluster_startup_seconds: float
    whole_seconds: float
    whole_mpx_per_s: float
    prep_seconds: float
    peak_worker_rss_mb: float
    peak_client_rss_mb: float
    peak_total_rss_mb: float
    python: str
    torch: str
    machine: str
    monai_seconds: float | None = None
    monai_load_seconds: float | None = None
    monai_mpx_per_s: float | None = None
    monai_peak_rss_mb: float | None = None
    speed_vs_monai: float | None = None
    monai_whole_seconds: float | None = None
    whole_speed_vs_monai: float | None = None
    rss_vs_monai: float | None = None
    label_agreement_with_monai: float | None = None

    def to_dict(self) -> dict:
        """The figures as JSON data; MONAI's only when it ran."""
        out = asdict(self)
        if self.monai_seconds is None:
            for k in MONAI_FIGURES:
                out.pop(k)
        return out


@dataclass(frozen=True)
class OmeExportResult(Result):
    """:func:`bigseg.formats.ome_zarr.export_ome`: the OME-Zarr written, its levels and the masks it holds."""

    path: str
    levels: int
    width: int
    height: int
    labels: list  # the masks written under labels/ ("labels", "truth")
    version: str  # OME-Zarr (NGFF) version


@dataclass(frozen=True)
class TiffExportResult(Result):
    """:func:`bigseg.formats.tiff.export_tiff`: the pyramidal (Big)TIFF written."""

    path: str
    layer: str
    levels: int
    width: int
    height: int


@dataclass(frozen=True)
class ObjectsExportResult(Result):
    """:func:`bigseg.formats.objects.export_objects`: the file written and how many objects of each class."""

    path: str
    objects: int
    per_class: dict


@dataclass(frozen=True)
class AnnotationsImportResult(Result):
    """:func:`bigseg.annotations.import_mask`: the mask imported into the store and the pixels per class."""

    store: str
    mask: str
    painted: dict


@dataclass(frozen=True)
class Scores(Result):
    """:func:`bigseg.metrics.scores` of a confusion matrix: per-class IoU and accuracy (None where a class is
    absent), their mean, pixel accuracy and the pixels counted."""

    iou: dict
    accuracy: dict
    mean_iou: float | None
    pixel_accuracy: float | None
    pixels: int


@dataclass(frozen=True)
class EvaluationResult(Result):
    """:func:`bigseg.report.evaluate.evaluate`: the summed confusion matrix (rows: reference, columns: labels),
    its scores, and each store's. ``to_dict`` is the JSON ``bigseg evaluate --json`` writes (the scores at the
    top level, as before)."""

    classes: list
    reference: str  # "truth" or "annotations"
    confusion: list
    scores: Scores
    stores: dict  # store -> Scores

    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def get(self, key: str, default=None):
        return self.to_dict().get(key, default)

    def keys(self) -> list[str]:
        return list(self.to_dict())

    def to_dict(self) -> dict:
        return {"classes": self.classes, "reference": self.reference, "confusion": self.confusion,
                **self.scores.to_dict(), "stores": {k: v.to_dict() for k, v in self.stores.items()}}


@dataclass(frozen=True)
class LrSweepResult(Result):
    """:func:`bigseg.train.lr_finder.find_lr`: learning rates swept, smoothed and raw losses, the suggested rate
    (None when the loss never fell) and the plot written."""

    lrs: list
    losses: list
    raw_losses: list
    suggestion: float | None
    plot: str


@dataclass(frozen=True)
class DemoResult(Result):
    """:func:`bigseg.demo.run_demo`: what the whole job wrote, the labels' statistics and the truth's areas."""

    image: str
    store: str
    report: str
    stats: dict
    truth: dict
