"""Where the graph runs: a local cluster of worker processes, an existing cluster, or this process."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from bigseg.errors import BigsegError
from bigseg.progress import make_bar


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


DEBUG = False
"""``bigseg --debug``: dask's own log lines (worker errors with their tracebacks) reach stderr. Otherwise they are
silenced: an error raised in a worker reaches the user once, as bigseg's one line."""


def set_debug(on: bool) -> None:
    global DEBUG
    DEBUG = bool(on)
    logging.getLogger("distributed").setLevel(logging.DEBUG if on else logging.CRITICAL)
    # asyncio's "Task exception was never retrieved" of dask's comms, when a run is interrupted mid-handshake
    logging.getLogger("asyncio").setLevel(logging.NOTSET if on else logging.CRITICAL)


def compute(obj, client=None, desc: str | None = None):
    """A dask collection, or a list of delayed objects, computed on ``client`` (or with threads in this process
    without one). With ``desc``, progress is shown (a bar on a terminal, log lines elsewhere) for a list."""
    if isinstance(obj, list | tuple):
        if client is not None:
            futures = client.compute(list(obj))
            if desc:
                from distributed import as_completed

                bar = make_bar(len(futures), desc, "task")
                try:
                    for _ in as_completed(futures):
                        bar.update(1)
                finally:
                    bar.close()
            return client.gather(futures)
        import dask

        if desc:
            with _TaskBar(desc):
                return list(dask.compute(*obj, scheduler="threads"))
        return list(dask.compute(*obj, scheduler="threads"))
    if client is not None:
        return client.compute(obj).result()
    return obj.compute(scheduler="threads")


def _task_bar_class():
    from dask.callbacks import Callback

    class TaskBar(Callback):
        """Progress over the tasks of a local (threaded) dask computation."""

        def __init__(self, desc: str):
            super().__init__()
            self.desc, self.bar = desc, None

        def _start_state(self, dsk, state):
            self.bar = make_bar(len(state["ready"]) + len(state["waiting"]) + len(state["running"]), self.desc,
                                "task")

        def _posttask(self, key, result, dsk, state, worker_id):
            if self.bar is not None:
                self.bar.update(1)

        def _finish(self, dsk, state, errored):
            if self.bar is not None:
                self.bar.close()

    return TaskBar


def _TaskBar(desc: str):  # noqa: N802 (a class made on first use: dask is imported lazily)
    return _task_bar_class()(desc)


SCHEDULER_TIMEOUT = 15.0
"""Seconds to wait for a dask scheduler to answer. A server that accepts the connection but never speaks dask's
protocol (a dashboard's HTTP port given by mistake) would otherwise hold the command for ever."""


def connect(scheduler: str, timeout: float = SCHEDULER_TIMEOUT):
    """A Client of the dask scheduler at ``scheduler`` (tcp://HOST:PORT, tls://, ws://, wss://, ucx://), or one
    line saying why not, within ``timeout`` seconds whatever listens there."""
    import re
    import threading

    from distributed import Client

    if not re.fullmatch(r"(tcp|tls|ws|wss|ucx)://[^\s/]+", scheduler):
        raise BigsegError(f"--scheduler {scheduler}: not a dask scheduler address; give tcp://HOST:PORT (the "
                          "scheduler's port, 8786 by default, not its dashboard's web address)")
    _refuse_if_nothing_listens(scheduler, timeout)
    result: dict = {}

    def attempt():
        try:
            result["client"] = Client(scheduler, timeout=f"{timeout}s")
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=attempt, daemon=True, name="bigseg-connect")
    thread.start()
    thread.join(timeout + 5)
    if "client" in result:
        return result["client"]
    if thread.is_alive():
        raise BigsegError(f"the server at {scheduler} did not answer as a dask scheduler within {timeout:g} s; is that "
                          "the scheduler's port (8786 by default), not its dashboard's?")
    exc = result.get("error")
    raise BigsegError(f"cannot reach the dask scheduler at {scheduler} ({exc}); is it running?") from exc


def _refuse_if_nothing_listens(scheduler: str, timeout: float) -> None:
    """One TCP connection first: a refused one (no scheduler running there, a wrong port) or an unknown host is
    said at once, where dask's client would keep retrying until its timeout."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(scheduler)
    if url.scheme == "ucx" or not url.hostname:
        return
    try:
        port = url.port or 8786
    except ValueError:
        raise BigsegError(f"--scheduler {scheduler}: the port is not a number from 1 to 65535") from None
    try:
        sock = socket.create_connection((url.hostname, port), timeout=timeout)
    except ConnectionRefusedError:
        raise BigsegError(f"cannot reach the dask scheduler at {scheduler} (connection refused: nothing listens on "
                          f"port {port} of {url.hostname}); is it running?") from None
    except socket.gaierror as exc:
        raise BigsegError(f"cannot reach the dask scheduler at {scheduler} (unknown host {url.hostname}: "
                          f"{exc.strerror})") from None
    except OSError:
        return  # unreachable or slow: dask's own attempt says so within the timeout
    with sock:
        if url.scheme != "tcp":
            return  # TLS and websockets wait for the client to speak first
        # a dask scheduler speaks first (its handshake, at once); an HTTP server (a dashboard's port given by
        # mistake) waits for a request: silence tells them apart without dask's 20-second handshake timeout
        sock.settimeout(min(HANDSHAKE_WAIT, timeout))
        try:
            first = sock.recv(1)
        except TimeoutError:
            raise BigsegError(f"the server at {scheduler} accepted the connection but did not greet as a dask "
                              f"scheduler does (within {min(HANDSHAKE_WAIT, timeout):g} s): is that a web server, "
                              "e.g. the dashboard (8787)? Give the scheduler's own port (8786 by default)") from None
        except OSError:
            return
        if not first:
            raise BigsegError(f"the server at {scheduler} closed the connection at once: not a dask scheduler")


HANDSHAKE_WAIT = 3.0
"""Seconds a dask scheduler is given to send its handshake after accepting a connection (it sends it at once)."""


@contextlib.contextmanager
def closed_if_start_fails(registry):
    """Clusters that join ``registry`` while this block runs (dask's or dask-kubernetes' set of live clusters,
    which their exit handlers close) are closed and forgotten if the block ends with an error or a signal: the
    libraries clean up after an ``Exception`` at best, and a half-made cluster's close at exit printed a traceback
    after bigseg's one line."""
    import psutil

    before, children = set(registry), _child_pids(psutil)
    try:
        yield
    except BaseException:
        for half_made in set(registry) - before:
            with contextlib.suppress(Exception):
                half_made.close(timeout=10)
            registry.discard(half_made)
        _end_late_children(psutil, children)
        raise


def _child_pids(psutil) -> set[int]:
    with contextlib.suppress(psutil.Error):
        return {c.pid for c in psutil.Process().children(recursive=True)}
    return set()


def _end_late_children(psutil, before: set[int]) -> None:
    """Worker processes that the cluster's event loop was still spawning while the start was interrupted outlive
    its close by a moment (found in a test: one still running when the process exited); they are ended here.
    multiprocessing's resource tracker is left alone: it ends with this process and cleans up after it."""
    late = []
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.pid not in before and "resource_tracker" not in " ".join(child.cmdline()):
                    late.append(child)
    for child in late:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(late, timeout=5)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


@contextlib.contextmanager
def _workers_quiet(quiet: bool):
    """Worker processes started in this block write their stderr to /dev/null (they inherit file descriptor 2):
    their logs are silenced anyway, and a worker stopped with an interrupted run printed native teardown noise
    ("terminate called without an active exception") under bigseg's one line. ``--debug`` keeps both."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None, echo=print, device: str = "cpu", threads: int = 1):
    """Yield a distributed Client, or None for ``workers == 0`` (run in this process).

    A local cluster binds its scheduler and dashboard to 127.0.0.1 only; its workers are separate processes.
    CPU workers run two tasks at a time but one forward pass (a lock in the predictor; the model uses the cores
    through torch's or ONNX Runtime's threads), so that reading windows and blending/writing chunks overlap the
    forward passes (on 2 cores: +6 % end to end with torch, +24 % with ONNX Runtime); CUDA workers run four, so
    that reading windows, the GPU's forward passes and blending/writing chunks overlap in time.
    """
    if scheduler:
        client = connect(scheduler)
        try:
            n = len(client.scheduler_info()["workers"])
            echo(f"connected to {scheduler} ({n} workers); dashboard {client.dashboard_link}")
            if n == 0:
                raise BigsegError(f"the dask scheduler at {scheduler} has no workers; start some with 'dask worker'")
            yield client
        finally:
            client.close()
        return
    if workers == 0:  # without importing distributed (0.4 s of a command's start)
        yield None
        return
    import dask
    from distributed import Client, LocalCluster

    # Not dask's default MALLOC_TRIM_THRESHOLD_: setting it also freezes glibc's mmap threshold, so every large
    # activation tensor becomes a fresh mmap that page-faults in; forward passes slowed by a third.
    environ = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    from distributed.deploy.spec import SpecCluster

    with dask.config.set({**CALM_WORKERS, "distributed.nanny.pre-spawn-environ": environ}), \
            _workers_quiet(not DEBUG), closed_if_start_fails(SpecCluster._instances):  # (Ctrl-C while it starts)
        # (quiet outside: a start interrupted in the main thread may still spawn a worker process from the
        # cluster's event loop until the half-made cluster is closed; that child, finding its parent's
        # semaphores gone, printed a traceback under the one line)
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=4 if device == "cuda" else 2,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.INFO if DEBUG else logging.CRITICAL,
        )
    try:
        client = Client(cluster)
        try:
            processes = "1 worker process" if workers == 1 else f"{workers} worker processes"
            echo(f"local dask cluster: {processes} on {device}; dashboard {client.dashboard_link}")
            yield client
        finally:
            client.close()
    finally:
        cluster.close()
