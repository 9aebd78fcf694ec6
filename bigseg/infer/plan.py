"""The inference plan: which window batches to compute, which label chunks they feed, in what order. Pure: no
I/O, no paths, a function of the window grid, the chunking, the pending chunks, the batch size and the stripe.

- A **batch** (:class:`BatchKey`) is ``batch`` consecutive windows of one window row; the partition depends on the
  grid alone, so it is the same for every run, chunking and worker count.
- A **blend** (:class:`Blend`) is one label chunk: the windows touching it (:class:`Source`), each a row of one of
  the batches it depends on.
- A **group** (:class:`Group`) is the blends of one chunk row of one column stripe; groups run stripe by stripe,
  top to bottom, a few at a time, so memory is bounded by the stripe's width whatever the image's size.
- A batch used by several stripes is computed by the first; the columns the later ones need are spilled (kept
  on disk by :mod:`bigseg.infer.outputs`) and read back there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bigseg.infer.options import STRIPE_PX
from bigseg.infer.windows import Grid

Origin = tuple[int, int]
Bounds = tuple[int, int, int, int]  # y0, y1, x0, x1


@dataclass(frozen=True, order=True)
class BatchKey:
    row: int  # window row
    k: int  # batch number within the row


@dataclass(frozen=True)
class Source:
    """One window's contribution to a blend: its origin, and where its logits are (``dep``-th batch of the blend,
    row ``slot`` of that batch)."""

    origin: Origin
    dep: int
    slot: int


@dataclass(frozen=True)
class Blend:
    chunk: tuple[int, int]  # (chunk row, chunk column)
    bounds: Bounds
    sources: tuple[Source, ...]  # ascending window index: the summation order is fixed
    deps: tuple[BatchKey, ...]


@dataclass(frozen=True)
class Group:
    stripe: int
    chunk_row: int
    blends: tuple[Blend, ...]


@dataclass(frozen=True)
class Plan:
    grid: Grid
    batch: int
    batches: dict[BatchKey, tuple[Origin, ...]]
    groups: tuple[Group, ...]  # in execution order
    last_use: dict[tuple[BatchKey, int], int]  # (batch, stripe) -> index of the last group needing it there
    first_stripe: dict[BatchKey, int]  # the stripe that computes the batch
    last_stripe: dict[BatchKey, int]
    spill_from: dict[BatchKey, int] = field(default_factory=dict)  # spilled batches -> first image column kept
    n_windows: int = 0
    n_computed: int = 0

    def reuse(self, key: BatchKey, stripe: int) -> bool:
        """Whether ``stripe`` reads the batch back from its spill (computed by an earlier stripe)."""
        return stripe != self.first_stripe[key]

    def done_after(self, group_index: int, held) -> list:
        """The (batch, stripe) instances among ``held`` that no group after ``group_index`` needs."""
        return [inst for inst in held if self.last_use[inst] <= group_index]

    @property
    def n_chunks(self) -> int:
        return sum(len(g.blends) for g in self.groups)


def stripe_columns(grid: Grid, chunk_w: int, batch: int, stripe_px: int | None) -> int:
    """Chunk columns per stripe: ``stripe_px`` rounded up to whole chunks; by default STRIPE_PX, but at least four
    batches of windows wide (so that few batches straddle a stripe's border)."""
    want = stripe_px or max(STRIPE_PX, 4 * batch * (grid.window - grid.overlap))
    return max(1, -(-want // chunk_w))


def make_plan(grid: Grid, pending: list[tuple[int, int, Bounds]], batch: int, chunk_w: int,
              stripe_cols: int) -> Plan:
    """The plan for the ``pending`` chunks ((chunk row, chunk column, bounds)); each window computed once."""
    windows = grid.windows()
    n_x = len(grid.xs)

    def batch_of(w: int) -> tuple[BatchKey, int]:  # the partition depends on the grid only
        return BatchKey(w // n_x, (w % n_x) // batch), (w % n_x) % batch

    batches: dict[BatchKey, tuple[Origin, ...]] = {}
    by_group: dict[tuple[int, int], list[Blend]] = {}
    for bi, bj, bounds in pending:
        touching = grid.windows_touching(*bounds)
        deps = tuple(sorted({batch_of(w)[0] for w in touching}))
        pos = {key: i for i, key in enumerate(deps)}
        sources = []
        for w in touching:
            key, slot = batch_of(w)
            sources.append(Source(windows[w], pos[key], slot))
        for key in deps:
            if key not in batches:
                cols = range(key.k * batch, min((key.k + 1) * batch, n_x))
                batches[key] = tuple(windows[key.row * n_x + c] for c in cols)
        by_group.setdefault((bj // stripe_cols, bi), []).append(Blend((bi, bj), bounds, tuple(sources), deps))
    groups = tuple(Group(stripe, bi, tuple(by_group[(stripe, bi)])) for stripe, bi in sorted(by_group))
    last_use: dict[tuple[BatchKey, int], int] = {}
    stripes_of: dict[BatchKey, list[int]] = {}
    for gi, g in enumerate(groups):
        for blend in g.blends:
            for key in blend.deps:
                last_use[(key, g.stripe)] = gi
                stripes_of.setdefault(key, []).append(g.stripe)
    first = {key: min(ss) for key, ss in stripes_of.items()}
    last = {key: max(ss) for key, ss in stripes_of.items()}
    spill_from = {}
    for key, ss in stripes_of.items():
        later = sorted(set(ss) - {first[key]})
        if later:
            spill_from[key] = later[0] * stripe_cols * chunk_w
    n_computed = sum(len(origins) for origins in batches.values())
    return Plan(grid, batch, batches, groups, last_use, first, last, spill_from, len(windows), n_computed)
