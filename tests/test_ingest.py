import shutil

import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr
from PIL import Image

from bigseg.errors import BigsegError
from bigseg.ingest import ingest
from bigseg.store import open_dataset
from tests.conftest import error_line, run_cli


def _pil(path):
    return np.asarray(Image.open(path))


@pytest.mark.parametrize("fmt", ["png", "jpg", "tif"])
def test_pixel_exact_against_pillow(tmp_path, slab_png, fmt):
    src = tmp_path / f"slab.{fmt}"
    Image.open(slab_png).save(src, **({"quality": 90} if fmt == "jpg" else {}))
    out = tmp_path / "s.zarr"
    s = ingest(src, out, truth=slab_png.with_name("slab.truth.png"), chunk=256)
    assert (s["width"], s["height"]) == (700, 1300)
    g = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(g["image"][:], _pil(src)[..., :3])
    np.testing.assert_array_equal(g["truth"][:], _pil(slab_png.with_name("slab.truth.png")))
    assert g["image"].chunks == (256, 256, 3)


def test_xarray_view(tmp_path, slab_png):
    ingest(slab_png, tmp_path / "s.zarr", truth=slab_png.with_name("slab.truth.png"))
    ds = xr.open_zarr(tmp_path / "s.zarr")
    assert ds["image"].dims == ("y", "x", "band")
    assert ds["truth"].dims == ("y", "x")
    assert ds["image"].shape == (1300, 700, 3)
    assert [c["name"] for c in ds.attrs["classes"]] == ["paste", "stone", "void"]
    assert ds.attrs["pixel_size_um"] == pytest.approx(10.0, rel=1e-3)  # from the PNG's pHYs chunk
    window = ds["image"].isel(y=slice(100, 200), x=slice(50, 90)).values
    np.testing.assert_array_equal(window, _pil(slab_png)[100:200, 50:90])
    assert open_dataset(tmp_path / "s.zarr")["truth"].attrs["complete"] is True


def test_preview_pyramid_is_block_mean(tmp_path, slab_png):
    ingest(slab_png, tmp_path / "s.zarr")
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    x4 = g["preview/x4"][:]
    img = _pil(slab_png).astype(np.float64)
    assert x4.shape == (325, 175, 3)
    expect = img[:1300, :700].reshape(325, 4, 175, 4, 3).mean(axis=(1, 3))
    assert np.abs(x4 - expect).max() <= 0.5 + 1e-6


def test_input_modes(tmp_path, slab_png):
    rgb = _pil(slab_png)[:300, :400]
    # RGBA: alpha dropped
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    ingest(tmp_path / "rgba.png", tmp_path / "rgba.zarr")
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "rgba.zarr"))["image"][:], rgb)
    # greyscale: three identical bands
    grey = rgb[..., 1].copy()
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    ingest(tmp_path / "grey.png", tmp_path / "grey.zarr")
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "grey.zarr"))["image"][:], np.dstack([grey] * 3))
    # 16-bit RGB TIFF: high byte kept
    rgb16 = (rgb.astype(np.uint16) * 257 + np.arange(400, dtype=np.uint16)[None, :, None] % 200).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, photometric="rgb")
    ingest(tmp_path / "rgb16.tif", tmp_path / "rgb16.zarr")
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "rgb16.zarr"))["image"][:], rgb16 >> 8)
    # palette image: expanded to its colours
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "pal.png")
    ingest(tmp_path / "pal.png", tmp_path / "pal.zarr")
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "pal.zarr"))["image"][:],
                                  np.asarray(pal.convert("RGB")))


def _labels(h=300, w=400):
    y, x = np.mgrid[:h, :w]
    return ((x // 50 + y // 70) % 3).astype(np.uint8)


def test_truth_encodings(tmp_path, slab_png):
    Image.fromarray(_pil(slab_png)[:300, :400]).save(tmp_path / "img.png")
    lab = _labels()
    # indexed PNG whose palette order is not the class table's colours
    p = Image.fromarray(lab, "P")
    p.putpalette([9, 9, 9, 200, 10, 10, 10, 10, 200])
    p.save(tmp_path / "pal.png")
    # RGB with the class table colours
    colours = np.array([[160, 160, 160], [230, 140, 40], [30, 90, 230]], np.uint8)
    Image.fromarray(colours[lab]).save(tmp_path / "rgb.png")
    # 1-bit
    Image.fromarray((lab == 1).astype(np.uint8) * 255).convert("1").save(tmp_path / "bit.png")
    # grey with an unlabelled region
    grey = lab.copy()
    grey[:10] = 255
    Image.fromarray(grey).save(tmp_path / "grey.png")
    for name, expect in [("pal", lab), ("rgb", lab), ("bit", (lab == 1).astype(np.uint8)), ("grey", grey)]:
        ingest(tmp_path / "img.png", tmp_path / f"{name}.zarr", truth=tmp_path / f"{name}.png", chunk=128)
        got = zarr.open_group(str(tmp_path / f"{name}.zarr"))["truth"][:]
        np.testing.assert_array_equal(got, expect, err_msg=name)


def test_bad_truth(tmp_path, slab_png):
    Image.fromarray(_pil(slab_png)[:300, :400]).save(tmp_path / "img.png")
    Image.fromarray(_labels(200, 400)).save(tmp_path / "small.png")
    with pytest.raises(BigsegError, match="400x200 but the image is 400x300"):
        ingest(tmp_path / "img.png", tmp_path / "a.zarr", truth=tmp_path / "small.png")
    bad = _labels()
    bad[123, 45] = 7
    Image.fromarray(bad).save(tmp_path / "seven.png")
    with pytest.raises(BigsegError, match="label 7 at x=45, y=123 is outside the class table"):
        ingest(tmp_path / "img.png", tmp_path / "b.zarr", truth=tmp_path / "seven.png")
    odd = np.empty((300, 400, 3), np.uint8)
    odd[:] = (160, 160, 160)  # the paste colour everywhere but one pixel
    odd[5, 6] = (1, 2, 3)
    Image.fromarray(odd).save(tmp_path / "odd.png")
    with pytest.raises(BigsegError, match=r"colour \(1, 2, 3\) at x=6, y=5"):
        ingest(tmp_path / "img.png", tmp_path / "c.zarr", truth=tmp_path / "odd.png")
    assert not any(p.name.endswith(".zarr") or "partial" in p.name for p in tmp_path.iterdir())


def _corrupt_files(tmp_path, slab_png):
    Image.open(slab_png).save(tmp_path / "good.jpg", quality=90)
    tifffile.imwrite(tmp_path / "good.tif", _pil(slab_png), tile=(256, 256), compression="zlib", photometric="rgb")
    files = {
        "missing.png": None,
        "empty.jpg": b"",
        "text.jpg": b"this is not a jpeg\n",
        "trunc.jpg": (tmp_path / "good.jpg").read_bytes()[:20000],
        "trunc.png": slab_png.read_bytes()[: len(slab_png.read_bytes()) // 2],
        "trunc.tif": (tmp_path / "good.tif").read_bytes()[:300000],
        "garbage.tif": b"II*\x00" + bytes(range(256)) * 8,
    }
    for name, data in files.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    return list(files)


def test_bad_images_one_line_and_nothing_left(tmp_path, slab_png):
    expected = {"missing.png": "no such file", "empty.jpg": "empty file", "text.jpg": "not a readable image",
                "trunc.jpg": "premature end", "trunc.png": "", "trunc.tif": "truncated TIFF",
                "garbage.tif": ""}
    for name in _corrupt_files(tmp_path, slab_png):
        proc = run_cli("ingest", tmp_path / name, tmp_path / "out.zarr")
        line = error_line(proc)
        assert name in line and expected[name].lower() in line.lower(), line
        assert not (tmp_path / "out.zarr").exists()
        assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_existing_store_needs_overwrite_and_survives_failures(tmp_path, slab_png):
    out = tmp_path / "s.zarr"
    assert run_cli("ingest", slab_png, out).returncode == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    line = error_line(run_cli("ingest", slab_png, out))
    assert "exists" in line and "--overwrite" in line
    # a failing overwrite leaves the old store intact
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nrubbish")
    error_line(run_cli("ingest", tmp_path / "bad.png", out, "--overwrite"))
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert open_dataset(out)["image"].shape == (1300, 700, 3)
    # a good overwrite replaces it
    Image.fromarray(_pil(slab_png)[:100, :100]).save(tmp_path / "small.png")
    assert run_cli("ingest", tmp_path / "small.png", out, "--overwrite").returncode == 0
    assert open_dataset(out)["image"].shape == (100, 100, 3)


def test_unwritable_destination(tmp_path, slab_png):
    line = error_line(run_cli("ingest", slab_png, tmp_path / "no" / "such" / "dir.zarr"))
    assert "does not exist" in line


def test_pixel_size_option_and_placeholder_resolution(tmp_path, slab_png):
    Image.open(slab_png).save(tmp_path / "cam.jpg", dpi=(72, 72))
    s = ingest(tmp_path / "cam.jpg", tmp_path / "a.zarr")
    assert s["pixel_size_um"] is None  # 72 dpi is a camera placeholder, not a scan resolution
    s = ingest(tmp_path / "cam.jpg", tmp_path / "b.zarr", pixel_size=4.2)
    assert s["pixel_size_um"] == 4.2
    shutil.rmtree(tmp_path / "a.zarr")
