"""Label pyramids: each level pixel is the most frequent class of its block (checked against a plain count per
block), and the pyramid infer writes is the one built from its labels."""

import numpy as np
import pytest

from bigseg.pyramid import majority


def _reference(block: np.ndarray, f: int, n: int) -> np.ndarray:
    h, w = block.shape
    padded = np.pad(block, [(0, -h % f), (0, -w % f)], mode="edge")
    out = np.empty((padded.shape[0] // f, padded.shape[1] // f), np.uint8)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            cell = padded[i * f : (i + 1) * f, j * f : (j + 1) * f].ravel()
            votes = np.bincount(cell[cell < n], minlength=n)[:n]
            out[i, j] = 255 if votes.max() == 0 else int(votes.argmax())  # argmax: ties to the lower id
    return out


@pytest.mark.parametrize("f", [2, 4, 16, 17])
def test_majority_is_the_mode_of_each_block(f):
    rng = np.random.default_rng(f)
    block = rng.integers(0, 3, (53, 71)).astype(np.uint8)
    block[:f, :f] = 255  # a block of unlabelled pixels only
    block[f : 2 * f, : 2 * f] = 7  # a value outside the table counts for no class
    block[-f:, -f:] = np.indices((f, f)).sum(axis=0) % 2  # a tie between 0 and 1 (even f), to the lower id
    assert np.array_equal(majority(block, f, 3), _reference(block, f, 3))


@pytest.mark.parametrize("workers", [0, 1])
def test_the_pyramid_infer_builds_during_the_run_is_the_labels_pyramid(tmp_path, workers):
    """Three strips of 1024 rows (chunks of 128), each written as soon as its chunk rows are, sharing the chunks
    of the coarser levels: the same levels as a pyramid built from the finished labels."""
    import zarr

    from bigseg import pyramid
    from bigseg.infer import InferOptions, infer
    from bigseg.ingest import ingest
    from bigseg.synth import SynthParams, synthesize

    s = synthesize(tmp_path / "tall.png", SynthParams(300, 2300, seed=4))
    store = tmp_path / "tall.zarr"
    ingest(s["image"], store, chunk=128)
    infer(store, options=InferOptions(window=256, overlap=64, workers=workers))
    g = zarr.open_group(str(store), mode="r")
    assert sorted(g["preview-labels"].array_keys()) == ["x4", "x8"]
    during = {k: g["preview-labels"][k][:] for k in ("x4", "x8")}
    assert all(g["preview-labels"][k].attrs["complete"] for k in during)
    pyramid.build(store, "labels", 3)
    for k, level in during.items():
        assert np.array_equal(level, g["preview-labels"][k][:]), k
    assert np.array_equal(during["x4"], majority(g["labels"][:], 4, 3))


def test_a_strip_reduced_block_by_block_is_the_strip_reduced_whole(tmp_path):
    """Column blocks (memory bounded by the block, not the image's width) give the levels of the whole strip,
    edges included: in memory, and through the store path infer and build use."""
    from bigseg import pyramid
    from tests.helpers import mask_store

    rng = np.random.default_rng(3)
    mask = rng.integers(0, 3, (70, 1001)).astype(np.uint8)
    mask[:, 500:560] = 255
    factors = [4, 8, 16]
    shape = {f: (-(-70 // f), -(-1001 // f)) for f in factors}
    whole = {f: np.zeros(shape[f], np.uint8) for f in factors}
    parts = {f: np.zeros(shape[f], np.uint8) for f in factors}
    pyramid.write_strip(whole, factors, 0, mask, 3)
    for x0 in range(0, 1001, 48):
        pyramid.write_strip(parts, factors, 0, mask[:, x0 : x0 + 48], 3, x0)
    assert all(np.array_equal(whole[f], parts[f]) for f in factors)
    store = mask_store(tmp_path / "m.zarr", mask, (32, 64), pixel_size=10.0)
    import zarr

    group = zarr.open_group(str(store), mode="r+")
    pyramid.create_levels(group, "preview-labels", 70, 1001, factors)
    pyramid.write_strip_of(store, "labels", "preview-labels", 0, 70, factors, 3, columns=100)  # 96-px blocks
    assert all(np.array_equal(group[f"preview-labels/x{f}"][:], whole[f]) for f in factors)


def test_a_chunk_that_is_not_a_power_of_two_keeps_every_level_right(tmp_path):
    """--chunk 1000 makes strips of 2000 rows; a 32x level does not divide them and would take rows from two
    strips (it did: wrong from its row 62 on), so the levels stop at 16x and each one is right."""
    from PIL import Image

    from bigseg.ingest import ingest
    from bigseg.pyramid import halve_mean

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (9000 // 50 + 1, 2, 3), dtype=np.uint8).repeat(50, 0)[:9000].repeat(32, 1)
    image = np.ascontiguousarray(image + rng.integers(0, 3, image.shape, dtype=np.uint8))
    Image.fromarray(image).save(tmp_path / "tall.png")
    ingest(tmp_path / "tall.png", tmp_path / "t.zarr", chunk=1000)
    import zarr

    g = zarr.open_group(str(tmp_path / "t.zarr"), mode="r")
    assert sorted(g["preview"], key=lambda n: int(n[1:])) == ["x4", "x8", "x16"]
    level = image
    for f in (2, 4, 8, 16):
        level = halve_mean(level)
        if f > 2:
            assert (g[f"preview/x{f}"][:] == level).all(), f


def test_halve_mean_rounds_half_up_and_pairs_an_odd_edge_with_itself():
    from bigseg.pyramid import halve_mean

    block = np.array([[0, 1, 7], [1, 0, 9], [250, 255, 3]], np.uint8)[..., None]
    assert halve_mean(block)[..., 0].tolist() == [[1, 8], [253, 3]]  # (2 -> 0.5 -> 1), (7,9,7,9 -> 8), ...
