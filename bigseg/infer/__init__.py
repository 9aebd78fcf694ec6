"""Tiled inference on dask: overlapping windows through a model, blended into a zarr label mask.

Modules: :mod:`~bigseg.infer.options` (options, defaults, checks), :mod:`~bigseg.infer.windows` (the window grid
and weights), :mod:`~bigseg.infer.plan` (pure: batches, blends, stripes), :mod:`~bigseg.infer.tasks` (what runs
on workers), :mod:`~bigseg.infer.predictor` (model cache and forward passes), :mod:`~bigseg.infer.confidence`,
:mod:`~bigseg.infer.outputs` (lock, markers, spill, output arrays), :mod:`~bigseg.infer.backend` (model file and
runtime), :mod:`~bigseg.infer.inputs`, and :mod:`~bigseg.infer.run` (``infer`` and its scheduling loop).

``infer`` and ``InferOptions`` are imported on first use, so that modules needing only ``windows`` do not pay for
importing the engine."""

__all__ = ["InferOptions", "InferResult", "infer"]


def __getattr__(name):
    if name == "InferOptions":
        from bigseg.infer.options import InferOptions

        return InferOptions
    if name in ("infer", "InferResult"):
        from bigseg.infer import run

        return getattr(run, name)
    raise AttributeError(f"module 'bigseg.infer' has no attribute {name!r}")
