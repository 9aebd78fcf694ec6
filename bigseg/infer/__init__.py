"""Tiled inference on dask: overlapping windows through a model, blended into a zarr label mask.

``infer`` and ``InferOptions`` are imported on first use, so that modules needing only ``cluster`` or
``windows`` (``bigseg report``, for one) do not pay for importing torch."""

__all__ = ["InferOptions", "infer"]


def __getattr__(name):
    if name in __all__:
        from bigseg.infer import graph

        return getattr(graph, name)
    raise AttributeError(f"module 'bigseg.infer' has no attribute {name!r}")
