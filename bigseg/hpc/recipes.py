"""Cluster recipes: small YAML files (``configs/clusters/*.yaml``, shipped; or your own) that say what a cluster
of bigseg workers asks for -- SLURM batch jobs (:mod:`bigseg.hpc.slurm`, dask-jobqueue) or Kubernetes pods
(:mod:`bigseg.hpc.kubernetes`, the Dask Kubernetes Operator), told apart by their ``kind``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bigseg.errors import BigsegError

RECIPES = Path(__file__).resolve().parents[1] / "configs" / "clusters"
"""The recipes shipped with bigseg (``configs/clusters/`` in a clone)."""


class SlurmRecipe(BaseModel):
    """What a SLURM job of bigseg workers asks for."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["slurm"] = "slurm"
    queue: str | None = Field(None, description="partition (sbatch -p)")
    account: str | None = Field(None, description="account (sbatch -A)")
    walltime: str = Field("01:00:00", pattern=r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$")
    gpus_per_job: int = Field(1, ge=0, le=16, description="GPUs per job, one worker process each; 0: CPU workers")
    cores_per_job: int = Field(8, ge=1, le=1024)
    memory_per_job: str = Field("64GB", pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$")
    python_env: str = Field(description="folder of the Python environment bigseg is installed in (bin/activate)")
    listen: str = Field(description="interface (ib0, eth0) or address the scheduler listens on, reachable from "
                                    "the compute nodes")
    local_directory: str = Field("$TMPDIR", description="workers' scratch folder on the node")
    extra_directives: list[str] = Field(default_factory=list, description="more #SBATCH lines, e.g. --constraint=a100")

    @property
    def processes(self) -> int:
        return max(1, self.gpus_per_job)


class KubernetesRecipe(BaseModel):
    """What a Kubernetes cluster of bigseg workers asks for."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["kubernetes"]
    name: str = Field("bigseg", pattern=r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$",
                      description="the DaskCluster's name (its Service: NAME-scheduler)")
    namespace: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    image: str = Field(min_length=1, description="container image with bigseg installed")
    workers: int = Field(2, ge=0, le=4096, description="worker pods (--jobs overrides)")
    gpus_per_worker: int = Field(1, ge=0, le=16, description="nvidia.com/gpu per worker pod; 0: CPU workers")
    cores_per_worker: int = Field(4, ge=1, le=1024)
    memory_per_worker: str = Field("32Gi", pattern=r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)$")
    scheduler_cores: int = Field(1, ge=1, le=64)
    scheduler_memory: str = Field("4Gi", pattern=r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)$")
    volume_claim: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
                                     description="a PersistentVolumeClaim (ReadWriteMany) every pod mounts: where "
                                     "the stores and models are")
    mount_path: str = Field("/shared", pattern=r"^/", description="where the pods see volume_claim")
    env: dict[str, str] = Field(default_factory=dict, description="more environment variables for every pod "
                                "(credentials: use a Secret and envFrom in your own copy of the resource)")
    idle_timeout: int = Field(0, ge=0, description="seconds without work before the operator removes the cluster")


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def load_recipe(path: str | os.PathLike) -> SlurmRecipe | KubernetesRecipe:
    """A recipe file, or a shipped recipe's name (``slurm-gpu``); errors name the bad key."""
    p = Path(path)
    if not p.is_file():
        shipped = RECIPES / f"{p.name.removesuffix('.yaml')}.yaml"
        if str(path) in (shipped.stem, shipped.name) and shipped.is_file():
            p = shipped
        else:
            raise BigsegError(f"{path}: no such cluster recipe (shipped: {', '.join(recipe_names())})")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BigsegError(f"{p}: not a YAML recipe ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise BigsegError(f"{p}: a recipe is a mapping of keys to values")
    try:
        return KubernetesRecipe(**data) if data.get("kind") == "kubernetes" else SlurmRecipe(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(k) for k in err["loc"]) or "(top level)"
        raise BigsegError(f"{p}: {key}: {err['msg'].replace('Extra inputs are not permitted', 'unknown key')}") \
            from None
