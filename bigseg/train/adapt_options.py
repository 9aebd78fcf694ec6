"""Options of ``bigseg adapt`` (a module of its own, light to import: the CLI reads its defaults)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bigseg.errors import BigsegError
from bigseg.infer.options import TTA

HELD_BACK = 0.2
"""Share of each class's strokes held back to score the adapted model."""
VOID_SHIFT = -0.25
"""Added to the adapted model's void logit (concrete class tables): crops centred on each class in turn make a third of
them void-centred, so the fine-tune sees voids far more often than a slab holds them and calls doubtful pixels void
(label shift). Chosen on the development styles (benchmarks/RESULTS.md, benchmarks/void_bias.py)."""

COLOUR_COMPONENTS = 2
"""Gaussians in a class's colour model (k-means on its strokes' colours). One Gaussian of a void painted as a dark
cavity lined by a white deposit spans the grey scale, so the paste's grey is nearer to it than to the paste's own
and its strokes grew a disc over the paste around each small void (43 % of grown void labels paste on random-7000041);
two took void IoU 0.536 -> 0.674 and air error 1.97 -> 0.57 points there and on random-7000015, the guard (crushed)
unharmed (benchmarks/RESULTS.md, "What the high air was")."""

EDGE_RULES = ("local", "model")
EDGES = "local"
"""Where grown strokes of two classes meet: "local", an edge pixel goes to the side whose nearby pure colour it is
nearer (the side that makes up more of a blurred edge pixel; ``bigseg.train.grow._local_edges``), or "model", to the
nearer class colour model (before 2026-12-06). Local edges made a quarter fewer wrong grown labels over 49 development
slabs and adapted better on four looks not picked for it (benchmarks/RESULTS.md, "Void edges in the grown labels")."""

COLOUR_PRIORS = ("none", "strokes")
COLOUR_PRIOR = "strokes"
"""Which class a colour is nearest when growing strokes: "strokes" (the default since 2026-12-06), the class of highest
density, each Gaussian weighted by the stroke pixels it models -- a colour both classes' strokes hold, such as a void's
filling of the paste's own grey, goes to the class whose strokes hold more of it; "none", the class of least
Mahalanobis distance (before), under which void strokes on such a filling grew void over a ring of paste round every
painted void. Total wrong grown labels -41 % over 54 development slabs and -39 % over 24 fresh looks; adapted on four
more looks (8 slabs), void IoU 0.794 -> 0.810, air 0.49 -> 0.31 points off on average (benchmarks/RESULTS.md, "Void
strokes on a paste-grey filling")."""


@dataclass(frozen=True)
class AdaptOptions:
    """How ``bigseg adapt`` trains: time budget, crops, optimiser, the prior's weight, held-back share, seed."""

    minutes: float = 10.0
    steps: int | None = None  # a step budget instead of time: the same strokes and steps give the same model
    crop: int = 256
    batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    prior: float = 0.1
    held_back: float = HELD_BACK
    grow: int = 12
    balance: str = "pixel"
    grow_by: str = "class"  # grow strokes by their class's colours, or by each stroke's own ("stroke")
    colour_components: int = COLOUR_COMPONENTS  # Gaussians per class's colour model for growing by class
    colour_choice: str = "all"  # every class colour_components ("all"), or each its own, up to it ("per-class")
    edges: str = EDGES  # where grown classes meet: mixing ("local") or the nearer colour model ("model")
    colour_prior: str = COLOUR_PRIOR  # a colour's class: least distance ("none") or stroke-weighted density
    seed: int = 0
    held_back_seed: int | None = None  # which strokes are held back (None: ``seed``): two runs that keep them compare
    threads: int | None = None
    min_steps: int = 300
    photometric: bool = True
    export: bool = True
    suggestions: int = 5
    tta: str = "none"  # the views the held-back strokes are scored with: what `infer --tta` will run
    replay: float = 0.0  # weight of the synthetic crops with exact truth trained on beside the strokes (0: none)
    replay_batch: int = 4
    replay_band: int | None = 8  # replay's loss only within this many px of a void (None: every pixel)
    object_rule: bool = True  # fit a void-object rule on the painted objects (bigseg.object_rule), kept if it helps
    # a kept rule judges void objects cut at grey ridges (object_rule.cut), then grows the voids it keeps to their
    # edges (object_rule.grow_edges): together since 2026-12-04 (benchmarks/RESULTS.md, "Cut merged objects")
    grow_void_edges: bool = True
    cut_merged_voids: bool = True
    void_shift: float = VOID_SHIFT  # added to the adapted model's void logit (checkpoint metadata: logit_offset)
    crf: float = 0.0  # weight of the local CRF loss on each crop (bigseg.train.losses.gated_crf; 0: none)
    zoom_out: float = 1.0  # half the crops read from up to this many times their size and shrunk (1: none)

    def check(self) -> None:
        """One line naming the option for anything out of range (before any work)."""
        if self.tta not in TTA:
            raise BigsegError(f"unknown --tta {self.tta!r}; choose one of {', '.join(TTA)}")
        if not (math.isfinite(self.minutes) and self.minutes > 0):
            raise BigsegError(f"--minutes must be a positive number of minutes, got {self.minutes}")
        if self.steps is not None and not 1 <= self.steps <= 10_000_000:
            raise BigsegError(f"--steps must be a positive number of steps, got {self.steps}")
        if self.minutes > 24 * 60:
            raise BigsegError(f"--minutes {self.minutes:g} is more than a day; adapt is meant to take minutes")
        if not 32 <= self.crop <= 2048 or self.crop % 16:
            raise BigsegError(f"--crop must be a multiple of 16 between 32 and 2048, got {self.crop}")
        if not 1 <= self.batch <= 256:
            raise BigsegError(f"--batch must be between 1 and 256, got {self.batch}")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise BigsegError(f"--lr must be in (0, 1], got {self.lr}")
        if not (math.isfinite(self.prior) and 0 <= self.prior <= 100):
            raise BigsegError(f"--prior must be between 0 and 100, got {self.prior}")
        if self.grow_by not in ("class", "stroke"):
            raise BigsegError(f"--grow-by must be class or stroke, got {self.grow_by!r}")
        if self.balance not in ("class", "pixel"):
            raise BigsegError(f"--balance must be class or pixel, got {self.balance!r}")
        if not 1 <= self.colour_components <= 4:
            raise BigsegError(f"--colour-components must be between 1 and 4, got {self.colour_components}")
        if self.colour_choice not in ("all", "per-class"):
            raise BigsegError(f"--colour-choice must be all or per-class, got {self.colour_choice!r}")
        if self.edges not in EDGE_RULES:
            raise BigsegError(f"--edges must be model or local, got {self.edges!r}")
        if self.colour_prior not in COLOUR_PRIORS:
            raise BigsegError(f"--colour-prior must be one of {', '.join(COLOUR_PRIORS)}, got {self.colour_prior!r}")
        if not 0 <= self.grow <= 64:
            raise BigsegError(f"--grow must be between 0 and 64 px, got {self.grow}")
        if not 0 < self.held_back < 1:
            raise BigsegError(f"--held-back must be a fraction between 0 and 1, got {self.held_back}")
        if not (math.isfinite(self.replay) and 0 <= self.replay <= 100):
            raise BigsegError(f"--replay must be a weight between 0 and 100, got {self.replay}")
        if not 1 <= self.replay_batch <= 256:
            raise BigsegError(f"--replay-batch must be between 1 and 256, got {self.replay_batch}")
        if self.replay_band is not None and not 1 <= self.replay_band <= 64:
            raise BigsegError(f"--replay-band must be between 1 and 64 px, got {self.replay_band}")
        if not (math.isfinite(self.void_shift) and -5 <= self.void_shift <= 5):
            raise BigsegError(f"--void-shift must be between -5 and 5, got {self.void_shift}")
        if not (math.isfinite(self.crf) and 0 <= self.crf <= 100):
            raise BigsegError(f"--crf must be a weight between 0 and 100, got {self.crf}")
        if not (math.isfinite(self.zoom_out) and 1 <= self.zoom_out <= 8):
            raise BigsegError(f"--zoom-out must be a factor between 1 and 8, got {self.zoom_out}")
        if self.threads is not None and not 1 <= self.threads <= 256:
            raise BigsegError(f"--threads must be between 1 and 256, got {self.threads}")
