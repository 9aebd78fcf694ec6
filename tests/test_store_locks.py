"""The one lock bigseg's writers take (bigseg.store.pid_lock) and the wait for it (wait_for_lock), between real
processes: an ONNX export another run is making is waited for, not made twice."""

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
