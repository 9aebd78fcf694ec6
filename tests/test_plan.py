"""The inference plan, as a pure function (no store, no model): each window computed once, every chunk fed by
exactly the windows touching it in ascending order, stripes in order, spills only where a later stripe needs a
batch, and a resumed run computes only what its pending chunks need."""

from __future__ import annotations

import pytest

from bigseg.infer.plan import make_plan, stripe_columns
from bigseg.infer.windows import Grid


def _chunks(height, width, chunk):
    return [(i, j, (y, min(y + chunk, height), x, min(x + chunk, width)))
            for i, y in enumerate(range(0, height, chunk)) for j, x in enumerate(range(0, width, chunk))]


@pytest.mark.parametrize("height,width,window,overlap,chunk,batch,stripe_cols",
                         [(1000, 1500, 256, 32, 128, 2, 3), (700, 300, 256, 64, 100, 4, 1),
                          (200, 200, 256, 32, 64, 1, 2), (1024, 4096, 512, 128, 256, 3, 5)])
def test_every_window_once_every_chunk_from_the_windows_touching_it(height, width, window, overlap, chunk, batch,
                                                                     stripe_cols):
    grid = Grid(height, width, window, overlap)
    pending = _chunks(height, width, chunk)
    plan = make_plan(grid, pending, batch, chunk, stripe_cols)
    windows = grid.windows()
    computed = [o for origins in plan.batches.values() for o in origins]
    assert sorted(computed) == sorted(windows) and len(computed) == len(set(computed)) == plan.n_computed
    assert plan.n_windows == len(windows) and plan.n_chunks == len(pending)
    for origins in plan.batches.values():  # a batch: at most `batch` consecutive windows of one window row
        assert 1 <= len(origins) <= batch and len({y for y, _ in origins}) == 1
    seen = set()
    for g in plan.groups:
        for b in g.blends:
            seen.add(b.chunk)
            want = [windows[w] for w in grid.windows_touching(*b.bounds)]
            assert [s.origin for s in b.sources] == want  # ascending window order: a fixed summation order
            for s in b.sources:
                assert plan.batches[b.deps[s.dep]][s.slot] == s.origin
            assert g.stripe == b.chunk[1] // stripe_cols and g.chunk_row == b.chunk[0]
    assert seen == {(i, j) for i, j, _ in pending}
    order = [(g.stripe, g.chunk_row) for g in plan.groups]
    assert order == sorted(order)  # stripe by stripe, top to bottom


def test_spills_are_exactly_the_batches_later_stripes_reuse():
    grid = Grid(600, 2000, 256, 64)
    plan = make_plan(grid, _chunks(600, 2000, 128), 2, 128, 4)
    for key in plan.batches:
        if plan.first_stripe[key] != plan.last_stripe[key]:
            assert key in plan.spill_from and plan.reuse(key, plan.last_stripe[key])
            assert not plan.reuse(key, plan.first_stripe[key])
            assert plan.spill_from[key] % (4 * 128) == 0  # from the border of the stripe that reads it back
        else:
            assert key not in plan.spill_from
    assert plan.spill_from  # this layout has batches straddling stripes
    one_stripe = make_plan(grid, _chunks(600, 2000, 128), 2, 128, 100)
    assert not one_stripe.spill_from and {g.stripe for g in one_stripe.groups} == {0}


def test_last_use_releases_a_batch_after_its_last_group():
    grid = Grid(900, 900, 256, 32)
    plan = make_plan(grid, _chunks(900, 900, 128), 2, 128, 10)
    held = set(plan.last_use)
    for gi in range(len(plan.groups)):
        for inst in plan.done_after(gi, held):
            key, stripe = inst
            later = [g for g in plan.groups[gi + 1:] if g.stripe == stripe and any(key in b.deps for b in g.blends)]
            assert not later
            held.discard(inst)
    assert not held


def test_a_resumed_run_computes_only_what_pending_chunks_need():
    grid = Grid(1000, 1000, 256, 32)
    everything = _chunks(1000, 1000, 128)
    full = make_plan(grid, everything, 2, 128, 10)
    last_rows = [c for c in everything if c[0] == 7]  # only the bottom chunk row is left
    part = make_plan(grid, last_rows, 2, 128, 10)
    assert part.n_windows == full.n_windows and part.n_computed < full.n_computed / 2
    assert {y for origins in part.batches.values() for y, _ in origins} == {grid.ys[-1], grid.ys[-2]} & {
        y for y in grid.ys if y + 256 > 7 * 128}


def test_stripe_columns():
    grid = Grid(1000, 100000, 900, 128)
    assert stripe_columns(grid, 1024, 4, 8192) == 8
    assert stripe_columns(grid, 1000, 4, 8192) == 9  # rounded up to whole chunks
    assert stripe_columns(grid, 1024, 16, None) * 1024 >= 4 * 16 * (900 - 128)  # at least four batches wide
