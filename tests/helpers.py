"""What the tests share: running the real command, reading its one error line, and making stores from arrays."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bigseg import store as st
from bigseg.classes import CONCRETE


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Run the real `bigseg` command in a subprocess; returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "bigseg", *map(str, args)], capture_output=True, text=True,
                          errors="replace", cwd=cwd, timeout=timeout, env=env)


def wait_for_files(folder: Path, n: int, proc, timeout: float = 120, poll: float = 0.02) -> None:
    """Wait until ``folder`` holds ``n`` files (a running command's markers, say) while ``proc`` still runs: the
    moment to interrupt it."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if folder.is_dir() and len(list(folder.iterdir())) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"finished before it could be interrupted: {proc.stderr.read()}")
        time.sleep(poll)
    raise AssertionError("no progress")


def error_line(proc) -> str:
    """The one-line error a failed command printed (asserts there is exactly one, and no traceback)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("bigseg: error: "), lines[0]
    return lines[0]


def mask_store(path: Path, labels: np.ndarray, chunks, pixel_size=100.0, truth: np.ndarray | None = None) -> Path:
    """A slab store on disk whose labels (and truth) are the given masks; the image is a grey rendering."""
    group = st.zarr_open_new(path)
    st.init_root_attrs(group, source={"file": "test"}, pixel_size=pixel_size, classes=CONCRETE)
    grey = np.array([150, 200, 40], np.uint8)[np.minimum(labels, 2)]
    for name, data, dims, ch in (("image", np.repeat(grey[..., None], 3, axis=2), ("y", "x", "band"), (*chunks, 3)),
                                 ("labels", labels, ("y", "x"), chunks), ("truth", truth, ("y", "x"), chunks)):
        if data is None:
            continue
        arr = st.create_array(group, name, data.shape, ch, dims)
        arr[...] = data
        st.set_complete(arr)
    return path


def bundled_resaved(path: Path, **meta) -> Path:
    """The bundled weights saved to ``path`` as another checkpoint, its metadata updated with ``meta`` (a value of
    None removes that key)."""
    from bigseg import checkpoint
    from bigseg.checkpoint import BUNDLED, classes_of
    from bigseg.models import build

    blob = checkpoint.read(BUNDLED)
    own = dict(blob["meta"])
    net = build(own["arch"], len(classes_of(own)), **own.get("arch_kwargs", {}))
    net.load_state_dict(blob["state_dict"])
    own.update(meta)
    extra = {k: v for k, v in own.items()
             if k not in ("arch", "arch_kwargs", "classes", "stored_as") and not (k in meta and v is None)}
    checkpoint.save(path, net, arch=own["arch"], classes=classes_of(own), arch_kwargs=own.get("arch_kwargs"),
                    extra_meta=extra)
    return path
