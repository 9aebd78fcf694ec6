"""Where the inference loop's tasks run: the three calls it makes (submit, completed, cancel) on a dask cluster
(:class:`OnCluster`), on a small thread pool in this process (:class:`InThreads`, ``workers=0``), or at once in
this process for one-off calls such as validating a checkpoint (:class:`InProcess`)."""

from __future__ import annotations

from bigseg.infer.options import InferOptions


class _Done:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class InProcess:
    """The few dask Client calls the loop makes, run at once in this process (``workers=0``)."""

    threads = 1

    def submit(self, fn, *args, key=None, pure=None):
        return _Done(fn(*[a.value if isinstance(a, _Done) else a for a in args]))

    @staticmethod
    def completed(futures):
        return futures

    def cancel(self, futures):
        pass


class OnCluster:
    """A dask Client with the same three calls."""

    def __init__(self, client):
        self.client = client
        self.threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1

    def submit(self, fn, *args, key=None, pure=None):
        return self.client.submit(fn, *args, key=key, pure=pure)

    @staticmethod
    def completed(futures):
        from distributed import as_completed

        return as_completed(futures)

    def cancel(self, futures):
        self.client.cancel(futures)


class InThreads:
    """The loop's tasks on a small pool of threads in this process (``workers=0``): reading windows and blending
    and writing chunks overlap the forward passes (one at a time on a CPU: the predictor's lock), as on a worker,
    with no worker process to start. Tasks are queued in submission order and a task's inputs are always queued
    before it, so a task waiting for its inputs waits only for tasks already running: no deadlock."""

    def __init__(self, threads: int = 2):
        from concurrent.futures import ThreadPoolExecutor

        self.threads = threads
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="bigseg-task")

    def submit(self, fn, *args, key=None, pure=None):
        return self.pool.submit(_with_inputs, fn, args)

    @staticmethod
    def completed(futures):
        from concurrent.futures import as_completed

        return as_completed(futures)

    def cancel(self, futures):
        for f in futures:
            f.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _with_inputs(fn, args):
    from concurrent.futures import Future

    return fn(*[a.result() if isinstance(a, Future) else a for a in args])


def executor(client):
    return InProcess() if client is None else OnCluster(client)


def on_a_worker(client, function, *args):
    """``function(*args)`` on a dask worker (in this process without a cluster); its exceptions re-raised here."""
    return executor(client).submit(function, *args, pure=False).result()


def ex_for(client, o: InferOptions):
    """Where tasks run: the cluster's workers, or threads of this process (``--workers 0``)."""
    return OnCluster(client) if client is not None else InThreads(4 if o.device == "cuda" else 2)
