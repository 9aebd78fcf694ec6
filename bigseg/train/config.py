"""Training configuration: YAML validated by pydantic, with errors that name the bad key."""

from __future__ import annotations

import glob
import math
import os
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bigseg import checkpoint as ckpt
from bigseg import store as st
from bigseg.architectures import ARCHITECTURES, deeplabv3plus_option_error
from bigseg.errors import BigsegError
from bigseg.synth.styles import HELD_OUT, style_names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # lr: .inf is refused, not trained on


def bundled_file(v: str) -> str:
    """A bundled model's name (as ``--model`` takes it) is its file, unless a file of that name is here."""
    try:
        return str(ckpt.model_path(v))
    except BigsegError as exc:
        raise ValueError(str(exc)) from exc


class ModelConfig(_Strict):
    arch: str = "deeplabv3_resnet50"
    width: int | None = Field(None, ge=4, le=128, description="channel width (light_unet only)")
    refine: bool = Field(False, description="a full-resolution edge-refinement head on the logits")
    refine_hidden: int = Field(8, ge=2, le=64, description="channels of the edge-refinement head (with refine); "
                                                           "a head of another width starts fresh from a model.init")
    pretrained_backbone: bool = False
    output_stride: Literal[8, 16] = Field(16, description="deeplabv3plus_mobilenet_v3_large: 8 dilates one more "
                                                          "stage (finer features, ~3.3x a step's cost)")
    decoder_stride: Literal[2, 4] = Field(4, description="deeplabv3plus_mobilenet_v3_large: 2 takes the decoder on to "
                                                         "stride 2 (a fresh step that starts from a stride-4 "
                                                         "model.init's answers)")
    init: str | None = Field(None, description="start from this bigseg checkpoint's weights (fine-tuning): a path, or "
                                             "a bundled model's name (light_unet); a light_unet of a smaller "
                                             "width is widened to this one, its answers kept (bigseg.train.widen)")

    @field_validator("init")
    @classmethod
    def _bundled_by_name(cls, v):
        return None if v is None else bundled_file(v)

    @field_validator("arch")
    @classmethod
    def _known(cls, v):
        if v not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {v!r}; choose one of {', '.join(ARCHITECTURES)}")
        return v

    @model_validator(mode="after")
    def _stride_for_deeplabv3plus(self):
        if (wrong := deeplabv3plus_option_error(self.arch, self.output_stride, self.decoder_stride)) is not None:
            raise ValueError(wrong)
        return self

    def kwargs(self) -> dict:
        kw = {}
        if self.arch == "light_unet" and self.width is not None:
            kw["width"] = self.width
        if self.refine:
            kw["refine"] = True
            if self.refine_hidden != 8:
                kw["refine_hidden"] = self.refine_hidden
        if self.pretrained_backbone:
            kw["pretrained_backbone"] = True
        if self.output_stride != 16:
            kw["output_stride"] = self.output_stride
        if self.decoder_stride != 4:
            kw["decoder_stride"] = self.decoder_stride
        return kw


class OptimizerConfig(_Strict):
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)


class ScheduleConfig(_Strict):
    name: Literal["poly", "onecycle", "constant"] = "poly"
    power: float = Field(0.9, gt=0)
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="onecycle: fraction of steps rising")


class PhotometricConfig(_Strict):
    """Photometric augmentation (bigseg.train.augment): each operation applied with ``probability``."""

    probability: float = Field(0.5, ge=0, le=1)
    brightness: float = Field(0.2, ge=0, le=0.9, description="max relative brightness change")
    contrast: float = Field(0.2, ge=0, le=0.9, description="max relative contrast change")
    gamma: float = Field(0.25, ge=0, le=1.5, description="gamma drawn log-uniformly in exp(+-gamma)")
    colour: float = Field(0.08, ge=0, le=0.5, description="max relative change of each channel's gain")
    saturation: float = Field(0.3, ge=0, le=1, description="max relative saturation change")
    hue: float = Field(0.0, ge=0, le=1, description="max hue rotation about the grey axis, in half turns (1: any "
                       "hue); 0: none")
    channel_order: bool = Field(False, description="the colour channels in a random order")
    blur: float = Field(1.5, ge=0, le=5, description="largest Gaussian blur sigma (px); 0: none")
    noise: float = Field(6.0, ge=0, le=50, description="largest noise sigma (grey levels of 255); 0: none")
    jpeg: tuple[int, int] | None = Field((50, 95), description="JPEG re-encoding quality range; null: none")

    @field_validator("jpeg")
    @classmethod
    def _quality(cls, v):
        if v is not None and not 1 <= v[0] <= v[1] <= 100:
            raise ValueError(f"jpeg quality range must be 1 <= low <= high <= 100, got {list(v)}")
        return v


class AugmentConfig(_Strict):
    hflip: bool = True
    vflip: bool = True
    rot90: bool = False
    color_jitter: float = Field(0.0, ge=0, le=0.5, description="max relative brightness/contrast change")
    scale: tuple[float, float] | None = Field(None, description="random rescale range, e.g. [0.75, 1.25]")
    photometric: PhotometricConfig | None = Field(None, description="brightness, contrast, gamma, colour, blur, "
                                                  "noise, JPEG (bigseg.train.augment)")

    @field_validator("scale")
    @classmethod
    def _scale(cls, v):
        if v is not None and not 0 < v[0] <= v[1] <= 10:
            raise ValueError(f"scale range must be 0 < low <= high <= 10, got {list(v)}")
        return v


class SyntheticConfig(_Strict):
    """Crops rendered on the fly from synthetic sections (bigseg.train.synthetic), instead of stores."""

    styles: dict[str, float] = Field(default_factory=lambda: {"random": 1.0},
                                     description="style name -> weight (random: a new style per region)")
    region: int = Field(1024, ge=64, le=4096, description="side (px) of each rendered region")
    crops_per_region: int = Field(8, ge=1, le=64, description="crops taken from one rendered region")
    seed: int = Field(0, ge=0)
    min_pixel_size_um: float | None = Field(
        None, gt=0, le=100, description="render every slab finer than this at this pixel size (um): the network "
        "then sees no pixel finer, as infer shows it a finer scan (checkpoint meta working_pixel_size_um)")
    large_voids: float = Field(0.0, ge=0, le=1, description="share of classic regions whose voids are drawn large "
                               "(median diameter 0.4-1.2 mm, up to 4 mm: entrapped air, which the usual size "
                               "distribution almost never draws); 0 leaves every region as it was")
    entrapped_voids: float = Field(0.0, ge=0, le=1, description="share of classic regions that carry entrapped "
                                   "voids (1-4 mm, median 1.6 mm) as a second population among the usual ones, "
                                   "30-60 % of the region's air, its air fraction unchanged; 0 leaves every region "
                                   "as it was")
    entrapped_voids_styled: float = Field(0.0, ge=0, le=1, description="the same for styled (non-classic) "
                                          "regions: that share carries entrapped voids in its style's own void looks "
                                          "(rim-lit, filled...); 0 leaves every region as it was")

    @field_validator("styles")
    @classmethod
    def _styles(cls, v):
        if not v:
            raise ValueError("give at least one style")
        for name, weight in v.items():
            if name in HELD_OUT:
                raise ValueError(f"{name!r} is a held-out style (benchmarks/generalization.py); never train on it")
            if name not in style_names():
                raise ValueError(f"unknown style {name!r}; choose from {', '.join(style_names())}")
            if not (weight > 0 and math.isfinite(weight)):
                raise ValueError(f"style weights must be positive, got {name}: {weight}")
        return v


class RareClassConfig(_Strict):
    class_id: int = Field(..., ge=0)
    fraction: float = Field(0.3, gt=0, le=1, description="share of crops centred on a chunk holding the class")


class LossTerm(_Strict):
    """One term of the training loss (bigseg.train.losses): ``{name: dice, weight: 0.5}``."""

    name: Literal["cross_entropy", "focal", "dice", "lovasz", "ohem"]
    weight: float = Field(1.0, gt=0, description="the term's weight in the sum")
    gamma: float = Field(2.0, ge=0, le=10, description="focal: the focusing exponent (0: cross-entropy)")
    threshold: float = Field(0.7, gt=0, le=1, description="ohem: pixels whose true-class probability is below "
                             "this are hard")
    min_kept: float = Field(0.1, gt=0, le=1, description="ohem: at least this share of the valid pixels")


class DistillConfig(_Strict):
    """Keep a model's own answers while it learns more (``distill:``): besides the loss on the truth, the KL
    divergence from a frozen ``teacher``'s class probabilities on the same crops (bigseg.train.losses.distill)."""

    teacher: str = Field(..., description="a bigseg checkpoint with the run's classes (e.g. the model.init one)")
    weight: float = Field(1.0, gt=0, description="the divergence's weight beside the loss on the truth")
    where: Literal["agree", "all"] = Field("agree", description="agree: only the pixels where the teacher's label "
                                           "is the truth's (what it already knows); all: every labelled pixel")
    temperature: float = Field(1.0, gt=0, le=10, description="softening of both distributions (Hinton et al.)")

    @field_validator("teacher")
    @classmethod
    def _bundled_by_name(cls, v):
        return bundled_file(v)


class StageConfig(_Strict):
    """One stage of a staged run (``stages:``): what changes from the config above it for these iterations."""

    iterations: int = Field(..., ge=1)
    crop: int | None = Field(None, ge=32, le=4096, description="crop side for this stage (e.g. half, then full)")
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0, description="the optimizer's learning rate for this stage")
    encoder_lr: float | None = Field(None, gt=0, description="the encoder's own learning rate (discriminative)")
    freeze: list[str] | None = Field(None, description="parts not trained in this stage: encoder, or "
                                     "parameter-name prefixes")


class TrainConfig(_Strict):
    train: list[str] = Field(default_factory=list, description="slab stores or globs with image + truth")
    val: list[str] = Field(default_factory=list)
    synthetic: SyntheticConfig | None = Field(None, description="instead of stores: synthetic crops rendered on "
                                              "the fly")
    model: ModelConfig = ModelConfig()
    crop: int = Field(900, ge=32, le=4096)
    batch_size: int = Field(4, ge=1)
    iterations: int | None = Field(None, ge=1, description="optimizer steps [default 1000 unless epochs is set]")
    epochs: float | None = Field(None, gt=0, description="instead of iterations: passes over the training area, "
                                 "one pass = crops covering every training pixel once")
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    augment: AugmentConfig = AugmentConfig()
    amp: bool = Field(True, description="bf16 autocast where it measured faster: always on CUDA, on a CPU with "
                      "bf16 hardware per architecture (bigseg.models.CPU_TRAINING); false: fp32")
    ignore_label: int = Field(255, ge=0, le=255)
    class_weights: list[float] | Literal["auto"] | None = Field(None, description="per class, for the cross-"
                                                                 "entropy, focal and OHEM terms; auto: median-"
                                                                 "frequency balancing from the stores' truth")
    freeze: list[str] = Field(default_factory=list, description="parts not trained: encoder (the architecture's "
                              "backbone), or parameter-name prefixes such as net.classifier.")
    encoder_lr: float | None = Field(None, gt=0, description="the encoder's learning rate when it should differ "
                                     "from optimizer.lr (discriminative learning rates, as fastai's)")
    stages: list[StageConfig] = Field(default_factory=list, description="train in stages, each from the one "
                                      "before (fastai's recipe: frozen encoder at half size, then unfrozen at "
                                      "full); replaces iterations")
    loss: list[LossTerm] = Field(default_factory=list, description="the loss: one name (cross_entropy, focal, "
                                 "dice, lovasz, ohem) or a list of terms {name, weight, ...} summed [cross_entropy]")
    rare_class: RareClassConfig | None = None
    distill: DistillConfig | None = Field(None, description="keep a teacher's answers where it is right "
                                          "(learning without forgetting)")
    ema: float | None = Field(None, gt=0, lt=1, description="also keep an exponential moving average of the "
                              "weights (and batch-norm statistics) with this decay per step, e.g. 0.998 (about the "
                              "last 500 steps): model.pt holds the average, last.pt the raw weights and the average; "
                              "validation reads the average; a resume keeps the decay it was started with; in a "
                              "staged run each stage averages afresh, from the stage before's average")
    checkpoint_every: int = Field(50, ge=1)
    val_every: int = Field(200, ge=1)
    val_crops: int = Field(16, ge=1)
    seed: int = Field(0, ge=0)
    out: str = "runs/train"
    num_workers: int = Field(2, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = False

    @field_validator("loss", mode="before")
    @classmethod
    def _loss(cls, v):
        if v is None:
            return []
        if isinstance(v, str):
            return [{"name": v}]
        if isinstance(v, dict):
            return [v]
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if bool(self.train) == (self.synthetic is not None):
            raise ValueError("give training stores (train: [...]) or synthetic: {...}, one of the two")
        if self.synthetic is not None and self.epochs is not None and not self.train:
            raise ValueError("epochs count passes over training stores; with synthetic crops only, give iterations")
        if self.class_weights == "auto" and not self.train:
            raise ValueError("class_weights: auto counts the training stores' truth; with synthetic crops give "
                             "the weights as numbers")
        if isinstance(self.class_weights, list) and any(w < 0 for w in self.class_weights):
            raise ValueError("class_weights must be non-negative")
        if self.model.arch.startswith("deeplabv3") and self.batch_size < 2:
            raise ValueError("DeepLabV3's image pooling branch normalises over the batch: batch_size must be at "
                             "least 2")
        if self.stages:
            if self.iterations is not None or self.epochs is not None:
                raise ValueError("with stages, give each stage its iterations (not iterations or epochs above)")
            self.iterations = sum(st.iterations for st in self.stages)
            return self
        if self.iterations is not None and self.epochs is not None:
            raise ValueError("give iterations or epochs, not both")
        if self.iterations is None and self.epochs is None:
            self.iterations = 1000
        return self

    @property
    def steps(self) -> int:
        """``iterations``, known once the config is loaded (from ``epochs`` by :func:`resolve_epochs`)."""
        if self.iterations is None:
            raise ValueError("iterations not known yet: epochs are turned into iterations when the config is loaded")
        return self.iterations

    def iterations_for_area(self, pixels: int) -> int:
        """``epochs`` in optimizer steps for a training set of ``pixels`` pixels (image area)."""
        if self.epochs is None:
            raise ValueError("iterations_for_area needs epochs")
        return max(1, math.ceil(self.epochs * pixels / (self.crop * self.crop * self.batch_size)))


def _glob(pattern: str) -> list[str]:
    if "://" not in pattern:
        return sorted(glob.glob(pattern))
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(pattern)
        return sorted(fs.unstrip_protocol(p) for p in fs.glob(root))
    except (ImportError, ValueError) as exc:  # no backend for the protocol
        raise BigsegError(f"{pattern}: cannot list ({exc})") from exc


def _resolve(patterns: list[str], base: Path) -> list[str]:
    """Store paths from paths, globs and fsspec URLs (globs too: ``s3://bucket/slabs/*.zarr``)."""
    out = []
    for pat in patterns:
        full = pat if os.path.isabs(pat) or "://" in pat else str(base / pat)
        hits = _glob(full) if any(ch in pat for ch in "*?[") else [full]
        if not hits:
            raise BigsegError(f"no stores match {pat!r}")
        out.extend(hits)
    return out


CONFIGS = Path(__file__).resolve().parents[1] / "configs"
"""The example configs shipped with bigseg (``configs/`` in a clone is a link to this folder)."""


def config_names() -> list[str]:
    """Names of the shipped example configs (``bigseg train --config NAME``)."""
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def find_config(path: str | os.PathLike) -> Path:
    """The config file for ``--config``: a file that exists, else a shipped config's name (with or without
    ``.yaml``)."""
    p = Path(path)
    if p.is_file():
        return p
    name = p.name[:-5] if p.name.endswith(".yaml") else p.name
    shipped = CONFIGS / f"{name}.yaml"
    if str(path) in (name, f"{name}.yaml") and shipped.is_file():
        return shipped
    if str(path).replace(os.sep, "/").startswith("configs/") and shipped.is_file():
        return shipped  # the README's configs/NAME.yaml, run outside a clone
    raise BigsegError(f"{path}: no such config file (shipped configs, by name: {', '.join(config_names())})")


def load_config(path: str | os.PathLike, overrides: dict | None = None) -> TrainConfig:
    """Read and validate a YAML config (a path, or a shipped config's name: :func:`config_names`); store paths
    are relative to the current folder."""
    path = find_config(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise BigsegError(f"{path}: not a text file (a YAML config is UTF-8 text; is this an image?)") from exc
    except yaml.YAMLError as exc:
        raise BigsegError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise BigsegError(f"{path}: the config must be a mapping of keys to values")
    data.update(overrides or {})
    try:
        cfg = TrainConfig(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].replace("Extra inputs are not permitted", "unknown key")
        raise BigsegError(f"{path}: {key}: {msg}") from exc
    cfg.train = _resolve(cfg.train, Path(".")) if cfg.train else []
    cfg.val = _resolve(cfg.val, Path(".")) if cfg.val else []
    resolve_epochs(cfg)
    return cfg


def resolve_epochs(cfg: TrainConfig) -> None:
    """Set ``iterations`` from ``epochs`` and the training stores' image area (when epochs is used)."""
    if cfg.iterations is None and cfg.train:
        area = sum(int(np.prod(st.array(st.open_store(p), "image").shape[:2])) for p in cfg.train)
        cfg.iterations = cfg.iterations_for_area(area)
