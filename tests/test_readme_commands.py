"""Every command of README "Using it", run as a person runs it: in a pseudo-terminal (so progress bars are on, as in
an interactive shell), one after the other in one folder, at small sizes. The README's block is parsed, so a
command added there is run here (or fails this test until it is given its input below).

Changes made for the test, and only these: image sizes (``--size``) are small; ``bigseg train`` stops after two
iterations (``--stop-at 2``); ``bigseg serve`` is stopped with Ctrl-C once it is listening (on a free port). The
inputs the README assumes (a scan, GIMP/CamVid/pair exports, the original trainer's weights) are made first.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).parents[1] / "README.md"
SIZES = {"synth": "640x480", "bench": "600x600", "synth-set": "512"}


def readme_commands() -> list[str]:
    text = README.read_text()
    block = text.split("## Using it", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [ln.split("  #", 1)[0].strip() for ln in block.splitlines()]
    return [ln for ln in lines if ln.startswith("bigseg ")]


def for_the_test(command: str, port: int) -> list[list[str]]:
    out = []
    for part in command.split("&&"):
        args = shlex.split(part)
        assert args[0] == "bigseg", part
        sub = args[1]
        if "--size" in args:
            args[args.index("--size") + 1] = SIZES[sub]
        if sub == "synth-set":
            args += ["--train", "2", "--val", "1"]
        if sub == "train":
            args += ["--stop-at", "2"]
        if sub == "serve":
            args += ["--port", str(port)]
        if sub == "adapt":
            args[args.index("--minutes") + 1] = "0.1"
            args += ["--crop", "128", "--batch", "4"]
        out.append([sys.executable, "-m", "bigseg", *args[1:]])
    return out


def run_in_pty(args: list[str], cwd: Path, timeout: float, until: str | None = None) -> tuple[int, str]:
    """Run ``args`` with a pseudo-terminal as stdin, stdout and stderr; returns (exit status, what it printed).
    With ``until``: once that text is printed, send Ctrl-C (SIGINT) and collect the rest."""
    env = {k: v for k, v in os.environ.items() if k != "BIGSEG_PROGRESS"}  # progress as in a terminal
    env.update(COLUMNS="100", LINES="40", TERM="xterm")
    pid, fd = pty.fork()
    if pid == 0:  # the child
        try:
            os.chdir(cwd)
            # as in an interactive shell: Ctrl-C interrupts (a test run started in the background, e.g. with
            # nohup or '&', would otherwise pass SIGINT on as ignored, and Python keeps it ignored)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execve(args[0], args, env)
        finally:
            os._exit(127)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    interrupted = False
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"{shlex.join(args[2:])} did not finish in {timeout} s:\n"
                                 + b"".join(chunks).decode(errors="replace")[-3000:])
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        if until and not interrupted and until in b"".join(chunks).decode(errors="replace"):
            os.kill(pid, signal.SIGINT)
            interrupted = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def _inputs(d: Path) -> None:
    """What the README's commands expect to find: a scan, exports of annotation tools, a trainer's weights."""
    rng = np.random.default_rng(0)
    h, w = 96, 128
    (d / "annotated" / "Image").mkdir(parents=True)
    for cls in ("1_stone", "2_void"):
        (d / "annotated" / "Semantic" / cls).mkdir(parents=True)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / "annotated" / "Image" / f"{name}.png")
        for cls in ("1_stone", "2_void"):
            layer = np.zeros((h, w), np.uint8)
            layer[rng.integers(0, h - 20) :][:20, 10:50] = 255
            Image.fromarray(layer).save(d / "annotated" / "Semantic" / cls / f"{name}.png")
    for split in ("train", "val", "test"):
        (d / "CamVid" / split).mkdir(parents=True)
        (d / "CamVid" / f"{split}annot").mkdir()
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / "CamVid" / split / "x.png")
        Image.fromarray(rng.integers(0, 12, (h, w)).astype(np.uint8)).save(d / "CamVid" / f"{split}annot" / "x.png")
    (d / "images").mkdir()
    (d / "masks").mkdir()
    (d / "label_colors.txt").write_text("120 120 120 paste\n230 140 40 stone\n30 90 230 void\n")
    colours = np.array([[120, 120, 120], [230, 140, 40], [30, 90, 230]], np.uint8)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / "images" / "p1.jpg", quality=95)
    Image.fromarray(colours[rng.integers(0, 3, (h, w))]).save(d / "masks" / "p1_mask.png")
    # the original air-void trainer's model: torchvision's DeepLabV3-ResNet50 with 3 classes, its state dict
    code = ("import torch, torchvision, sys; m = torchvision.models.segmentation.deeplabv3_resnet50("
            "weights=None, weights_backbone=None, num_classes=3, aux_loss=True); "
            "torch.save(m.state_dict(), sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(d / "trainer.pth")], check=True)


def test_every_readme_command_runs_in_a_terminal(tmp_path):
    if not (Path(__file__).parents[1] / "configs" / "synthetic-concrete.yaml").exists():
        pytest.skip("not run from a checkout")
    commands = readme_commands()
    assert len(commands) >= 12, commands
    _inputs(tmp_path)
    shutil.copytree(Path(__file__).parents[1] / "configs", tmp_path / "configs")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for command in commands:
        if command.startswith("bigseg ingest scan.jpg"):
            shutil.copy(tmp_path / "slab.jpg", tmp_path / "scan.jpg")
        if command.startswith("bigseg import annotations"):  # a person's strokes: a few short lines per class
            w, h = Image.open(tmp_path / "scan.jpg").size
            strokes = np.full((h, w), 255, np.uint8)
            for k in range(9):
                strokes[20 + 50 * k : 24 + 50 * k, 30 + 40 * k : 90 + 40 * k] = k % 3
            Image.fromarray(strokes).save(tmp_path / "strokes.png")
        for args in for_the_test(command, port):
            serve = args[3] == "serve"
            code, out = run_in_pty(args, tmp_path, timeout=60 if serve else 600,
                                   until="(Ctrl-C to stop)" if serve else None)
            assert code == 0, f"{command}\nexit {code}:\n{out[-4000:]}"
            assert "Traceback" not in out and "bigseg: error" not in out, out
            if args[3] in ("synth", "ingest", "infer", "synth-set", "report"):
                # the progress shown in a terminal: a bar (tqdm's "it/s" or our units) was drawn
                assert re.search(r"\d+%\|", out) or "100%" in out, f"{command}: no progress bar\n{out[-2000:]}"
            if serve:
                assert f"http://127.0.0.1:{port}/" in out and "stopped" in out
    assert (tmp_path / "slab-report" / "report.html").is_file() and (tmp_path / "slab-labels.tif").is_file()
    assert (tmp_path / "mine.pt").is_file() and (tmp_path / "runs" / "synthetic-concrete" / "last.pt").is_file()
    assert (tmp_path / "mine-adapted.pt").is_file() and (tmp_path / "scan-report" / "report.html").is_file()
    assert "adapted to this concrete" in (tmp_path / "scan-report" / "report.html").read_text()
