"""Cluster recipes (dask-jobqueue, SLURM): the batch script each shipped recipe submits, built offline and read."""

from __future__ import annotations

import re

import pytest

from bigseg.errors import BigsegError
from bigseg.hpc import job_script, load_recipe, recipe_names
from tests.helpers import error_line, run_cli

pytest.importorskip("dask_jobqueue")


def _script(tmp_path, name, **edit):
    import yaml

    data = yaml.safe_load(load_recipe(name).model_dump_json())
    data.update({"listen": "lo", "python_env": "/shared/envs/big seg", **edit})  # the machine's loopback here
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return job_script(path)


def test_the_gpu_recipe_asks_for_what_bigseg_workers_need(tmp_path):
    assert {"slurm-gpu", "slurm-cpu"} <= set(recipe_names())
    s = _script(tmp_path, "slurm-gpu", gpus_per_job=2, cores_per_job=8, memory_per_job="64GB", account="lab")
    assert "#SBATCH -p gpu" in s and "#SBATCH -A lab" in s and "#SBATCH --gres=gpu:2" in s
    assert "#SBATCH --cpus-per-task=8" in s and "#SBATCH -t 02:00:00" in s
    assert "source '/shared/envs/big seg'/bin/activate" in s  # quoted: a path with a space
    check = next(line for line in s.splitlines() if line.startswith("python -c"))
    assert "import sys, bigseg, torch" in check and "torch.cuda.device_count() >= 2" in check
    worker = next(line for line in s.splitlines() if "distributed.cli.dask_worker" in line)
    assert re.search(r"--nworkers 2\b", worker) and re.search(r"--nthreads 4\b", worker)  # one per GPU, 8/2 each
    assert "--resources GPU=1" in worker and "--memory-limit 29.80GiB" in worker  # 64 GB over two workers
    assert re.search(r"tcp://127\.0\.0\.1:\d+", worker)  # the scheduler listens where the recipe said (lo)
    # lines run in order: the environment is active and checked before the worker starts
    lines = s.splitlines()
    assert lines.index(check) < lines.index(worker) and lines.index(check) > next(
        k for k, line in enumerate(lines) if line.startswith("source "))


def test_the_cpu_recipe_and_bad_recipes(tmp_path):
    s = _script(tmp_path, "slurm-cpu", cores_per_job=16)
    assert "--gres" not in s and "device_count() >=" not in s
    worker = next(line for line in s.splitlines() if "dask_worker" in line)
    assert re.search(r"--nthreads 16\b", worker) and "--nworkers" not in worker and "GPU=0" in worker
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: slurm\nqueue: gpu\ngpus: 2\npython_env: /e\nlisten: lo\n")
    with pytest.raises(BigsegError, match="gpus: unknown key"):
        load_recipe(bad)
    bad.write_text("kind: slurm\npython_env: /e\nlisten: lo\nwalltime: two hours\n")
    with pytest.raises(BigsegError, match="walltime"):
        load_recipe(bad)
    with pytest.raises(BigsegError, match="no such cluster recipe.*slurm-gpu"):
        load_recipe("slurm-gpx")


def test_cluster_cli(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("kind: slurm\nqueue: short\npython_env: /e\nlisten: lo\ngpus_per_job: 0\n")
    proc = run_cli("cluster", good, "--print-script")
    assert proc.returncode == 0 and "#SBATCH -p short" in proc.stdout, proc.stderr
    if not __import__("shutil").which("sbatch"):
        assert "sbatch not found" in error_line(run_cli("cluster", good, "--jobs", "2"))
    (tmp_path / "x.yaml").write_text("kind: slurm\npython_env: /e\nlisten: nosuchif0\n")
    line = error_line(run_cli("cluster", tmp_path / "x.yaml", "--print-script"))
    assert "listen: nosuchif0: the scheduler cannot listen there" in line and "'lo'" in line
