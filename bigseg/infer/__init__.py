"""Tiled inference on dask: overlapping windows through a model, blended into a zarr label mask."""

from bigseg.infer.graph import InferOptions, infer

__all__ = ["InferOptions", "infer"]
