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

from bigseg.errors import BigsegError
from bigseg.hpc.recipes import SlurmRecipe, load_recipe


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
    if not isinstance(r, SlurmRecipe):
        raise BigsegError(f"{recipe}: a {r.kind} recipe, not a SLURM one")
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
