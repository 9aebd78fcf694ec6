"""What ``bigseg adapt`` checks before any work, without torch: options, stores and their strokes, the output path.

The CLI runs these before it imports the trainer, so a mistake is one line at once (importing torch takes seconds on
a loaded machine); :func:`bigseg.train.adapt.adapt` runs them again (as a library call) and then checks the base
checkpoint's classes, which needs torch to read."""

from __future__ import annotations

import os
from pathlib import Path

from bigseg import annotations as ann
from bigseg import store as st
from bigseg.classes import ClassInfo
from bigseg.errors import BigsegError
from bigseg.modelfile import model_kind
from bigseg.paths import refuse_overlap
from bigseg.train.adapt_options import AdaptOptions
from bigseg.train.replay import check_classes as check_replay_classes


def check_inputs(stores: list[str], out: Path, base: Path, overwrite: bool, opts: AdaptOptions
                 ) -> tuple[ClassInfo, ...]:
    """The stores' class table, or one line (BigsegError) naming what is wrong."""
    opts.check()
    if not stores:
        raise BigsegError("give at least one store with annotations")
    if len({os.path.realpath(s) for s in stores}) != len(stores):
        raise BigsegError("a store is given twice")
    if out.suffix != ".pt":
        raise BigsegError(f"-o {out}: the adapted model is a checkpoint; name it .pt")
    if out.exists() and not overwrite:
        raise BigsegError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise BigsegError(f"-o {out}: the folder {out.parent} does not exist or is not writable")
    refuse_overlap(out, "-o", *[("store", s) for s in stores], ("base model", base))
    tables = []
    for s in stores:
        group = st.open_store(s)
        ann.require(s)
        tables.append(st.class_table(group))
    names = [c.name for c in tables[0]]
    for s, t in zip(stores, tables, strict=True):
        if [c.name for c in t] != names:
            raise BigsegError(f"{s}: its classes ({', '.join(c.name for c in t)}) differ from {stores[0]}'s")
    painted_classes = set()
    for s in stores:
        painted_classes |= {k for k, v in ann.require(s)["painted"].items() if v}
    if len(painted_classes) < 2:
        raise BigsegError(f"strokes of only one class ({', '.join(painted_classes)}); paint at least two classes "
                          "(better: every class) so the model learns what tells them apart")
    if model_kind(base) != "checkpoint":
        raise BigsegError(f"--model {base}: adapt fine-tunes a bigseg checkpoint (an ONNX file has no weights to "
                          "train); give the .pt it was exported from")
    if opts.replay > 0:
        check_replay_classes(names)
    return tuple(tables[0])
