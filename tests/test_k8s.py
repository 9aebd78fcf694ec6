"""Kubernetes recipes (the Dask Kubernetes Operator's DaskCluster resource): built offline from each shipped recipe
and read; and the worker container's own command run here, against a real scheduler, as a pod would run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from bigseg.errors import BigsegError
from bigseg.hpc import KubernetesRecipe, cluster_spec, load_recipe, recipe_names, resource_yaml
from tests.helpers import error_line, run_cli

pytest.importorskip("dask_kubernetes")
# the image's python and dask commands are, here, this environment's
PATH = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def _recipe(name: str, **edit) -> KubernetesRecipe:
    r = load_recipe(name)
    assert isinstance(r, KubernetesRecipe)
    return r.model_copy(update=edit)


def _worker(spec: dict) -> dict:
    return spec["spec"]["worker"]["spec"]["containers"][0]


def test_the_gpu_recipe_asks_for_what_bigseg_workers_need():
    assert {"k8s-gpu", "k8s-cpu"} <= set(recipe_names())
    spec = cluster_spec(_recipe("k8s-gpu", namespace="lab", gpus_per_worker=2, cores_per_worker=8,
                                memory_per_worker="64Gi"), workers=6)
    assert spec["apiVersion"] == "kubernetes.dask.org/v1" and spec["kind"] == "DaskCluster"
    assert spec["metadata"]["name"] == "bigseg" and spec["metadata"]["namespace"] == "lab"
    assert spec["spec"]["worker"]["replicas"] == 6  # --jobs overrides the recipe's 4
    w = _worker(spec)
    assert w["image"] == "registry.example.org/bigseg:latest"
    limits = w["resources"]["limits"]
    assert limits == {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"} and w["resources"]["requests"] == limits
    env = {e["name"]: e["value"] for e in w["env"]}
    assert env["OMP_NUM_THREADS"] == "8" and env["MKL_NUM_THREADS"] == "8"
    assert w["command"] == ["sh", "-c"] and len(w["args"]) == 1
    check, start = w["args"][0].split(" && exec ")
    assert "import sys, bigseg, torch" in check and "torch.cuda.device_count() >= 2" in check
    assert re.search(r"--nthreads 4\b", start) and "--resources GPU=1" in start
    assert f"--memory-limit {int(64 * 2**30 * 0.9)}" in start  # under the pod's limit: dask spills before an OOM kill
    assert w["volumeMounts"] == [{"name": "shared", "mountPath": "/shared"}]
    assert spec["spec"]["worker"]["spec"]["volumes"][0]["persistentVolumeClaim"] == {"claimName": "bigseg-data"}
    assert spec["spec"]["scheduler"]["service"]["type"] == "ClusterIP"  # never exposed outside the cluster
    assert yaml.safe_load(resource_yaml(_recipe("k8s-gpu"))) == cluster_spec(_recipe("k8s-gpu"))


def test_the_cpu_recipe_and_bad_recipes(tmp_path):
    w = _worker(cluster_spec(_recipe("k8s-cpu", cores_per_worker=16)))
    assert "nvidia.com/gpu" not in w["resources"]["limits"] and w["resources"]["limits"]["cpu"] == "16"
    assert "device_count() >=" not in w["args"][0] and "--resources GPU=0" in w["args"][0]
    assert re.search(r"--nthreads 2\b", w["args"][0])
    bad = tmp_path / "bad.yaml"
    for text, key in (("kind: kubernetes\nimage: x\ngpus: 2\n", "gpus: unknown key"),
                      ("kind: kubernetes\n", "image"),
                      ("kind: kubernetes\nimage: x\nname: Big_Seg\n", "name"),
                      ("kind: kubernetes\nimage: x\nmemory_per_worker: 32 GB\n", "memory_per_worker")):
        bad.write_text(text)
        with pytest.raises(BigsegError, match=key):
            load_recipe(bad)


def test_cluster_cli_prints_the_resource_offline(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("kind: kubernetes\nname: petro\nimage: reg.lab/bigseg:1\ngpus_per_worker: 0\nworkers: 3\n")
    proc = run_cli("cluster", mine, "--print-script", "--jobs", "5")
    assert proc.returncode == 0, proc.stderr
    spec = yaml.safe_load(proc.stdout)
    assert spec["metadata"]["name"] == "petro" and spec["spec"]["worker"]["replicas"] == 5
    assert "volumes" not in spec["spec"]["worker"]["spec"]  # no claim named: nothing mounted
    assert "--jobs must be at least 0" in error_line(run_cli("cluster", mine, "--jobs", "-1"))
    # without a Kubernetes API to talk to: one line, nothing started
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    line = error_line(run_cli("cluster", mine, "--jobs", "1", env=env))
    assert line.startswith("bigseg: error: cannot create the Kubernetes cluster 'petro'"), line


def test_the_worker_command_starts_a_bigseg_worker_here(tmp_path):
    """The pod's command as a pod runs it (sh -c, DASK_SCHEDULER_ADDRESS from the operator, the worker's name
    expanded by Kubernetes): the image check passes where bigseg imports, and the worker joins a real scheduler
    with the recipe's threads, resources and memory limit. The GPU recipe's check stops a pod without a GPU."""
    from distributed import Client, LocalCluster

    r = _recipe("k8s-cpu", cores_per_worker=2, memory_per_worker="2Gi")
    command = _worker(cluster_spec(r))["args"][0].replace("$(DASK_WORKER_NAME)", "pod-0")
    scheduler_only = LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None)
    with scheduler_only as cluster, Client(cluster) as client:
        env = {**os.environ, "DASK_SCHEDULER_ADDRESS": cluster.scheduler_address, "PATH": PATH}
        worker = subprocess.Popen(["sh", "-c", command], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        try:
            deadline = time.monotonic() + 120
            while not client.scheduler_info()["workers"] and time.monotonic() < deadline:
                assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
                time.sleep(0.5)
            (info,) = client.scheduler_info()["workers"].values()
            assert info["name"] == "pod-0" and info["nthreads"] == 2 and info["resources"] == {"GPU": 0}
            assert info["memory_limit"] == int(2 * 2**30 * 0.9)
            assert client.submit(lambda: __import__("bigseg").__name__, pure=False).result(timeout=60) == "bigseg"
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    gpu_check = _worker(cluster_spec(_recipe("k8s-gpu")))["args"][0].split(" && exec ")[0]
    proc = subprocess.run(["sh", "-c", gpu_check], capture_output=True, text=True,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "PATH": PATH})
    assert proc.returncode != 0 and "fewer than 1 GPUs visible in this pod" in proc.stderr
