"""The specimen's own region: only pixels inside it count (areas, traverse lines, voids), and chords cut by its edge
are handled as at the image's edge (the measurement treats pixels outside as unlabelled).

Kept in the store as the array ``region`` (uint8, 1 inside), with how it was made in its attributes:

* ``--region MASK.png``: a mask the size of the image; non-zero pixels are the specimen;
* ``--region auto``: the slab found against a plain background (a scanner bed, a mount): the colour of the
  background is the median of the picture's outer frame (2 % of each side) at preview scale; a pixel is specimen
  when its colour differs from it by more than ``max(30, 6 x the frame's median absolute deviation)`` grey levels
  in some channel; the largest connected part is kept, its holes filled (voids and dark stones inside the slab are
  specimen), then it is opened by 3 px to drop dust. Found on the preview (1:4, or 1:8... for larger images) and
  drawn at full resolution by nearest neighbour: its edge is accurate to the preview's pixel (4 px at 1:4).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bigseg import store as st
from bigseg.errors import BigsegError
from bigseg.ingest import _fetch, open_image

NAME = "region"


def _preview(group, max_side: int = 4096) -> tuple[np.ndarray, int]:
    """The finest preview level (or the image itself when small) with both sides at most ``max_side``."""
    h, w = st.array(group, "image").shape[:2]
    if max(h, w) <= max_side:
        return np.asarray(group["image"][:]), 1  # the small-image path
    levels = st.level_factors(group)
    for f in levels:
        if max(h, w) / f <= max_side:
            return np.asarray(group[f"preview/x{f}"][:]), f
    if not levels:
        raise BigsegError("the store has no preview pyramid to find the specimen on; ingest it again")
    return np.asarray(group[f"preview/x{levels[-1]}"][:]), levels[-1]


def find_specimen(picture: np.ndarray) -> tuple[np.ndarray, dict]:
    """(boolean mask of the specimen, what was measured) for a small RGB picture; see the module doc."""
    from scipy import ndimage

    h, w = picture.shape[:2]
    b = max(2, int(0.02 * min(h, w)))
    frame = np.concatenate([picture[:b].reshape(-1, 3), picture[-b:].reshape(-1, 3), picture[:, :b].reshape(-1, 3),
                            picture[:, -b:].reshape(-1, 3)]).astype(float)
    background = np.median(frame, axis=0)
    mad = np.median(np.abs(frame - background), axis=0)
    threshold = float(max(30.0, 6.0 * mad.max()))
    differs = (np.abs(picture.astype(float) - background) > threshold).any(axis=2)
    lab, n = ndimage.label(differs)
    if n == 0:
        raise BigsegError("--region auto: nothing differs from the background colour (the picture is all one "
                          "plain area?); give a region mask instead")
    sizes = np.bincount(lab.ravel())[1:]
    mask = lab == (1 + int(np.argmax(sizes)))
    mask = ndimage.binary_fill_holes(mask)
    mask = ndimage.binary_opening(mask, structure=np.ones((3, 3)), iterations=1)
    if mask.mean() < 0.01:
        raise BigsegError("--region auto: the specimen found covers under 1 % of the picture; give a region mask")
    return mask, {"background_rgb": [float(v) for v in background], "threshold": threshold,
                  "area_fraction": float(mask.mean())}


def _write(store, group, strip_at, attrs: dict, how: str) -> int:
    """Write the region array a chunk row at a time from ``strip_at(y0, y1)`` (uint8, full width), staged and
    swapped in only when whole and not empty (a failure keeps the store's previous region); returns the pixels
    inside."""
    h, w = group["image"].shape[:2]
    ch, cw = group["image"].chunks[:2]
    inside = 0
    with st.staged_swap(store, (NAME,)) as stage:
        arr = st.create_array(stage, NAME, (h, w), (ch, cw), ("y", "x"), attrs=attrs)
        for y0 in range(0, h, ch):
            y1 = min(y0 + ch, h)
            strip = strip_at(y0, y1)
            arr[y0:y1] = strip
            inside += int(np.count_nonzero(strip))
        if inside == 0:
            raise BigsegError(f"--region {how}: the region is empty (no pixel inside the specimen)")
        arr.attrs["inside_pixels"] = inside
        st.set_complete(arr)
    return inside


def set_region(store, how: str) -> dict:
    """Make (or remake) the store's region from ``how`` ("auto" or a mask file); returns its attributes."""
    group = st.open_store(store, mode="r+")
    h, w = st.array(group, "image").shape[:2]
    if how == "auto":
        picture, f = _preview(group)
        small, info = find_specimen(picture)
        attrs = {"method": "auto", "scale": f, **info}

        cols = np.minimum(np.arange(w) // f, small.shape[1] - 1)

        def at(y0, y1):
            rows = np.minimum(np.arange(y0, y1) // f, small.shape[0] - 1)
            return small[np.ix_(rows, cols)].astype(np.uint8)
    else:
        path = Path(how)
        img = open_image(path, "region mask")
        if (img.width, img.height) != (w, h):
            raise BigsegError(f"--region {path}: the mask is {img.width}x{img.height} but the image is {w}x{h}")
        band = img[0] if img.bands < 3 else img.colourspace("b-w")[0]
        if band.format != "uchar":
            band = (band > 0).ifthenelse(255, 0).cast("uchar")
        attrs = {"method": "mask", "source": os.fsdecode(path.resolve())}
        import pyvips

        region = pyvips.Region.new(band)

        def at(y0, y1):
            return (_fetch(region, y0, w, y1 - y0, path)[:, :, 0] > 0).astype(np.uint8)
    attrs["inside_pixels"] = _write(store, group, at, attrs, how)
    return attrs
