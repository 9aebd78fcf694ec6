"""The shipped example configs: valid, usable by name outside a clone (in the wheel), ``init:`` by model name."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from bigseg import checkpoint as ckpt
from bigseg.errors import BigsegError
from bigseg.train.config import CONFIGS, ModelConfig, TrainConfig, config_names, find_config, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_config_validates_and_the_clone_link_points_at_them():
    names = config_names()
    assert {"synthetic-concrete", "synthetic-concrete-finetune", "generalization-light-unet"} <= set(names)
    for name in names:
        data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        if "runs/" in str((data.get("model") or {}).get("init")):
            data["model"].pop("init")  # made by an earlier config of the same recipe
        TrainConfig(**data)
    assert (ROOT / "configs").resolve() == CONFIGS


def test_a_config_by_name_outside_a_clone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the shipped one is found by name
    cfg = load_config("generalization-light-unet", {"iterations": 3})
    assert cfg.synthetic is not None and cfg.iterations == 3
    assert cfg.model.init == str(ckpt.BUNDLED)  # init: light_unet is the bundled model's file
    assert find_config("configs/synthetic-concrete.yaml") == CONFIGS / "synthetic-concrete.yaml"
    with pytest.raises(BigsegError, match="no stores match"):  # found; its stores are the user's to make
        load_config("synthetic-concrete")
    with pytest.raises(BigsegError, match=r"no such config file \(shipped configs, by name: .*synthetic-concrete"):
        load_config("synthetic-concret")


def test_init_by_model_name(tmp_path):
    cfg = ModelConfig(arch="light_unet", init="light_unet")
    assert cfg.init == str(ckpt.BUNDLED)
    if not ckpt.BUNDLED_MODELS["deeplabv3"].exists():
        with pytest.raises(Exception, match="not shipped with this bigseg.*bigseg train --config"):
            ModelConfig(arch="light_unet", init="deeplabv3")
    path = tmp_path / "mine.pt"
    assert ModelConfig(arch="light_unet", init=str(path)).init == str(path)


def test_the_wheel_carries_the_configs(tmp_path):
    """What pip installs: the YAML configs are package data of bigseg (a real wheel build, no network)."""
    src = tmp_path / "src"  # a copy: building in the clone would leave build/ and egg-info there
    shutil.copytree(ROOT / "bigseg", src / "bigseg", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("bigseg-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in config_names():
        assert f"bigseg/configs/{name}.yaml" in names
