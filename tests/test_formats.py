"""bigseg export-ome and export-tiff: what other tools read back is the store, level by level."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr
from helpers import error_line, run_cli
from serve_fixtures import H, W, make_quad_store

from bigseg.classes import CONCRETE
from bigseg.formats.levels import MAX_WRITER_THREADS, halve_mask, halve_picture, writer_threads


@pytest.fixture(scope="module")
def quad(tmp_path_factory):
    return make_quad_store(tmp_path_factory.mktemp("formats"))


def test_ome_zarr_opens_in_the_ome_zarr_reader_and_validates(quad, tmp_path):
    out = tmp_path / "quad.ome.zarr"
    proc = run_cli("export-ome", quad, "-o", out)
    assert proc.returncode == 0, proc.stderr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    nodes = list(Reader(parse_url(str(out)))())
    assert len(nodes) == 4  # the image, the labels group, labels and truth
    image = nodes[0]
    levels = image.data
    assert [tuple(a.shape) for a in levels] == [(3, -(-H // 2**i), -(-W // 2**i)) for i in range(len(levels))]
    assert len(levels) == 5  # 3000 -> 1500 -> 750 -> 375 -> 188 (<= 256)
    g = zarr.open_group(str(quad), mode="r")
    assert (np.moveaxis(np.asarray(levels[0]), 0, -1) == g["image"][:]).all()
    assert [ax["name"] for ax in image.metadata["axes"]] == ["c", "y", "x"]
    assert image.metadata["coordinateTransformations"][2][0]["scale"] == [1.0, 40.0, 40.0]
    labels = [n for n in nodes if n.metadata.get("properties")]
    assert {n.metadata["name"] for n in labels} == {"labels", "truth"}
    lab = next(n for n in labels if n.metadata["name"] == "labels")
    assert (np.asarray(lab.data[0]) == g["labels"][:]).all()
    assert lab.metadata["properties"][2] == {"class": "void"} and lab.metadata["color"][255][3] == 0
    # level 2 of the labels is the mode of 2 x 2 modes: quadrants kept, the 200 px wrong square as 50 px
    l2 = np.asarray(lab.data[2])
    assert l2[100, 100] == 0 and l2[140, 140] == 2 and l2[100, 600] == 1 and l2[400, 100] == 2 and l2[400, 600] == 255
    assert (l2 == 2)[: H // 8, : W // 8].sum() == 50 * 50
    # the NGFF 0.5 schema (pydantic models of the specification)
    from ome_zarr_models.v05 import Image, ImageLabel

    root = zarr.open_group(str(out), mode="r")
    Image.from_zarr(root)
    for name in ("labels", "truth"):
        ImageLabel.from_zarr(root["labels"][name])
    # the store itself is unchanged and its xarray view as before
    import xarray as xr

    assert xr.open_zarr(quad)["labels"].dims == ("y", "x")


def test_tiff_pyramid_reads_back_in_tifffile_and_libvips(quad, tmp_path):
    import pyvips
    import tifffile

    g = zarr.open_group(str(quad), mode="r")
    out = tmp_path / "labels.tif"
    assert run_cli("export-tiff", quad, "-o", out).returncode == 0
    with tifffile.TiffFile(out) as tif:
        series = tif.series[0]
        assert [lv.shape for lv in series.levels] == [(H, W), (1000, 1500), (500, 750), (250, 375)]
        page = tif.pages[0]
        assert page.is_tiled and page.tilewidth == 512 and page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert page.photometric == tifffile.PHOTOMETRIC.PALETTE
        assert tuple(page.colormap[:, 2] // 257) == tuple(CONCRETE[2].color)
        assert page.resolution == (1000.0, 1000.0) and page.resolutionunit == tifffile.RESUNIT.CENTIMETER
        assert (series.levels[0].asarray() == g["labels"][:]).all()
        import dask.array as da

        l1 = halve_mask(da.from_array(g["labels"][:], chunks=1024), 3).compute()
        assert (series.levels[1].asarray() == l1).all()
        meta = json.loads(page.description)["bigseg"]
        assert meta["layer"] == "labels" and meta["classes"][2]["name"] == "void" and meta["unlabelled"] == 255
    v = pyvips.Image.new_from_file(str(out))
    assert (v.width, v.height, v.get("n-pages")) == (W, H, 4)
    assert pyvips.Image.new_from_file(str(out), page=3).width == 375
    rgb = tmp_path / "image.tif"
    assert run_cli("export-tiff", quad, "-o", rgb, "--layer", "image").returncode == 0
    with tifffile.TiffFile(rgb) as tif:
        assert (tif.series[0].levels[0].asarray() == g["image"][:]).all()
        want = halve_picture(da.from_array(g["image"][:].transpose(2, 0, 1), chunks=(3, 1024, 1024))).compute()
        assert (tif.series[0].levels[1].asarray() == want.transpose(1, 2, 0)).all()


def test_export_refusals_are_one_line_and_write_nothing(quad, tmp_path):
    out = tmp_path / "x.tif"
    out.write_bytes(b"precious")
    assert "exists" in error_line(run_cli("export-tiff", quad, "-o", out))
    assert out.read_bytes() == b"precious"
    assert "no probabilities" in error_line(run_cli("export-tiff", quad, "-o", tmp_path / "p.tif", "--layer",
                                                    "probabilities"))
    for args in (("export-ome", quad, "-o", quad / "inside.ome.zarr", "--overwrite"),
                 ("export-ome", quad, "-o", quad, "--overwrite"),
                 ("export-tiff", quad, "-o", quad / "labels.tif")):
        line = error_line(run_cli(*args))
        assert "store" in line, line
    assert zarr.open_group(str(quad), mode="r")["labels"].shape == (H, W)
    assert not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob(".*levels*"))
    assert "not a zarr store" in error_line(run_cli("export-ome", tmp_path, "-o", tmp_path / "o.ome.zarr"))
    assert not (tmp_path / "o.ome.zarr").exists()


def test_export_levels_are_the_stores_levels_pixel_for_pixel(tmp_path):
    """One pyramid rule (bigseg.pyramid): an OME-Zarr or TIFF export's level k is the store's level 2**k -- the
    image's preview -- on noise, odd sizes and strips that end mid-level; the truth's pyramid from the export's
    level 2 on, its store levels being 4 x 4 modes at first."""
    import dask.array as da
    import tifffile
    from PIL import Image

    from bigseg.ingest import ingest

    rng = np.random.default_rng(4)
    h, w = 1301, 2203
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    Image.fromarray(rng.integers(0, 3, (h, w), dtype=np.uint8)).save(tmp_path / "noise.truth.png")
    store = tmp_path / "noise.zarr"
    ingest(tmp_path / "noise.png", store, truth=tmp_path / "noise.truth.png", chunk=256)
    g = zarr.open_group(str(store), mode="r")
    assert sorted(g["preview"]) == ["x4", "x8"]
    assert run_cli("export-ome", store, "-o", tmp_path / "n.ome.zarr").returncode == 0
    ome = zarr.open_group(str(tmp_path / "n.ome.zarr"), mode="r")
    for k, f in ((2, 4), (3, 8)):
        assert (np.moveaxis(ome[str(k)][:], 0, -1) == g[f"preview/x{f}"][:]).all(), f
    assert (halve_mask(da.from_array(ome["labels/truth/0"][:], chunks=1024), 3).compute()
            == ome["labels/truth/1"][:]).all()
    assert run_cli("export-tiff", store, "-o", tmp_path / "n.tif", "--layer", "image").returncode == 0
    with tifffile.TiffFile(tmp_path / "n.tif") as tif:
        levels = tif.series[0].levels
        assert (levels[2].asarray() == g["preview/x4"][:]).all()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="affinity masks are Linux's")
def test_export_writer_threads_follow_the_cores_this_process_may_use():
    """Under taskset or a batch job's cgroup an export starts as many writers as cores it may run on, not as many
    as the machine has (os.cpu_count() ignores the mask)."""
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert writer_threads() == 1
    finally:
        os.sched_setaffinity(0, before)
    assert writer_threads() == max(1, min(MAX_WRITER_THREADS, len(before)))
    assert writer_threads(3) == 3  # asked for: as asked
