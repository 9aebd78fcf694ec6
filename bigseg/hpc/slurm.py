"""A SLURM cluster of bigseg workers from a recipe, with dask-jobqueue (``pip install dask-jobqueue``).

One batch job per node share: ``gpus_per_job`` worker processes (one per GPU; each finds its GPU from its
worker name, :func:`bigseg.infer.predictor._device_for_worker`), ``cores_per_job / processes`` task threads each.
Before the worker starts, the job activates ``python_env`` and checks that bigseg imports there and, for GPU
jobs, that torch sees a GPU: a job on a node without the environment fails at once, with the reason in its log,
instead of idling until its walltime.

The scheduler runs where the recipe is used (the login node) and must be reachable from the compute nodes, so a
recipe names where it listens (``listen``: an interface such as ib0, or an address) -- the one place bigseg's
scheduler does not stay on localhost, because you asked for it.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
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


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def load_recipe(path: str | os.PathLike) -> SlurmRecipe:
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
        return SlurmRecipe(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(k) for k in err["loc"]) or "(top level)"
        raise BigsegError(f"{p}: {key}: {err['msg'].replace('Extra inputs are not permitted', 'unknown key')}") \
            from None


def _prologue(r: SlurmRecipe) -> list[str]:
    env = shlex.quote(r.python_env.rstrip("/"))
    check = ("import sys, bigseg, torch; "
             "print('bigseg', bigseg.__version__, 'torch', torch.__version__, 'GPUs', torch.cuda.device_count())")
    if r.gpus_per_job:
        check += f"; sys.exit(0 if torch.cuda.device_count() >= {r.gpus_per_job} else " \
                 f"'fewer than {r.gpus_per_job} GPUs visible in this job')"
    return [f"source {env}/bin/activate", f"python -c {shlex.quote(check)}"]


def slurm_cluster(recipe: SlurmRecipe | str | os.PathLike, jobs: int = 0):
    """A dask-jobqueue ``SLURMCluster`` for ``recipe`` (its scheduler starts here), scaled to ``jobs`` jobs.
    ``bigseg infer --scheduler cluster.scheduler_address`` (or ``InferOptions(scheduler=...)``) runs on it."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise BigsegError("cluster recipes need dask-jobqueue: pip install dask-jobqueue") from None
    r = recipe if isinstance(recipe, SlurmRecipe) else load_recipe(recipe)
    where: dict = {}
    try:
        where["scheduler_options"] = {"host": str(ipaddress.ip_address(r.listen)), "dashboard_address": ":0"}
    except ValueError:
        where["interface"] = r.listen
        where["scheduler_options"] = {"dashboard_address": ":0"}
    extra = [f"--gres=gpu:{r.gpus_per_job}"] if r.gpus_per_job else []
    try:
        cluster = SLURMCluster(
            queue=r.queue, account=r.account, walltime=r.walltime, cores=r.cores_per_job, processes=r.processes,
            memory=r.memory_per_job.replace(" ", ""), job_name="bigseg-worker",
            job_extra_directives=extra + list(r.extra_directives), job_script_prologue=_prologue(r),
            worker_extra_args=["--resources", f"GPU={1 if r.gpus_per_job else 0}"], local_directory=r.local_directory,
            python="python", **where)
    except (ValueError, RuntimeError) as exc:  # an interface this machine does not have, an address it is not
        why = str(exc).replace("Cluster failed to start: ", "").splitlines()[0]
        raise BigsegError(f"listen: {r.listen}: the scheduler cannot listen there ({why})") from None
    if jobs:
        cluster.scale(jobs=jobs)
    return cluster


def job_script(recipe: SlurmRecipe | str | os.PathLike) -> str:
    """The batch script each job of ``recipe`` submits (a scheduler is started for the address, and stopped)."""
    cluster = slurm_cluster(recipe)
    try:
        return cluster.job_script()
    finally:
        cluster.close()
