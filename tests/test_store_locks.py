"""The one lock bigseg's writers take (bigseg.store.pid_lock) and the wait for it (wait_for_lock), between real
processes: an ONNX export another run is making is waited for, not made twice; and arrays opened for writing by
many threads at once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bigseg import store as st
from bigseg.errors import BigsegError

HOLD = """
import sys, time
from pathlib import Path
from bigseg import store as st
with st.output_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(final, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(final), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_a_second_writer_is_refused_and_a_waiter_waits_for_the_first(tmp_path):
    final = tmp_path / "model.onnx"
    lock = st.output_lock_path(final)
    holder = _holder(final, 1.5)
    try:
        assert lock.exists()
        with pytest.raises(BigsegError, match="another bigseg process"), st.output_lock(final):
            pass
        assert st.wait_for_lock(lock, timeout=0.2, poll=0.05) is False  # still held
        t0 = time.monotonic()
        assert st.wait_for_lock(lock, timeout=30, poll=0.05) is True
        assert 0.3 < time.monotonic() - t0 < 20  # it waited for the holder, then went on
        assert not lock.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_whose_holder_was_killed_is_not_waited_for(tmp_path):
    final = tmp_path / "model.onnx"
    holder = _holder(final, 60)
    holder.kill()  # kill -9: the lock file stays behind
    holder.wait()
    lock = st.output_lock_path(final)
    assert lock.exists()
    t0 = time.monotonic()
    assert st.wait_for_lock(lock, timeout=30, poll=0.05) is True
    assert time.monotonic() - t0 < 5
    with st.output_lock(final):  # and it is taken over
        assert lock.exists()
    assert not lock.exists()



def test_arrays_opened_for_writing_by_many_threads_at_once_store_every_chunk(tmp_path):
    """An all-zero chunk is stored like any other (a missing chunk file means damage) whichever threads open the
    arrays at the same moment. (zarr's global config, set and restored around each open, let one thread's restore
    undo another's setting: an infer resumed in its object-rule pass found an all-paste label chunk missing.)"""
    import threading

    import numpy as np
    import zarr

    store = tmp_path / "s.zarr"
    root = zarr.open_group(str(store), mode="w", zarr_format=3)
    names = [f"a{i}" for i in range(16)]
    for name in names:
        st.create_array(root, name, (8, 8), (4, 4), ("y", "x"))
    start = threading.Barrier(len(names))

    def write_zeros(name):
        start.wait()
        st.open_array(store, name, "r+")[:] = np.zeros((8, 8), np.uint8)

    threads = [threading.Thread(target=write_zeros, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in names:
        assert len([p for p in (store / name / "c").rglob("*") if p.is_file()]) == 4, name
        assert not st.read(st.open_array(store, name), slice(0, 8), slice(0, 8)).any()  # no chunk reported missing
