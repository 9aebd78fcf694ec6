"""A Kubernetes cluster of bigseg workers from a recipe, as a ``DaskCluster`` resource of the Dask Kubernetes
Operator (``pip install dask-kubernetes``; the operator installed in the Kubernetes cluster by its admin).

The recipe names a container image with bigseg installed (and torch with CUDA for GPU workers). Each worker pod
asks for ``gpus_per_worker`` GPUs (``nvidia.com/gpu``), ``cores_per_worker`` CPUs and ``memory_per_worker``;
before ``dask worker`` starts, the container checks that bigseg imports and (GPU workers) that torch sees its GPU,
so that a pod from a wrong image fails at once with the reason in its log instead of idling. The scheduler's
Service is ``ClusterIP``: reachable inside the Kubernetes cluster only (reach it from outside with
``kubectl port-forward``), never exposed by bigseg.

    bigseg cluster k8s-gpu --print-script > bigseg-cluster.yaml    # offline: the DaskCluster resource
    kubectl apply -f bigseg-cluster.yaml                           # or: bigseg cluster my-k8s.yaml --jobs 8
    kubectl port-forward svc/bigseg-scheduler 8786:8786
    bigseg infer scan.zarr --scheduler tcp://127.0.0.1:8786 --device cuda
"""

from __future__ import annotations

import shlex

from bigseg.cluster import closed_if_start_fails
from bigseg.errors import BigsegError
from bigseg.hpc.recipes import KubernetesRecipe

THREADS_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _threads(r: KubernetesRecipe) -> int:
    """Task threads per worker: four on a GPU (reading, the GPU and writing overlap, as bigseg's local CUDA workers
    do); on a CPU worker two, the model using the pod's cores through its own threads."""
    return 4 if r.gpus_per_worker else 2


def _check(r: KubernetesRecipe) -> str:
    code = ("import sys, bigseg, torch; "
            "print('bigseg', bigseg.__version__, 'torch', torch.__version__, 'GPUs', torch.cuda.device_count())")
    if r.gpus_per_worker:
        code += (f"; sys.exit(0 if torch.cuda.device_count() >= {r.gpus_per_worker} else "
                 f"'fewer than {r.gpus_per_worker} GPUs visible in this pod')")
    return f"python -c {shlex.quote(code)}"


def cluster_spec(r: KubernetesRecipe, workers: int | None = None) -> dict:
    """The ``DaskCluster`` resource for ``r`` (``workers`` overrides its worker count), built offline."""
    try:
        from dask_kubernetes.operator import make_cluster_spec
    except ImportError:
        raise BigsegError("Kubernetes recipes need dask-kubernetes: pip install dask-kubernetes") from None
    threads = _threads(r)
    env = {**{k: str(r.cores_per_worker) for k in THREADS_ENV}, **r.env}
    spec = make_cluster_spec(name=r.name, image=r.image, n_workers=r.workers if workers is None else workers,
                             env=env, idle_timeout=r.idle_timeout)
    spec["metadata"]["labels"] = {"app.kubernetes.io/part-of": "bigseg"}
    if r.namespace:
        spec["metadata"]["namespace"] = r.namespace
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    start = ["dask", "worker", "--name", "$(DASK_WORKER_NAME)", "--nthreads", str(threads), "--nworkers", "1",
             "--memory-limit", _bytes(r.memory_per_worker), "--resources", f"GPU={1 if r.gpus_per_worker else 0}",
             "--dashboard-address", "8788"]
    # the container's command checks the image first; Kubernetes expands $(DASK_WORKER_NAME) in args
    worker["command"] = ["sh", "-c"]
    worker["args"] = [f"{_check(r)} && exec {' '.join(start)}"]
    limits = {"cpu": str(r.cores_per_worker), "memory": r.memory_per_worker}
    if r.gpus_per_worker:
        limits["nvidia.com/gpu"] = str(r.gpus_per_worker)
    worker["resources"] = {"requests": dict(limits), "limits": limits}
    if r.volume_claim:  # the stores and models, at the same path in every pod
        pod = spec["spec"]["worker"]["spec"]
        pod["volumes"] = [{"name": "shared", "persistentVolumeClaim": {"claimName": r.volume_claim}}]
        worker["volumeMounts"] = [{"name": "shared", "mountPath": r.mount_path}]
    scheduler = spec["spec"]["scheduler"]
    scheduler["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": str(r.scheduler_cores), "memory": r.scheduler_memory},
        "limits": {"cpu": str(r.scheduler_cores), "memory": r.scheduler_memory}}
    scheduler["service"]["type"] = "ClusterIP"  # inside the Kubernetes cluster only
    return spec


def _bytes(quantity: str) -> str:
    """A Kubernetes memory quantity as the bytes dask's --memory-limit takes (kept a little under the pod's limit,
    so that dask spills and pauses before the kernel kills the pod)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for unit in sorted(units, key=len, reverse=True):
        if quantity.endswith(unit):
            return str(int(float(quantity[: -len(unit)]) * units[unit] * 0.9))
    return str(int(float(quantity) * 0.9))


def resource_yaml(r: KubernetesRecipe, workers: int | None = None) -> str:
    """The DaskCluster resource as YAML, for ``kubectl apply -f`` (what ``bigseg cluster --print-script`` prints)."""
    import yaml

    return yaml.safe_dump(cluster_spec(r, workers), sort_keys=False)


def kube_cluster(r: KubernetesRecipe, workers: int | None = None):
    """Create the cluster through the Kubernetes API (kubectl's configuration) and return dask-kubernetes'
    ``KubeCluster``; its ``scheduler_address`` is what ``bigseg infer --scheduler`` takes (port-forwarded when
    this machine is outside the Kubernetes cluster)."""
    try:
        from dask_kubernetes.operator import KubeCluster
    except ImportError:
        raise BigsegError("Kubernetes recipes need dask-kubernetes: pip install dask-kubernetes") from None
    kwargs = {"namespace": r.namespace} if r.namespace else {}
    try:
        with closed_if_start_fails(KubeCluster._instances):
            return KubeCluster(custom_cluster_spec=cluster_spec(r, workers), shutdown_on_close=True, **kwargs)
    except Exception as exc:  # no kubeconfig, no operator, forbidden: the API's words, one line
        raise BigsegError(f"cannot create the Kubernetes cluster {r.name!r}: {str(exc).splitlines()[0][:300]} "
                          "(--print-script shows the resource; kubectl apply -f it where the operator runs)") from None
