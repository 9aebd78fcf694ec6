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

from bigseg.errors import BigsegError
from bigseg.models import ARCHITECTURES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    arch: str = "deeplabv3_resnet50"
    width: int | None = Field(None, ge=4, le=128, description="channel width (light_unet only)")
    refine: bool = Field(False, description="light_unet only: a full-resolution edge-refinement head")
    pretrained_backbone: bool = False
    init: str | None = Field(None, description="start from this bigseg checkpoint's weights (fine-tuning)")

    @field_validator("arch")
    @classmethod
    def _known(cls, v):
        if v not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {v!r}; choose one of {', '.join(ARCHITECTURES)}")
        return v

    @model_validator(mode="after")
    def _refine_needs_light_unet(self):
        if self.refine and self.arch != "light_unet":
            raise ValueError(f"refine applies to light_unet only, not {self.arch}")
        return self

    def kwargs(self) -> dict:
        kw = {}
        if self.arch == "light_unet" and self.width is not None:
            kw["width"] = self.width
        if self.refine:
            kw["refine"] = True
        if self.pretrained_backbone:
            kw["pretrained_backbone"] = True
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


class AugmentConfig(_Strict):
    hflip: bool = True
    vflip: bool = True
    rot90: bool = False
    color_jitter: float = Field(0.0, ge=0, le=0.5, description="max relative brightness/contrast change")
    scale: tuple[float, float] | None = Field(None, description="random rescale range, e.g. [0.75, 1.25]")


class RareClassConfig(_Strict):
    class_id: int = Field(..., ge=0)
    fraction: float = Field(0.3, gt=0, le=1, description="share of crops centred on a chunk holding the class")


class TrainConfig(_Strict):
    train: list[str] = Field(..., min_length=1, description="slab stores or globs with image + truth")
    val: list[str] = Field(default_factory=list)
    model: ModelConfig = ModelConfig()
    crop: int = Field(900, ge=32, le=4096)
    batch_size: int = Field(4, ge=1)
    iterations: int | None = Field(None, ge=1, description="optimizer steps [default 1000 unless epochs is set]")
    epochs: float | None = Field(None, gt=0, description="instead of iterations: passes over the training area, "
                                 "one pass = crops covering every training pixel once")
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    augment: AugmentConfig = AugmentConfig()
    amp: bool = True
    ignore_label: int = Field(255, ge=0, le=255)
    class_weights: list[float] | None = None
    rare_class: RareClassConfig | None = None
    checkpoint_every: int = Field(50, ge=1)
    val_every: int = Field(200, ge=1)
    val_crops: int = Field(16, ge=1)
    seed: int = 0
    out: str = "runs/train"
    num_workers: int = Field(2, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = False

    @model_validator(mode="after")
    def _consistent(self):
        if self.class_weights is not None and any(w < 0 for w in self.class_weights):
            raise ValueError("class_weights must be non-negative")
        if self.iterations is not None and self.epochs is not None:
            raise ValueError("give iterations or epochs, not both")
        if self.iterations is None and self.epochs is None:
            self.iterations = 1000
        return self

    def iterations_for_area(self, pixels: int) -> int:
        """``epochs`` in optimizer steps for a training set of ``pixels`` pixels (image area)."""
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


def load_config(path: str | os.PathLike, overrides: dict | None = None) -> TrainConfig:
    """Read and validate a YAML config; store paths are relative to the current folder."""
    path = Path(path)
    if not path.is_file():
        raise BigsegError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
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
    cfg.train = _resolve(cfg.train, Path("."))
    cfg.val = _resolve(cfg.val, Path(".")) if cfg.val else []
    resolve_epochs(cfg)
    return cfg


def resolve_epochs(cfg: TrainConfig) -> None:
    """Set ``iterations`` from ``epochs`` and the training stores' image area (when epochs is used)."""
    if cfg.iterations is None:
        from bigseg import store as st

        area = sum(int(np.prod(st.open_store(p)["image"].shape[:2])) for p in cfg.train)
        cfg.iterations = cfg.iterations_for_area(area)
