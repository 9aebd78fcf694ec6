"""Clusters bigseg does not run itself: recipes for dask-jobqueue (SLURM) and for the Dask Kubernetes Operator,
whose workers then take ``bigseg infer --scheduler ADDRESS``. A recipe is a small YAML file
(``configs/clusters/*.yaml``, shipped; or your own); :func:`job_script` and :func:`resource_yaml` show what it
submits, offline, before anything is queued."""

from bigseg.hpc.kubernetes import cluster_spec, kube_cluster, resource_yaml
from bigseg.hpc.recipes import KubernetesRecipe, SlurmRecipe, load_recipe, recipe_names
from bigseg.hpc.slurm import job_script, slurm_cluster

__all__ = ["KubernetesRecipe", "SlurmRecipe", "cluster_spec", "job_script", "kube_cluster", "load_recipe",
           "recipe_names", "resource_yaml", "slurm_cluster"]
