"""bigseg: semantic segmentation of gigapixel images.

A library first, a thin click layer (:mod:`bigseg.cli`) on top; the rooms and what each may import are drawn in
docs/architecture.md (and in ``../shared/DESIGN.md`` for the team). The verbs: :mod:`bigseg.ingest`,
:mod:`bigseg.infer`, :mod:`bigseg.report`, :mod:`bigseg.train` (with ``adapt``), :mod:`bigseg.serve`,
:mod:`bigseg.export`, :mod:`bigseg.bench`, :mod:`bigseg.synth`, :mod:`bigseg.datasets` (importers).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bigseg")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

from bigseg.errors import BigsegError  # noqa: E402

__all__ = ["BigsegError", "__version__"]
