"""Stream an image file (JPEG, PNG, TIFF/BigTIFF, anything libvips reads) into a slab store.

The image is decoded by libvips with sequential access, one strip of rows at a time, in a thread of its own;
each strip is written to the zarr ``image`` array and pooled into the preview pyramid while the next one is
decoded. Peak memory is two strips (image width x strip height x 3 bytes each) plus libvips' read-ahead,
whatever the image height.

Input conversions (documented in the README):

- RGB as is; RGBA and grey+alpha: the alpha band is dropped;
- greyscale: stored as three identical bands, so any RGB model applies unchanged;
- 16-bit: scaled to 8-bit by keeping the high byte (v >> 8), i.e. 0..65535 -> 0..255 linearly;
- palette (indexed) images: expanded to their RGB colours; CMYK: converted to sRGB by libvips.

Truth masks (``--truth``): 8-bit grey (values are class ids; 255 = unlabelled), 1-bit grey (0/1), indexed
PNG (palette index = class id) or RGB whose colours are the class table's colours.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bigseg import pyramid
from bigseg import store as st
from bigseg.classes import CONCRETE, IGNORE_LABEL, ClassInfo
from bigseg.errors import BigsegError
from bigseg.paths import refuse_overlap
from bigseg.progress import progress_bar
from bigseg.store import files

MIN_SCAN_DPI = 300  # file resolutions at or below this are camera placeholders (72 dpi...), not scan resolutions


def _vips():
    import pyvips

    return pyvips


def _first_line(exc: Exception) -> str:
    lines = [t.strip() for t in str(exc).strip().splitlines() if t.strip()]
    # pyvips errors read "unable to <do something>\n  <detail>": the detail is the useful part
    return lines[-1] if lines else type(exc).__name__


def open_image(path: str | os.PathLike, what: str = "image"):
    """Open with libvips for sequential streaming; a clear BigsegError for anything unreadable. ``path`` may be an
    fsspec URL (``s3://bucket/scan.tif``): the file is streamed from there as libvips reads it, not copied."""
    pyvips = _vips()
    if st.is_url(path):
        return _open_url(str(path), what)
    p = Path(path)
    if not p.exists():
        raise BigsegError(f"{p}: no such file")
    if p.is_dir():
        raise BigsegError(f"{p}: is a folder, not an {what} file")
    if p.stat().st_size == 0:
        raise BigsegError(f"{p}: empty file (0 bytes)")
    try:
        img = _load(pyvips, p)
    except pyvips.Error as exc:
        raise BigsegError(f"{p}: not a readable {what} ({_first_line(exc)})") from exc
    if "tiff" in (img.get("vips-loader") if "vips-loader" in img.get_fields() else ""):
        check_tiff_complete(p)
    return img


def _load(pyvips, p: Path):
    """libvips' loader for ``p``. A legal file name that is not UTF-8 (café in Latin-1) cannot pass through
    pyvips' strings: such a file is opened here and handed to libvips as a descriptor (which libvips duplicates).

    A JPEG is decoded with ``fail_on="warning"``: libjpeg reports a scan that ends before the rows its header
    promises ("premature end of data segment") only as a warning and fills the rest with grey, which would make a
    store that looks complete; other formats fail on truncation (TIFF's strips are checked from the headers)."""
    try:
        os.fsencode(p).decode("utf-8")
    except UnicodeDecodeError:
        fd = os.open(p, os.O_RDONLY)
        try:
            source = pyvips.Source.new_from_descriptor(fd)
            img = pyvips.Image.new_from_source(source, "", access="sequential", fail_on="truncated")
            if _is_jpeg(img):
                img = pyvips.Image.new_from_source(source, "", access="sequential", fail_on="warning")
            return img
        finally:
            os.close(fd)
    img = pyvips.Image.new_from_file(str(p), access="sequential", fail_on="truncated")
    if _is_jpeg(img):
        img = pyvips.Image.new_from_file(str(p), access="sequential", fail_on="warning")
    return img


def _open_url(url: str, what: str):
    """An image at an fsspec URL as a libvips source whose reads and seeks are the remote file's (ranged GETs on
    object storage): JPEG and PNG stream front to back, a tiled TIFF reads its tiles where they are."""
    pyvips = _vips()
    fs, path, _ = files.remote_file(url, f"{what} file")

    def source():
        f = fs.open(path, "rb")
        src = pyvips.SourceCustom()
        src.on_read(f.read)
        src.on_seek(lambda offset, whence: f.seek(offset, whence))
        return src

    try:
        img = pyvips.Image.new_from_source(source(), "", access="sequential", fail_on="truncated")
        if _is_jpeg(img):
            img = pyvips.Image.new_from_source(source(), "", access="sequential", fail_on="warning")
    except pyvips.Error as exc:
        raise BigsegError(f"{url}: not a readable {what} ({_first_line(exc)})") from exc
    if "tiff" in (img.get("vips-loader") if "vips-loader" in img.get_fields() else ""):
        check_tiff_complete(url)
    return img


def _is_jpeg(img) -> bool:
    return "jpeg" in (img.get("vips-loader") if "vips-loader" in img.get_fields() else "")


def check_tiff_complete(path: Path | str) -> None:
    """A truncated TIFF decodes as zeros with only a warning; catch it from the headers instead.

    Every strip or tile of every page must lie inside the file (reads the IFDs only, not the pixels).
    """
    import tifffile

    with contextlib.ExitStack() as opened:  # (tifffile leaves a file object it was given open: closed here)
        if st.is_url(path):
            fs, inside, info = files.remote_file(str(path), "TIFF")
            size, handle = int(info["size"]), opened.enter_context(fs.open(inside, "rb"))
        else:
            size, handle = Path(path).stat().st_size, path
        try:
            with tifffile.TiffFile(handle) as tif:
                for page in tif.pages:
                    ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False) if n]
                    if ends and max(ends) > size:
                        raise BigsegError(f"{path}: truncated TIFF: its data runs to byte {max(ends)} but the file "
                                          f"has {size} bytes")
        except (tifffile.TiffFileError, ValueError, OSError) as exc:
            raise BigsegError(f"{path}: corrupt TIFF ({exc})") from exc


@dataclass
class SourceInfo:
    path: str
    width: int
    height: int
    bands: int
    format: str
    interpretation: str
    loader: str
    file_size: int
    mtime: int

    def to_attrs(self) -> dict:
        return dict(self.__dict__)


def _source_info(path: Path | str, img) -> SourceInfo:
    loader = img.get("vips-loader") if "vips-loader" in img.get_fields() else "unknown"
    if st.is_url(path):
        _, _, info = files.remote_file(str(path))
        return SourceInfo(str(path), img.width, img.height, img.bands, str(img.format), str(img.interpretation),
                          loader, int(info["size"]), int(files.modified(info)))
    stat = Path(path).stat()
    return SourceInfo(str(Path(path).resolve()), img.width, img.height, img.bands, str(img.format),
                      str(img.interpretation), loader, stat.st_size, int(stat.st_mtime))


def to_rgb8(img, path: Path | str):
    """The conversions listed in the module docstring, as a lazy libvips pipeline."""
    if img.interpretation == "cmyk":
        img = img.colourspace("srgb")
    if img.format in ("ushort", "short"):
        img = (img >> 8).cast("uchar")
    elif img.format != "uchar":
        raise BigsegError(f"{path}: unsupported pixel format {img.format} (8- or 16-bit integer images only)")
    if img.bands in (1, 2):
        g = img[0]
        img = g.bandjoin([g, g])
    elif img.bands == 4:
        img = img[0:3]
    elif img.bands != 3:
        raise BigsegError(f"{path}: {img.bands} bands; bigseg reads grey, grey+alpha, RGB and RGBA images")
    return img


def pixel_size_from_file(img) -> float | None:
    """Pixel size in micrometres from the file's resolution, or None for a camera's placeholder resolution."""
    xres = float(img.xres or 0)  # pixels per millimetre
    if xres * 25.4 <= MIN_SCAN_DPI:
        return None
    return 1000.0 / xres


# ---------------------------------------------------------------------------------------------------------
# truth masks


def png_palette(path: Path) -> np.ndarray | None:
    """The PLTE chunk of a PNG file as an (n, 3) uint8 array, or None if it has none (reads only headers)."""
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head)
            if kind == b"PLTE":
                data = f.read(length)
                return np.frombuffer(data, np.uint8).reshape(-1, 3)
            if kind in (b"IDAT", b"IEND"):
                return None
            f.seek(length + 4, 1)


class TruthDecoder:
    """Turns strips of a decoded mask into class ids, whatever the mask's encoding."""

    def __init__(self, path: Path, img, classes: tuple[ClassInfo, ...], value_map: np.ndarray | None = None,
                 colour_ids: dict[tuple[int, int, int], int] | None = None):
        """``value_map`` maps grey values or palette indices (0..len - 1) to class ids (255 = unlabelled);
        ``colour_ids`` maps the colours of an RGB mask to class ids (default: the class table's colours)."""
        self.path = path
        self.n_classes = len(classes)
        self.value_map = value_map
        fields = img.get_fields()
        self.bits = int(img.get("bits-per-sample")) if "bits-per-sample" in fields else 8
        palette = png_palette(path) if "palette" in fields else None
        if img.format != "uchar":
            raise BigsegError(f"{path}: truth masks must be 8-bit (got {img.format})")
        if palette is not None:
            self.mode = "palette"
            self.colors = palette
            img = img[0:3] if img.bands >= 3 else img[0].bandjoin([img[0], img[0]])
        elif img.bands in (1, 2):
            self.mode = "binary" if self.bits == 1 else "grey"
            img = img[0]
        elif img.bands in (3, 4):
            self.mode = "rgb"
            if colour_ids:
                self.colors = np.array(list(colour_ids), np.uint8).reshape(-1, 3)
                colour_values = np.array(list(colour_ids.values()), np.uint8)
            else:
                self.colors = np.array([c.color for c in classes], np.uint8)
            img = img[0:3]
        else:
            raise BigsegError(f"{path}: a truth mask with {img.bands} bands; use grey, indexed or RGB PNG/TIFF")
        self.img = img
        if self.mode in ("palette", "rgb"):
            keys = _rgb_key(self.colors)
            if len(np.unique(keys)) != len(keys):
                raise BigsegError(f"{path}: the mask's colour table repeats a colour, so classes are ambiguous")
            order = np.argsort(keys)
            self._sorted_keys, self._ids = keys[order], order.astype(np.uint8)
            if self.mode == "rgb" and colour_ids:
                self._ids = colour_values[order]

    def decode(self, strip: np.ndarray, y0: int) -> np.ndarray:
        if self.mode == "grey":
            ids = strip[..., 0]
        elif self.mode == "binary":
            ids = (strip[..., 0] > 127).astype(np.uint8)
        else:
            keys = _rgb_key(strip.reshape(-1, 3))
            pos = np.clip(np.searchsorted(self._sorted_keys, keys), 0, len(self._sorted_keys) - 1)
            ok = self._sorted_keys[pos] == keys
            if not ok.all():
                bad = int(np.flatnonzero(~ok)[0])
                y, x = divmod(bad, strip.shape[1])
                colour = tuple(int(v) for v in strip.reshape(-1, 3)[bad])
                raise BigsegError(f"{self.path}: colour {colour} at x={x}, y={y0 + y} is not in the class table")
            ids = self._ids[pos].reshape(strip.shape[:2])
        if self.value_map is not None and self.mode != "rgb":
            outside = ids >= len(self.value_map)
            if outside.any():
                y, x = (int(v[0]) for v in np.nonzero(outside))
                raise BigsegError(f"{self.path}: value {int(ids[y, x])} at x={x}, y={y0 + y} is outside the class "
                                  f"table (0..{len(self.value_map) - 1})")
            ids = self.value_map[ids]
        bad = (ids >= self.n_classes) & (ids != IGNORE_LABEL)
        if bad.any():
            y, x = (int(v[0]) for v in np.nonzero(bad))
            raise BigsegError(
                f"{self.path}: label {int(ids[y, x])} at x={x}, y={y0 + y} is outside the class table "
                f"(0..{self.n_classes - 1}, 255 = unlabelled)"
            )
        return ids


def _fetch(region, y0: int, width: int, h: int, path: Path) -> np.ndarray:
    """Rows y0..y0+h of a uchar pipeline as (h, width, bands); decode errors become a BigsegError."""
    pyvips = _vips()
    try:
        data = region.fetch(0, y0, width, h)
    except pyvips.Error as exc:
        raise BigsegError(f"{path}: decoding failed at rows {y0}..{y0 + h} ({_first_line(exc)})") from exc
    return np.frombuffer(data, np.uint8).reshape(h, width, -1)


def _decode_ahead(img, truth_img, strips, strip_h: int, height: int, width: int, path: Path, truth_path):
    """Yield (y0, h, strip, truth strip) top to bottom, decoding the next strip in a thread while the caller
    writes this one (libvips releases the GIL). At most two strips are held: the one being written and the next.

    One Region per pipeline, made and fetched in the decoding thread only, top to bottom: libvips' sequential
    mode needs the rows in order."""
    from concurrent.futures import ThreadPoolExecutor

    pyvips = _vips()
    regions: list[Any] = []

    def fetch(y0: int):
        if not regions:
            regions.extend([pyvips.Region.new(img), pyvips.Region.new(truth_img) if truth_img is not None else None])
        h = min(strip_h, height - y0)
        block = _fetch(regions[0], y0, width, h, path)
        tblock = _fetch(regions[1], y0, width, h, truth_path) if regions[1] is not None else None
        return y0, h, block, tblock

    with ThreadPoolExecutor(1, thread_name_prefix="bigseg-decode") as pool:
        pending = None
        for y0 in strips:
            following = pool.submit(fetch, y0)
            if pending is not None:
                yield pending.result()
            pending = following
        if pending is not None:
            yield pending.result()


def mask_strips(path: str | os.PathLike, height: int, width: int, classes: tuple[ClassInfo, ...], strip_h: int,
                colour_ids: dict[tuple[int, int, int], int] | None = None, what: str = "mask"):
    """Yield (y0, class ids) strips of a mask file of ``width`` x ``height`` (grey/indexed values are class ids,
    255 = none; RGB in the class colours, or ``colour_ids``), decoded a strip ahead, checked as truth masks are:
    the size first, then every value, named with its position."""
    p = Path(path)
    img = open_image(p, what)
    if (img.width, img.height) != (width, height):
        raise BigsegError(f"{p}: the {what} is {img.width}x{img.height} but the store's image is {width}x{height}")
    dec = TruthDecoder(p, img, classes, None, colour_ids)
    for y0, _h, strip, _ in _decode_ahead(dec.img, None, range(0, height, strip_h), strip_h, height, width, p, None):
        yield y0, dec.decode(strip, y0)


def _rgb_key(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


# ---------------------------------------------------------------------------------------------------------


ORIENTATIONS = range(1, 9)
"""EXIF/TIFF orientation values: 1 as stored; 2-4 mirrored or turned by 180 degrees; 5-8 turned by 90 degrees
(width and height swap)."""


def orientation_of(img) -> int:
    """The file's orientation tag (EXIF for JPEG, the TIFF tag for TIFF), 1 when it has none."""
    try:
        value = int(img.get("orientation")) if "orientation" in img.get_fields() else 1
    except (TypeError, ValueError):
        return 1
    return value if value in ORIENTATIONS else 1


def orient(block: np.ndarray, orientation: int) -> np.ndarray:
    """A strip of rows in file order turned as a viewer shows it (see :func:`oriented_place`)."""
    if orientation == 2:
        return block[:, ::-1]
    if orientation == 3:
        return block[::-1, ::-1]
    if orientation == 4:
        return block[::-1]
    if orientation == 5:
        return np.swapaxes(block, 0, 1)
    if orientation == 6:
        return np.rot90(block, -1)
    if orientation == 7:
        return np.rot90(block, -1)[::-1]
    if orientation == 8:
        return np.rot90(block, 1)
    return block


def oriented_place(y0: int, y1: int, height: int, orientation: int) -> tuple[slice, slice]:
    """Where rows y0..y1 of a file of ``height`` rows land in the viewer's picture: (rows, columns)."""
    whole = slice(None)
    if orientation in (3, 4):
        return slice(height - y1, height - y0), whole
    if orientation in (5, 8):
        return whole, slice(y0, y1)
    if orientation in (6, 7):
        return whole, slice(height - y1, height - y0)
    return slice(y0, y1), whole


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest` wrote: the store, its size and chunk, the pixel size, the pyramid's factors, and how the
    picture was turned (``orientation``: the file's tag; ``autorotated``: whether it was followed)."""

    store: str
    image: str
    width: int
    height: int
    bands_in_file: int
    chunk: int
    pixel_size_um: float | None
    truth: str | None
    preview_factors: list[int]
    orientation: int
    autorotated: bool

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class _Sources:
    """The opened image (and truth mask), checked against each other, with what the store records about them."""

    image: Path | str  # a local file, or an fsspec URL
    rgb: Any  # pyvips image, uint8 RGB, in the file's order
    orientation: int  # what to apply (1: none)
    source: dict  # the store's "source" attribute
    bands: int
    height: int  # as stored (turned)
    width: int
    pixel_size: float | None
    truth: Path | None
    truth_dec: TruthDecoder | None


def ingest(
    image: str | os.PathLike,
    store: str | os.PathLike,
    truth: str | os.PathLike | None = None,
    pixel_size: float | None = None,
    chunk: int = st.DEFAULT_CHUNK,
    overwrite: bool = False,
    classes: tuple[ClassInfo, ...] = CONCRETE,
    progress: bool | None = False,
    truth_values: np.ndarray | None = None,
    truth_colours: dict[tuple[int, int, int], int] | None = None,
    autorotate: bool = True,
) -> IngestResult:
    """Stream ``image`` (and optionally its ``truth`` mask) into a new slab store at ``store``.

    The mask's values are class ids (grey or palette index) or class colours (RGB); importers of other
    conventions pass ``truth_values`` (mask value -> class id or 255 = unlabelled; larger values are errors) or
    ``truth_colours`` (RGB colour -> class id or 255). ``autorotate``: follow the file's orientation tag (EXIF,
    TIFF) as viewers do, so the store holds the picture people see (and traverse lines run as they see them); the
    mask must be in that orientation too (an annotation program shows the turned picture).

    The store is written under a temporary name and moved into place when complete; an existing store is
    refused unless ``overwrite``, and so is a store another ingest is writing.
    """
    if chunk < 64 or chunk > 8192:
        raise BigsegError(f"--chunk must be between 64 and 8192 pixels, got {chunk}")
    if pixel_size is not None and not (math.isfinite(pixel_size) and pixel_size > 0):
        raise BigsegError(f"--pixel-size must be a positive number, got {pixel_size}")
    remote = st.is_url(store)
    if not remote:
        refuse_overlap(store, "STORE", ("image", image), ("truth mask", truth))
    if files.exists(store) and not overwrite:
        raise BigsegError(f"{store} exists; pass --overwrite to replace it")
    if truth is not None and st.is_url(truth):
        raise BigsegError(f"{truth}: a truth mask is read from this machine's disk (the image may be a URL)")
    src = _open_sources(str(image) if st.is_url(image) else Path(image), truth, pixel_size, classes, truth_values,
                        truth_colours, autorotate)
    with st.object_output(str(store), overwrite) if remote else st.staged_output(store, overwrite) as tmp:
        factors = _write_store(tmp, src, chunk, classes, progress)
    return IngestResult(store=str(store), image=str(src.image), width=src.width, height=src.height,
                        bands_in_file=src.bands, chunk=chunk, pixel_size_um=src.pixel_size,
                        truth=str(src.truth) if src.truth is not None else None, preview_factors=factors,
                        orientation=src.source["orientation"], autorotated=src.source["autorotated"])


def _open_sources(image: Path | str, truth, pixel_size: float | None, classes, truth_values, truth_colours,
                  autorotate: bool) -> _Sources:
    """Open the image (and mask) and check them before anything is written: readable, RGB-convertible, the mask
    the size of the (turned) picture."""
    src = open_image(image)
    info = _source_info(image, src)
    orientation = orientation_of(src) if autorotate else 1
    rgb = to_rgb8(src, image)
    height, width = (rgb.width, rgb.height) if orientation >= 5 else (rgb.height, rgb.width)
    truth_dec = None
    if truth is not None:
        truth = Path(truth)
        timg = open_image(truth, "truth mask")
        if (timg.width, timg.height) != (width, height):
            turned = " (the image as its orientation tag turns it)" if orientation >= 5 else ""
            raise BigsegError(
                f"{truth}: truth mask is {timg.width}x{timg.height} but the image is {width}x{height}{turned}"
            )
        truth_dec = TruthDecoder(truth, timg, classes, truth_values, truth_colours)
    px = pixel_size if pixel_size is not None else pixel_size_from_file(src)
    source = {**info.to_attrs(), "orientation": orientation_of(src), "autorotated": orientation != 1}
    return _Sources(image, rgb, orientation, source, info.bands, height, width, px, truth, truth_dec)


def _write_store(tmp: Path | str, s: _Sources, chunk: int, classes, progress: bool | None) -> list[int]:
    """The image (and truth) arrays and their pyramids into the new store at ``tmp``, strip by strip; returns the
    pyramid's factors."""
    height, width = s.height, s.width
    factors, strip_h = pyramid.factors_for(height, width, chunk)
    group = st.zarr_open_new(tmp)
    st.init_root_attrs(group, source=s.source, pixel_size=s.pixel_size, classes=classes)
    img_arr = st.create_array(group, "image", (height, width, 3), (chunk, chunk, 3), ("y", "x", "band"),
                              compressors=st.compressor())
    truth_arr = None
    if s.truth_dec is not None:
        assert s.truth is not None
        truth_arr = st.create_array(group, "truth", (height, width), (chunk, chunk), ("y", "x"),
                                    attrs={"source": str(s.truth.resolve()), "encoding": s.truth_dec.mode})
    levels = _pyramid_arrays(group, height, width, factors)
    truth_levels = (pyramid.create_levels(group, pyramid.LABEL_PYRAMIDS["truth"], height, width, factors)
                    if s.truth_dec else {})
    rgb = s.rgb
    file_h, file_w = rgb.height, rgb.width
    strips = progress_bar(range(0, file_h, strip_h), total=-(-file_h // strip_h), desc=f"ingest {st.name_of(s.image)}",
                          unit="strip", enabled=progress)
    if s.orientation == 1:
        _write_strips(rgb, s.truth_dec, img_arr, truth_arr, levels, factors, strips, strip_h, s.image, s.truth,
                      truth_levels)
    else:
        _write_oriented(rgb, img_arr, strips, strip_h, file_h, file_w, s.orientation, s.image)
        if s.truth_dec is not None:
            _write_strips(None, s.truth_dec, None, truth_arr, {}, factors, range(0, height, strip_h), strip_h,
                          s.image, s.truth, truth_levels)
        _pyramid_from_store(img_arr, levels, factors, strip_h)
    for arr in [img_arr, truth_arr, *levels.values(), *truth_levels.values()]:
        if arr is not None:
            st.set_complete(arr)
    st.consolidate(tmp)
    return factors


def _pyramid_arrays(group, height: int, width: int, factors: list[int]) -> dict:
    previews = group.create_group("preview")
    levels = {}
    for f in factors:
        ph, pw = -(-height // f), -(-width // f)
        levels[f] = st.create_array(previews, f"x{f}", (ph, pw, 3), (min(ph, 1024), min(pw, 1024), 3),
                                    ("y", "x", "band"), compressors=st.compressor(), attrs={"factor": f})
    return levels


def _write_strips(rgb, truth_dec, img_arr, truth_arr, levels, factors, strips, strip_h, image, truth,
                  truth_levels) -> None:
    """The file's strips, decoded a strip ahead, into the image (and truth) arrays and their pyramids, as they
    come: the file's orientation is the store's."""

    height = truth_dec.img.height if rgb is None else rgb.height
    width = truth_dec.img.width if rgb is None else rgb.width
    if rgb is None:  # the truth alone (after an oriented image): its strips stand in for the image's
        decoded = ((y0, h, None, t) for y0, h, t, _ in _decode_ahead(truth_dec.img, None, strips, strip_h, height,
                                                                       width, truth, None))
    else:
        decoded = _decode_ahead(rgb, truth_dec.img if truth_dec else None, strips, strip_h, height, width, image,
                                truth)
    for y0, h, block, tblock in decoded:
        if img_arr is not None:
            img_arr[y0 : y0 + h] = block
        if truth_arr is not None:
            ids = truth_dec.decode(tblock, y0)
            truth_arr[y0 : y0 + h] = ids
            pyramid.write_strip(truth_levels, factors, y0, ids, truth_dec.n_classes)
        if block is not None:
            for f, pooled in pyramid.mean_levels(block, factors).items():
                levels[f][y0 // f : y0 // f + pooled.shape[0]] = pooled
        del block, tblock  # before the next strip arrives: two strips in memory, not three


def _write_oriented(rgb, img_arr, strips, strip_h: int, file_h: int, file_w: int, orientation: int, image) -> None:
    """The file's strips turned as its orientation tag says, each written where it lands (a band of columns for
    a quarter turn): memory stays two strips."""
    for y0, h, block, _ in _decode_ahead(rgb, None, strips, strip_h, file_h, file_w, image, None):
        rows, cols = oriented_place(y0, y0 + h, file_h, orientation)
        img_arr[rows, cols] = orient(block, orientation)
        del block


def _pyramid_from_store(img_arr, levels: dict, factors: list[int], strip_h: int) -> None:
    """The preview pyramid from the written image, a strip at a time (a turned image arrives in columns)."""
    height = img_arr.shape[0]
    for y0 in range(0, height, strip_h):
        block = st.read(img_arr, slice(y0, min(y0 + strip_h, height)))
        for f, pooled in pyramid.mean_levels(block, factors).items():
            levels[f][y0 // f : y0 // f + pooled.shape[0]] = pooled
