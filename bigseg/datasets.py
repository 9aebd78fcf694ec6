"""Importers: annotations in the forms people already have -> one slab store (image + truth) per image.

* ``gimp DIR OUTDIR`` -- one grey layer per class, exported from GIMP: ``DIR/Image/<name>.png`` and
  ``DIR/Semantic/<id>_<classname>/<name>.png``. A pixel belongs to a class where its layer is brighter than
  ``threshold`` (default 20 % of white; layers with alpha count grey x alpha). Pixels in no layer are class 0
  (named ``background`` unless a ``0_<name>`` folder names it); where layers overlap the higher id wins.
* ``camvid DIR OUTDIR`` -- the SegNet layout (``train/ trainannot/ val/ valannot/ test/ testannot/``, class
  index PNGs, optional ``label_colors.txt``) or the fastai layout (``images/``, ``labels/<stem>_P.png``,
  ``codes.txt``, ``valid.txt``). Splits are kept (``OUTDIR/train``, ``OUTDIR/val``, ``OUTDIR/test``); the void
  class (``Void``/``Unlabelled``, or ``void_name``) becomes the ignore label 255 and leaves the class table.
* ``pairs IMAGES MASKS OUTDIR`` -- generic folders; masks matched by stem (``name.png``, ``name_mask.png``,
  ``name_P.png``, ``name_L.png``, ``name.truth.png``...), as class indices (grey or palette) or colours of a
  colour table file (``label_colors.txt`` format).

Colour table files: one class per line, ``R G B name`` (whitespace or tab separated); the line order gives the
class ids (0, 1, ...). Every store is written atomically by ``ingest``; existing stores are refused unless
``overwrite``, checked for all images before the first is written.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bigseg import store as st
from bigseg.classes import CONCRETE, IGNORE_LABEL, ClassInfo, validate_table
from bigseg.errors import BigsegError
from bigseg.ingest import ingest, open_image
from bigseg.paths import refuse_overlap

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

VOID_NAMES = ("void", "unlabelled", "unlabeled")
"""CamVid's names for 'no class': imported as the ignore label."""

SEGNET_CAMVID = (
    ("Sky", (128, 128, 128)), ("Building", (128, 0, 0)), ("Pole", (192, 192, 128)), ("Road", (128, 64, 128)),
    ("Pavement", (60, 40, 222)), ("Tree", (128, 128, 0)), ("SignSymbol", (192, 128, 128)),
    ("Fence", (64, 64, 128)), ("Car", (64, 0, 128)), ("Pedestrian", (64, 64, 0)), ("Bicyclist", (0, 128, 192)),
    ("Unlabelled", (0, 0, 0)),
)
"""The 12 classes of SegNet's CamVid annotations (index 11 is void), used when no colour table is given."""

MASK_SUFFIXES = ("", "_mask", "_P", "_L", "_label", "_labels", "_gt", ".truth", "_truth", "-mask")


@dataclass
class Imported:
    stores: list[Path]
    classes: tuple[ClassInfo, ...]
    split: dict[str, int]


def _palette(i: int) -> tuple[int, int, int]:
    """Distinct display colours for classes without one (golden-angle hues)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def read_colour_table(path: str | os.PathLike) -> list[tuple[str, tuple[int, int, int]]]:
    """``R G B name`` per line (``label_colors.txt``); blank lines and ``#`` comments skipped."""
    entries = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BigsegError(f"{path}: not a text file (a colour table is 'R G B name' per line)") from exc
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(\d+)[\s,]+(\d+)[\s,]+(\d+)[\s,]+(.+)", line)
        if not m or any(int(v) > 255 for v in m.groups()[:3]):
            raise BigsegError(f"{path}:{n}: expected 'R G B name' with 0..255 values, got {line!r}")
        r, g, b = (int(v) for v in m.groups()[:3])
        entries.append((m.group(4).strip(), (r, g, b)))
    if not entries:
        raise BigsegError(f"{path}: no classes in the colour table")
    return entries


def _table_without_void(entries: list[tuple[str, tuple[int, int, int]]], void_name: str | None,
                        default_voids=VOID_NAMES):
    """Class table (void removed) and value map: entry index -> class id, void -> 255."""
    voids = {void_name.lower()} if void_name else set(default_voids)
    classes: list[ClassInfo] = []
    value_map = np.full(len(entries), IGNORE_LABEL, np.uint8)
    colour_ids = {}
    for i, (name, colour) in enumerate(entries):
        if name.lower() in voids:
            colour_ids[colour] = IGNORE_LABEL
            continue
        value_map[i] = len(classes)
        colour_ids[colour] = len(classes)
        classes.append(ClassInfo(len(classes), name, colour))
    if void_name and void_name.lower() not in {n.lower() for n, _ in entries}:
        raise BigsegError(f"--void {void_name}: no such class (classes: {', '.join(n for n, _ in entries)})")
    table = tuple(classes)
    validate_table(table)
    return table, value_map, colour_ids


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BigsegError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise BigsegError(f"{folder}: no images (.png, .jpg, .tif) in it")
    return files


def _check_outputs(outputs: list[Path], overwrite: bool, outdir: Path) -> None:
    for p in outputs:  # names come from file names, which cannot hold "/"; this keeps it so
        if not p.resolve().is_relative_to(outdir.resolve()) or p.resolve() == outdir.resolve():
            raise BigsegError(f"{p}: would be written outside {outdir}")
    existing = [p for p in outputs if p.exists()]
    if existing and not overwrite:
        raise BigsegError(f"{existing[0]} exists ({len(existing)} of {len(outputs)} stores do); pass --overwrite "
                          "to replace them")
    names = [p.resolve() for p in outputs]
    if len(set(names)) != len(names):
        dup = next(p for p in names if names.count(p) > 1)
        raise BigsegError(f"two images would both be imported to {dup}; give them different names")


def _size(path: Path, what: str) -> tuple[int, int]:
    img = open_image(path, what)  # reads the header only
    return img.width, img.height


def _check_sizes(pairs) -> None:
    """Every mask or layer the size of its image, checked from the headers before anything is written."""
    for image, masks in pairs:
        w, h = _size(image, "image")
        for mask in masks:
            mw, mh = _size(mask, "mask")
            if (mw, mh) != (w, h):
                raise BigsegError(f"{mask}: mask is {mw}x{mh} but the image {image.name} is {w}x{h}")


def _ingest_all(jobs, classes, outdir: Path, pixel_size, chunk, overwrite, echo, inputs=None, **maps) -> list[Path]:
    """Ingest every (image, mask, store) job, all or nothing: the stores are written into a staging folder in
    OUTDIR and moved into place only when every one of them succeeded (an existing store is replaced then, with
    ``overwrite``). A failure, or a kill, leaves OUTDIR as it was (a killed run's staging folder is removed by the
    next run)."""
    stores = [store for _, _, store in jobs]
    _check_outputs(stores, overwrite, outdir)
    for path in inputs if inputs is not None else [p for image, mask, _ in jobs for p in (image, mask)]:
        refuse_overlap(outdir, "OUTDIR", ("input", path))
    _check_sizes([(image, [mask]) for image, mask, _ in jobs])
    outdir.mkdir(parents=True, exist_ok=True)
    st.remove_stale_partials(outdir, "import")
    stage = outdir / f".import.partial-{os.getpid()}"
    try:
        for image, mask, store in jobs:
            staged = stage / store.relative_to(outdir)
            staged.parent.mkdir(parents=True, exist_ok=True)
            ingest(image, staged, truth=mask, pixel_size=pixel_size, chunk=chunk, classes=classes, **maps)
            echo(f"{image.name} + {mask.name} -> {store}")
        for store in stores:
            store.parent.mkdir(parents=True, exist_ok=True)
            if store.exists():
                shutil.rmtree(store)
            os.replace(stage / store.relative_to(outdir), store)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return stores


# -----------------------------------------------------------------------------------------------------------
# GIMP layers


def _gimp_classes(semantic: Path) -> list[tuple[int, str, Path]]:
    layers = []
    for d in sorted(p for p in semantic.iterdir() if p.is_dir()):
        m = re.fullmatch(r"(\d+)_(.+)", d.name)
        if not m:
            raise BigsegError(f"{d}: class folders must be named <id>_<name> (e.g. 1_stone)")
        layers.append((int(m.group(1)), m.group(2), d))
    if not layers:
        raise BigsegError(f"{semantic}: no class folders (<id>_<name>) in it")
    return sorted(layers)


def _compose_layers(layer_files: list[tuple[int, Path]], size: tuple[int, int], threshold: float, out: Path,
                    on_top: int | None = None):
    """Stream the class layers into one grey mask (class id per pixel, higher id on top, or class ``on_top``
    above all) at ``out``."""
    import pyvips

    w, h = size
    composed = pyvips.Image.black(w, h).cast("uchar")
    for class_id, path in sorted(layer_files, key=lambda item: (item[0] == on_top, item[0])):
        layer = open_image(path, "class layer")
        if (layer.width, layer.height) != (w, h):
            raise BigsegError(f"{path}: layer is {layer.width}x{layer.height} but the image is {w}x{h}")
        if layer.format != "uchar":
            layer = (layer.cast("float") * (255.0 / (65535.0 if layer.format == "ushort" else 1.0))).cast("uchar")
        if layer.hasalpha():
            alpha = layer[layer.bands - 1]
            grey = layer[0] if layer.bands <= 2 else layer[0:3].colourspace("b-w")
            value = grey * alpha / 255.0
        else:
            value = layer[0] if layer.bands < 3 else layer.colourspace("b-w")[0]
        bits = int(layer.get("bits-per-sample")) if "bits-per-sample" in layer.get_fields() else 8
        cut = 0 if bits == 1 else threshold * 255.0
        composed = (value > cut).ifthenelse(class_id, composed)
    composed.write_to_file(str(out), compression="deflate", tile=True, bigtiff=True)


def import_gimp(folder, outdir, threshold: float = 0.2, pixel_size: float | None = None, chunk: int = st.DEFAULT_CHUNK,
                overwrite: bool = False, precedence: str | None = None, echo=print) -> Imported:
    """GIMP per-class layer exports -> ``OUTDIR/<name>.zarr`` (image + truth); see the module docstring.

    Where layers overlap the higher class id wins (void over stone in the concrete table), or the class named by
    ``precedence`` wins over every other (``stone``: the rule of the original air-void trainer's loader)."""
    folder, outdir = Path(folder), Path(outdir)
    if not 0 <= threshold < 1:
        raise BigsegError(f"--threshold must be in [0, 1), got {threshold}")
    if not (folder / "Semantic").is_dir() or not (folder / "Image").is_dir():
        raise BigsegError(f"{folder}: expected the folders Image/ and Semantic/<id>_<name>/ in it")
    layers = _gimp_classes(folder / "Semantic")
    names = {i: n for i, n, _ in layers}
    n_classes = max(names) + 1
    missing = [i for i in range(1, n_classes) if i not in names]
    if missing:
        raise BigsegError(f"{folder / 'Semantic'}: no folder for class id {missing[0]}; ids must run 1..{n_classes - 1}"
                          " without gaps")
    by_name = {c.name: c for c in CONCRETE}
    names.setdefault(0, "paste" if {"stone", "void"} & set(names.values()) else "background")
    classes = tuple(ClassInfo(i, names[i], by_name[names[i]].color if names[i] in by_name else _palette(i))
                    for i in range(n_classes))
    validate_table(classes)
    on_top = None
    if precedence is not None:
        on_top = next((c.id for c in classes if c.name == precedence), None)
        if on_top is None or on_top == 0:
            layer_names = ", ".join(names[i] for i in sorted(names) if i)
            raise BigsegError(f"--precedence {precedence}: not a layer class ({layer_names})")
    images = _images(folder / "Image")
    jobs, layer_sets = [], []
    for image in images:
        files = []
        for i, _, d in layers:
            if i == 0:
                continue
            candidates = [d / f"{image.stem}{ext}" for ext in (".png", ".PNG", ".tif", ".tiff")]
            hit = next((c for c in candidates if c.is_file()), None)
            if hit is None:
                raise BigsegError(f"{d}: no layer for image {image.name} (expected {image.stem}.png)")
            files.append((i, hit))
        layer_sets.append(files)
        jobs.append((image, None, outdir / f"{image.stem}.zarr"))
    _check_outputs([s for _, _, s in jobs], overwrite, outdir)
    refuse_overlap(outdir, "OUTDIR", ("annotation folder", folder))
    _check_sizes([(image, [f for _, f in files]) for (image, _, _), files in zip(jobs, layer_sets, strict=True)])
    outdir.mkdir(parents=True, exist_ok=True)
    st.remove_stale_partials(outdir, "import-masks")
    masks = outdir / f".import-masks.partial-{os.getpid()}"
    masks.mkdir()
    try:
        composed = []
        for (image, _, store), files in zip(jobs, layer_sets, strict=True):
            mask = masks / f"{image.stem}.mask.tif"
            _compose_layers(files, _size(image, "image"), threshold, mask, on_top)
            composed.append((image, mask, store))
        stores = _ingest_all(composed, classes, outdir, pixel_size, chunk, overwrite, lambda *a: None,
                             inputs=[folder])
    finally:
        shutil.rmtree(masks, ignore_errors=True)
    for (image, _, store), files in zip(jobs, layer_sets, strict=True):
        echo(f"{image.name} + {len(files)} layers -> {store}")
    return Imported(stores, classes, {"all": len(stores)})


# -----------------------------------------------------------------------------------------------------------
# CamVid


def _find_mask(masks: Path, stem: str, suffixes=MASK_SUFFIXES) -> Path | None:
    for suffix in suffixes:
        for ext in (".png", ".PNG", ".tif", ".tiff", ".bmp"):
            p = masks / f"{stem}{suffix}{ext}"
            if p.is_file():
                return p
    return None


def import_camvid(folder, outdir, void_name: str | None = None, pixel_size: float | None = None,
                  chunk: int = st.DEFAULT_CHUNK, overwrite: bool = False, echo=print) -> Imported:
    """A CamVid dataset (SegNet or fastai layout) -> ``OUTDIR/<split>/<stem>.zarr``; see the module docstring."""
    folder, outdir = Path(folder), Path(outdir)
    if not folder.is_dir():
        raise BigsegError(f"{folder}: no such folder")
    jobs: list = []
    split: dict[str, int] = {}
    if (folder / "trainannot").is_dir():  # SegNet layout
        table = folder / "label_colors.txt"
        entries = read_colour_table(table) if table.is_file() else [(n, c) for n, c in SEGNET_CAMVID]
        for name in ("train", "val", "test"):
            if not (folder / name).is_dir():
                continue
            annot = folder / f"{name}annot"
            if not annot.is_dir():
                raise BigsegError(f"{annot}: no such folder (the annotations of {folder / name})")
            for image in _images(folder / name):
                mask = _find_mask(annot, image.stem)
                if mask is None:
                    raise BigsegError(f"{annot}: no annotation for {image.name}")
                jobs.append((image, mask, outdir / name / f"{image.stem}.zarr"))
                split[name] = split.get(name, 0) + 1
    elif (folder / "images").is_dir() and (folder / "labels").is_dir():  # fastai layout
        codes = folder / "codes.txt"
        if not codes.is_file():
            raise BigsegError(f"{codes}: no such file (the class names, one per line)")
        names = [ln.strip() for ln in codes.read_text().splitlines() if ln.strip()]
        table = folder / "label_colors.txt"
        colours = dict((n, c) for n, c in read_colour_table(table)) if table.is_file() else {}
        entries = [(n, colours.get(n, _palette(i))) for i, n in enumerate(names)]
        valid_file = folder / "valid.txt"
        valid = {ln.strip() for ln in valid_file.read_text().splitlines() if ln.strip()} if valid_file.is_file() \
            else set()
        for image in _images(folder / "images"):
            mask = _find_mask(folder / "labels", image.stem, ("_P", *MASK_SUFFIXES))
            if mask is None:
                raise BigsegError(f"{folder / 'labels'}: no label for {image.name} (expected {image.stem}_P.png)")
            name = "val" if image.name in valid or image.stem in valid else "train"
            jobs.append((image, mask, outdir / name / f"{image.stem}.zarr"))
            split[name] = split.get(name, 0) + 1
    else:
        raise BigsegError(f"{folder}: not a CamVid folder (expected train/ + trainannot/, or images/ + labels/ + "
                          "codes.txt)")
    classes, value_map, colour_ids = _table_without_void(entries, void_name)
    stores = _ingest_all(jobs, classes, outdir, pixel_size, chunk, overwrite, echo, truth_values=value_map,
                         truth_colours=colour_ids)
    return Imported(stores, classes, split)


# -----------------------------------------------------------------------------------------------------------
# image / mask folders


def import_pairs(images, masks, outdir, colour_table=None, void_name: str | None = None,
                 pixel_size: float | None = None, chunk: int = st.DEFAULT_CHUNK, overwrite: bool = False,
                 echo=print) -> Imported:
    """Image and mask folders matched by stem -> ``OUTDIR/<stem>.zarr``; see the module docstring.

    Without ``colour_table`` the classes are the concrete table (0 paste, 1 stone, 2 void) and masks hold class
    ids (grey or palette index) or the concrete colours."""
    images, masks, outdir = Path(images), Path(masks), Path(outdir)
    if not masks.is_dir():
        raise BigsegError(f"{masks}: no such folder")
    if colour_table:
        # no default void here: a concrete table's "void" is air, not 'no class'
        classes, value_map, colour_ids = _table_without_void(read_colour_table(colour_table), void_name, ())
        maps = {"truth_values": value_map, "truth_colours": colour_ids}
    else:
        classes, maps = CONCRETE, {}
    jobs = []
    for image in _images(images):
        mask = _find_mask(masks, image.stem)
        if mask is None:
            raise BigsegError(f"{masks}: no mask for {image.name} (looked for {image.stem}.png, "
                              f"{image.stem}_mask.png, ...)")
        jobs.append((image, mask, outdir / f"{image.stem}.zarr"))
    stores = _ingest_all(jobs, classes, outdir, pixel_size, chunk, overwrite, echo, **maps)
    return Imported(stores, classes, {"all": len(stores)})
