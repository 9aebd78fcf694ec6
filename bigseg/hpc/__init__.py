"""Clusters bigseg does not run itself: recipes for dask-jobqueue (SLURM) whose workers then take
``bigseg infer --scheduler ADDRESS``. A recipe is a small YAML file (``configs/clusters/*.yaml``, shipped; or your
own); :func:`job_script` shows the batch script it submits, offline, before anything is queued."""

from bigseg.hpc.slurm import SlurmRecipe, job_script, load_recipe, recipe_names, slurm_cluster

__all__ = ["SlurmRecipe", "job_script", "load_recipe", "recipe_names", "slurm_cluster"]
