"""Defaults that several modules (and the CLI) need, in a module that imports nothing heavy."""

DEFAULT_CHUNK = 1024
"""Default chunk side (pixels) for image, truth and labels.

A 900 px window at any offset touches at most 2 x 2 chunks of 1024 (the fewest possible: chunks at least as
large as the window), each 3 MB of RGB uncompressed, so a window read decodes at most 12 MB; a gigapixel slab
is ~1000 chunks per array, few enough files for any filesystem. Smaller chunks (512) read less per window but
quadruple the file count; the model costs ~1000x more than decoding either way."""

DEFAULT_ENTRAPPED_MM = 1.0
"""Voids of at least this equivalent diameter (mm) are entrapped air, smaller ones entrained (the report's
``--entrapped-diameter``; ASTM C457 gives no fixed limit, 1 mm is the common convention)."""
