"""Looking at results: ``bigseg serve`` (Deep Zoom tiles of a store's layers and a viewer page, in ``app``; tiles
rendered from the stores' pyramids in ``tiles``)."""

from bigseg.serve.app import make_app, serve

__all__ = ["make_app", "serve"]
