import os
import subprocess
import sys
from pathlib import Path

import pytest

from bigseg.synth import SynthParams, synthesize

# keep torch and BLAS from oversubscribing the 2 CI cores when tests start clusters
os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Run the real `bigseg` command in a subprocess; returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "bigseg", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def error_line(proc) -> str:
    """The one-line error a failed command printed (asserts there is exactly one, and no traceback)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("bigseg: error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def slab_png(tmp_path_factory) -> Path:
    """A small synthetic slab (700 x 1300, so that ingest uses two strips) with its truth, as PNG."""
    d = tmp_path_factory.mktemp("slab")
    synthesize(d / "slab.png", SynthParams(700, 1300, seed=5))
    return d / "slab.png"
