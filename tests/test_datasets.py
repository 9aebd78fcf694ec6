"""Importers on small datasets written here in each layout (real PNG files, real stores)."""

import numpy as np
import zarr
from PIL import Image

from bigseg.datasets import import_camvid, import_gimp, import_pairs
from tests.helpers import error_line, run_cli

H, W = 90, 120


def _rgb(seed):
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _store(path):
    return zarr.open_group(str(path), mode="r")


def _gimp_dataset(root):
    """Two images; stone layers in 8-bit grey (one as grey+alpha), void layers in 1-bit; layers overlap."""
    (root / "Image").mkdir(parents=True)
    (root / "Semantic" / "1_stone").mkdir(parents=True)
    (root / "Semantic" / "2_void").mkdir(parents=True)
    expected = {}
    for k, name in enumerate(["a", "b"]):
        Image.fromarray(_rgb(k)).save(root / "Image" / f"{name}.png")
        stone = np.zeros((H, W), np.uint8)
        stone[10:50, 10:70] = 200
        stone[60:80, 10:40] = 40  # below 20 % of white: not stone
        stone[60:80, 50:70] = 60  # above: stone
        void = np.zeros((H, W), bool)
        void[30:40, 60:100] = True  # overlaps the stone: void wins (higher id)
        void[5:8, 100:110] = True
        if k == 0:
            Image.fromarray(stone, "L").save(root / "Semantic" / "1_stone" / f"{name}.png")
        else:  # grey + alpha: painted white, with the strength in alpha
            la = np.stack([np.full_like(stone, 255), stone], axis=2)
            Image.fromarray(la, "LA").save(root / "Semantic" / "1_stone" / f"{name}.png")
        Image.fromarray(void).convert("1").save(root / "Semantic" / "2_void" / f"{name}.png")
        truth = np.zeros((H, W), np.uint8)
        truth[stone > 51] = 1
        truth[void] = 2
        expected[name] = truth
    return expected


def test_gimp_layers(tmp_path):
    expected = _gimp_dataset(tmp_path / "gimp")
    r = import_gimp(tmp_path / "gimp", tmp_path / "out", echo=lambda *_: None)
    assert [c.name for c in r.classes] == ["paste", "stone", "void"]
    for k, name in enumerate(["a", "b"]):
        g = _store(tmp_path / "out" / f"{name}.zarr")
        np.testing.assert_array_equal(g["truth"][:], expected[name])
        np.testing.assert_array_equal(g["image"][:], _rgb(k))
    assert not list((tmp_path / "out").glob(".import-*"))  # temporary masks removed

    # the CLI: existing stores are refused before anything is written
    proc = run_cli("import", "gimp", tmp_path / "gimp", tmp_path / "out")
    assert "exists (2 of 2 stores do); pass --overwrite" in error_line(proc)
    proc = run_cli("import", "gimp", tmp_path / "gimp", tmp_path / "out", "--overwrite", "--threshold", "0.1")
    assert proc.returncode == 0, proc.stderr
    assert "2 stores (all 2); classes: 0 paste, 1 stone, 2 void" in proc.stdout
    assert (_store(tmp_path / "out" / "a.zarr")["truth"][60:80, 10:40] == 1).all()  # 40 > 10 % of white


def test_gimp_precedence_stone_as_the_original_trainer(tmp_path):
    """--precedence stone: where the stone and void layers overlap, stone wins (the original air-void trainer's
    loader); elsewhere the layers read as before."""
    expected = _gimp_dataset(tmp_path / "gimp")
    proc = run_cli("import", "gimp", tmp_path / "gimp", tmp_path / "out", "--precedence", "stone")
    assert proc.returncode == 0, proc.stderr
    stone = np.zeros((H, W), np.uint8)
    stone[10:50, 10:70] = 200
    stone[60:80, 50:70] = 60
    for name in ["a", "b"]:
        want = expected[name].copy()
        want[stone > 51] = 1
        np.testing.assert_array_equal(_store(tmp_path / "out" / f"{name}.zarr")["truth"][:], want)
        assert (want != expected[name]).sum() > 0  # the overlap changed hands
    assert "not a layer class" in error_line(run_cli("import", "gimp", tmp_path / "gimp", tmp_path / "o2",
                                                     "--precedence", "rock"))


def test_gimp_errors(tmp_path):
    _gimp_dataset(tmp_path / "g")
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(tmp_path / "g" / "Semantic" / "2_void" / "b.png")
    assert "mask is 120x91 but the image b.png is 120x90" in error_line(run_cli("import", "gimp", tmp_path / "g",
                                                                          tmp_path / "o"))
    (tmp_path / "g" / "Semantic" / "2_void" / "b.png").unlink()
    assert "no layer for image b.png" in error_line(run_cli("import", "gimp", tmp_path / "g", tmp_path / "o"))
    (tmp_path / "g" / "Semantic" / "2_void").rename(tmp_path / "g" / "Semantic" / "3_void")
    assert "no folder for class id 2" in error_line(run_cli("import", "gimp", tmp_path / "g", tmp_path / "o"))
    assert not list((tmp_path / "o").glob("*.zarr"))


def _index_png(path, values, palette=None):
    img = Image.fromarray(values.astype(np.uint8), "P" if palette is not None else "L")
    if palette is not None:
        img.putpalette(palette)
    img.save(path)


def test_camvid_segnet_layout(tmp_path):
    root = tmp_path / "CamVid"
    rng = np.random.default_rng(0)
    annots = {}
    for split, n in (("train", 2), ("val", 1), ("test", 1)):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for i in range(n):
            name = f"{split}_{i:03d}"
            Image.fromarray(_rgb(i)).save(root / split / f"{name}.png")
            a = rng.integers(0, 12, (H, W))  # SegNet's 12 classes, 11 = Unlabelled
            _index_png(root / f"{split}annot" / f"{name}.png", a)
            annots[(split, name)] = a
    r = import_camvid(root, tmp_path / "out", echo=lambda *_: None)
    assert r.split == {"train": 2, "val": 1, "test": 1}
    assert [c.name for c in r.classes][:4] == ["Sky", "Building", "Pole", "Road"] and len(r.classes) == 11
    for (split, name), a in annots.items():
        truth = _store(tmp_path / "out" / split / f"{name}.zarr")["truth"][:]
        np.testing.assert_array_equal(truth, np.where(a == 11, 255, a))

    # with a colour table (its own classes; "Void" in the middle is the ignore label)
    (root / "label_colors.txt").write_text("64 128 64\tAnimal\n192 0 128\tArchway\n0 0 0\tVoid\n0 128 192\tBicyclist\n")
    for (split, name), a in annots.items():
        _index_png(root / f"{split}annot" / f"{name}.png", a % 4)
    r = import_camvid(root, tmp_path / "out2", echo=lambda *_: None)
    assert [(c.name, c.color) for c in r.classes] == [("Animal", (64, 128, 64)), ("Archway", (192, 0, 128)),
                                                      ("Bicyclist", (0, 128, 192))]
    a = annots[("train", "train_000")] % 4
    truth = _store(tmp_path / "out2" / "train" / "train_000.zarr")["truth"][:]
    np.testing.assert_array_equal(truth, np.array([0, 1, 255, 2])[a])
    # an index beyond the table is an error naming it
    bad = a.copy()
    bad[3, 7] = 9
    _index_png(root / "trainannot" / "train_000.png", bad)
    msg = error_line(run_cli("import", "camvid", root, tmp_path / "out3"))
    assert "value 9 at x=7, y=3 is outside the class table (0..3)" in msg


def test_camvid_fastai_layout_with_colour_labels(tmp_path):
    root = tmp_path / "camvid"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "codes.txt").write_text("Animal\nArchway\nBicyclist\nVoid\n")
    (root / "valid.txt").write_text("0016E5_08159.png\n")
    rng = np.random.default_rng(1)
    ids = {}
    for k, stem in enumerate(["0001TP_006690", "0016E5_08159"]):
        Image.fromarray(_rgb(k)).save(root / "images" / f"{stem}.png")
        ids[stem] = rng.integers(0, 4, (H, W))
        palette = [64, 128, 64, 192, 0, 128, 0, 128, 192, 0, 0, 0]
        _index_png(root / "labels" / f"{stem}_P.png", ids[stem], palette)
    r = import_camvid(root, tmp_path / "out", echo=lambda *_: None)
    assert r.split == {"train": 1, "val": 1}
    assert [c.name for c in r.classes] == ["Animal", "Archway", "Bicyclist"]
    truth = _store(tmp_path / "out" / "val" / "0016E5_08159.zarr")["truth"][:]
    np.testing.assert_array_equal(truth, np.array([0, 1, 2, 255])[ids["0016E5_08159"]])


def test_pairs_grey_and_colour_masks(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 3, (H, W)).astype(np.uint8)
    Image.fromarray(_rgb(0)).save(tmp_path / "img" / "s1.jpg", quality=95)
    Image.fromarray(grey).save(tmp_path / "msk" / "s1_mask.png")
    r = import_pairs(tmp_path / "img", tmp_path / "msk", tmp_path / "out", pixel_size=4.5, echo=lambda *_: None)
    g = _store(tmp_path / "out" / "s1.zarr")
    np.testing.assert_array_equal(g["truth"][:], grey)
    assert g.attrs["pixel_size_um"] == 4.5 and [c.name for c in r.classes] == ["paste", "stone", "void"]

    # RGB masks in the colours of a table; "void" stays a class unless --void names it
    table = tmp_path / "colours.txt"
    table.write_text("# concrete, own colours\n10 10 10 paste\n200 100 0 stone\n0 0 255 void\n255 255 255 unknown\n")
    colours = np.array([[10, 10, 10], [200, 100, 0], [0, 0, 255], [255, 255, 255]], np.uint8)
    idx = rng.integers(0, 4, (H, W))
    Image.fromarray(colours[idx]).save(tmp_path / "msk" / "s1_mask.png")
    proc = run_cli("import", "pairs", tmp_path / "img", tmp_path / "msk", tmp_path / "out2", "--colours", table,
                   "--void", "unknown")
    assert proc.returncode == 0, proc.stderr
    assert "classes: 0 paste, 1 stone, 2 void" in proc.stdout
    np.testing.assert_array_equal(_store(tmp_path / "out2" / "s1.zarr")["truth"][:],
                                  np.array([0, 1, 2, 255])[idx])
    assert "--void air: no such class" in error_line(run_cli("import", "pairs", tmp_path / "img", tmp_path / "msk",
                                                             tmp_path / "out3", "--colours", table, "--void", "air"))
    # a colour outside the table
    bad = colours[idx]
    bad[5, 6] = (1, 2, 3)
    Image.fromarray(bad).save(tmp_path / "msk" / "s1_mask.png")
    msg = error_line(run_cli("import", "pairs", tmp_path / "img", tmp_path / "msk", tmp_path / "out4", "--colours",
                             table))
    assert "colour (1, 2, 3) at x=6, y=5 is not in the class table" in msg
    assert not (tmp_path / "out4" / "s1.zarr").exists()
    (tmp_path / "msk" / "s1_mask.png").unlink()
    assert "no mask for s1.jpg" in error_line(run_cli("import", "pairs", tmp_path / "img", tmp_path / "msk",
                                                      tmp_path / "out5"))


def test_imported_stores_train(tmp_path):
    """An imported dataset is a training set: a few steps of `bigseg train` on it run and checkpoint."""
    _gimp_dataset(tmp_path / "g")
    import_gimp(tmp_path / "g", tmp_path / "stores", echo=lambda *_: None)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"""
train: ["{tmp_path}/stores/*.zarr"]
model: {{arch: light_unet, width: 8}}
crop: 64
batch_size: 2
iterations: 3
checkpoint_every: 3
out: {tmp_path}/run
num_workers: 0
device: cpu
""")
    proc = run_cli("train", "--config", cfg)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run").is_dir() and list((tmp_path / "run").rglob("*.pt"))
