"""bigseg: semantic segmentation of gigapixel images.

The library is organised by verb: :mod:`bigseg.synth` (synthetic concrete slabs),
:mod:`bigseg.ingest` (image file -> zarr slab store), :mod:`bigseg.infer` (tiled inference on dask),
:mod:`bigseg.report` (statistics), :mod:`bigseg.train` (training). :mod:`bigseg.cli` is a thin click layer.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bigseg")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

from bigseg.errors import BigsegError  # noqa: E402

__all__ = ["BigsegError", "__version__"]
