"""Synthetic polished concrete sections with exact ground truth, streamed tile by tile at any size.

- :mod:`bigseg.synth.slab`: :class:`SynthParams`, :func:`synthesize` (image + truth files), training sets;
- :mod:`bigseg.synth.styles`: named styles, the held-out set, random styles, the class convention;
- :mod:`bigseg.synth.scene`: the styled renderer; :mod:`bigseg.synth.classic`: the original generator;
- :mod:`bigseg.synth.noise`: position-hashed noise that makes any tile render the same pixels as the whole slab.
"""

from bigseg.synth.slab import (
    JPEG_MAX_SIDE,
    SUPPORTED,
    TILE,
    SynthParams,
    default_truth_path,
    make_training_set,
    render_region,
    renderer,
    synthesize,
)
from bigseg.synth.styles import HELD_OUT, STYLES, Style, random_style, resolve, style_names

__all__ = ["HELD_OUT", "JPEG_MAX_SIDE", "STYLES", "SUPPORTED", "TILE", "Style", "SynthParams", "default_truth_path",
           "make_training_set", "random_style", "render_region", "renderer", "resolve", "style_names", "synthesize"]
