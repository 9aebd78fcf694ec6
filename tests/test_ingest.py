import shutil

import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr
from PIL import Image

from bigseg.errors import BigsegError
from bigseg.ingest import ingest
from bigseg.pyramid import halve_mean
from bigseg.store import open_dataset
from tests.helpers import error_line, run_cli


def _pil(path):
    return np.asarray(Image.open(path))


@pytest.mark.parametrize("fmt", ["png", "jpg", "tif"])
def test_pixel_exact_against_pillow(tmp_path, slab_png, fmt):
    src = tmp_path / f"slab.{fmt}"
    Image.open(slab_png).save(src, **({"quality": 90} if fmt == "jpg" else {}))
    out = tmp_path / "s.zarr"
    s = ingest(src, out, truth=slab_png.with_name("slab.truth.png"), chunk=256)
    assert (s.width, s.height) == (700, 1300)
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
    assert np.abs(x4 - expect).max() <= 1.0  # 2 x 2 means of 2 x 2 means, each rounded half up
    assert np.abs(x4 - expect).mean() < 0.5
    pairs = (img[:1300, :700].reshape(650, 2, 350, 2, 3).sum(axis=(1, 3)) + 2) // 4
    assert (x4 == (pairs.reshape(325, 2, 175, 2, 3).sum(axis=(1, 3)) + 2) // 4).all()


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
    assert s.pixel_size_um is None  # 72 dpi is a camera placeholder, not a scan resolution
    s = ingest(tmp_path / "cam.jpg", tmp_path / "b.zarr", pixel_size=4.2)
    assert s.pixel_size_um == 4.2
    shutil.rmtree(tmp_path / "a.zarr")


@pytest.mark.parametrize("fmt", ["jpg", "tif"])
@pytest.mark.parametrize("orientation", [3, 6, 7, 8])
def test_orientation_tag_is_followed_as_viewers_do(tmp_path, fmt, orientation):
    """A phone photo (EXIF) or a TIFF with an orientation tag is stored as every viewer shows it (libvips'
    autorot as the reference), streamed strip by strip with chunks smaller than the picture; the truth mask is
    in the viewer's orientation; --no-autorotate keeps the file's order."""
    import pyvips

    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (300, 430, 3), dtype=np.uint8)
    img = pyvips.Image.new_from_array(pixels, interpretation="srgb").copy()
    img.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    src = tmp_path / f"photo.{fmt}"
    if fmt == "jpg":
        img.jpegsave(str(src), Q=100, subsample_mode="off")
    else:
        img.tiffsave(str(src), tile=True, tile_width=64, tile_height=64, compression="deflate")
    shown = pyvips.Image.new_from_file(str(src)).autorot().numpy()
    truth = tmp_path / "mask.png"
    Image.fromarray(np.arange(shown.shape[0] * shown.shape[1], dtype=np.uint32).reshape(shown.shape[:2]).__mod__(3)
                    .astype(np.uint8)).save(truth)
    s = ingest(src, tmp_path / "o.zarr", truth=truth, chunk=64)
    g = zarr.open_group(str(tmp_path / "o.zarr"), mode="r")
    np.testing.assert_array_equal(g["image"][:], shown)
    np.testing.assert_array_equal(g["truth"][:], _pil(truth))
    assert s.autorotated and g.attrs["source"]["orientation"] == orientation
    assert g["preview/x4"][:].shape[:2] == (-(-shown.shape[0] // 4), -(-shown.shape[1] // 4))
    np.testing.assert_array_equal(g["preview/x4"][0, 0], halve_mean(halve_mean(shown[:4, :4]))[0, 0])
    kept = ingest(src, tmp_path / "k.zarr", chunk=64, autorotate=False)
    assert not kept.autorotated
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "k.zarr"), mode="r")["image"][:],
                                  pyvips.Image.new_from_file(str(src)).numpy())
    if orientation in (6, 7, 8):  # a mask in the file's order does not fit the turned picture
        Image.fromarray(np.zeros((300, 430), np.uint8)).save(tmp_path / "file-order.png")
        with pytest.raises(BigsegError, match="as its orientation tag turns it"):
            ingest(src, tmp_path / "x.zarr", truth=tmp_path / "file-order.png")


def test_outputs_never_overwrite_inputs_and_concurrent_writers_are_refused(tmp_path, slab_png):
    img = tmp_path / "slab.png"
    shutil.copy(slab_png, img)
    before = img.read_bytes()
    for target, how in [(img, "is the image"), (tmp_path, "contains the image")]:
        line = error_line(run_cli("ingest", img, target, "--overwrite"))
        assert how in line, line
    assert img.read_bytes() == before
    from bigseg.store import output_lock

    out = tmp_path / "s.zarr"
    with output_lock(out), pytest.raises(BigsegError, match="another bigseg process"):
        ingest(img, out)
    assert not out.exists()
    (tmp_path / ".s.zarr.lock").write_text("999999999")  # a killed writer's lock is taken over
    ingest(img, out)
    assert out.exists() and not (tmp_path / ".s.zarr.lock").exists()
