"""Where the graph runs: a local cluster of worker processes, an existing cluster, or this process."""

from __future__ import annotations

import contextlib
import logging
import os

from bigseg.errors import BigsegError


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# Dask's periodic work (event-loop ticks every 20 ms, the statistical profiler every 10 ms, memory and system
# monitors) preempts torch's OpenMP threads, which then wait at every barrier: on a 2-core machine one forward
# pass in a worker took 0.55 s instead of 0.35 s. Calmer intervals bring it to 0.40 s (benchmarks/RESULTS.md).
CALM_WORKERS = {
    "distributed.admin.tick.interval": "500ms",
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "2s",
}


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None, echo=print, device: str = "cpu", threads: int = 1):
    """Yield a distributed Client, or None for ``workers == 0`` (run in this process).

    A local cluster binds its scheduler and dashboard to 127.0.0.1 only; its workers are separate processes.
    CPU workers run two tasks at a time but one forward pass (a lock in the predictor; the model uses the cores
    through torch's or ONNX Runtime's threads), so that reading windows and blending/writing chunks overlap the
    forward passes (on 2 cores: +6 % end to end with torch, +24 % with ONNX Runtime); CUDA workers run four, so
    that reading windows, the GPU's forward passes and blending/writing chunks overlap in time.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise BigsegError(f"cannot reach the dask scheduler at {scheduler} ({exc}); is it running?") from exc
        try:
            n = len(client.scheduler_info()["workers"])
            echo(f"connected to {scheduler} ({n} workers); dashboard {client.dashboard_link}")
            if n == 0:
                raise BigsegError(f"the dask scheduler at {scheduler} has no workers; start some with 'dask worker'")
            yield client
        finally:
            client.close()
        return
    if workers == 0:
        yield None
        return
    import dask

    # Not dask's default MALLOC_TRIM_THRESHOLD_: setting it also freezes glibc's mmap threshold, so every large
    # activation tensor becomes a fresh mmap that page-faults in; forward passes slowed by a third.
    environ = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    with dask.config.set({**CALM_WORKERS, "distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=4 if device == "cuda" else 2,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
    try:
        client = Client(cluster)
        try:
            echo(f"local dask cluster: {workers} worker processes on {device}; dashboard {client.dashboard_link}")
            yield client
        finally:
            client.close()
    finally:
        cluster.close()
