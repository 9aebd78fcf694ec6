"""Random training crops read straight from zarr slab stores (only the chunks a crop touches).

Sample ``i`` is a pure function of (seed, i): its store, position, flips and jitter come from an RNG seeded
with both. Any number of loader processes, and a resumed run, therefore see exactly the same crops.
With ``rare_class`` set, that share of crops is centred in a chunk containing the class (chosen in proportion
to its pixel count there), so that rare classes such as air voids are seen often enough.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import zarr

from bigseg import store as st
from bigseg.classes import IGNORE_LABEL
from bigseg.errors import BigsegError
from bigseg.train.augment import augment, resize_crop


def _open(path: str):
    group = st.open_store(path)
    if "truth" not in group or not st.is_complete(group["truth"]):
        raise BigsegError(f"{path}: no complete truth mask to train on; ingest it with --truth or use 'bigseg import'")
    return group


def class_counts(stores: list[str], n_classes: int) -> np.ndarray:
    """Truth pixels per class over ``stores``, read chunk by chunk (the ignore label and ids beyond
    ``n_classes`` are not counted)."""
    counts = np.zeros(n_classes, np.int64)
    for p in stores:
        truth = _open(p)["truth"]
        cy, cx = truth.chunks
        for y in range(0, truth.shape[0], cy):
            for x in range(0, truth.shape[1], cx):
                counts += np.bincount(truth[y : y + cy, x : x + cx].ravel(), minlength=256)[:n_classes]
    return counts


def balanced_weights(counts: np.ndarray) -> list[float]:
    """Median-frequency balancing (Eigen & Fergus 2015, SegNet's CamVid weights): class c weighs
    median(frequency) / frequency(c) over the classes present; a class absent from the truth weighs 0."""
    freq = counts / max(int(counts.sum()), 1)
    present = freq > 0
    if not present.any():
        raise BigsegError("class_weights: auto found no labelled pixel in the training stores' truth")
    med = float(np.median(freq[present]))
    return [round(med / f, 4) if f > 0 else 0.0 for f in freq]


class CropDataset(torch.utils.data.Dataset):
    def __init__(self, stores: list[str], crop: int, augment=None, seed: int = 0, rare_class=None,
                 n_classes: int = 3):
        self.stores = list(stores)
        self.crop = crop
        self.augment = augment
        self.seed = seed
        self.rare = rare_class
        shapes = []
        for p in self.stores:
            g = _open(p)
            shapes.append(g["image"].shape[:2])
        self.shapes = shapes
        areas = np.array([h * w for h, w in shapes], np.float64)
        self.store_p = areas / areas.sum()
        self.rare_chunks = self._rare_chunks(n_classes) if rare_class is not None else None
        self._arrays: dict[tuple[int, str], Any] = {}

    def _rare_chunks(self, n_classes):
        """Per store: chunk origins holding the rare class, with its pixel counts (read chunk by chunk)."""
        out = []
        cid = self.rare.class_id
        for p in self.stores:
            truth = zarr.open_array(f"{p}/truth", mode="r")
            cy, cx = truth.chunks
            origins, counts = [], []
            for y in range(0, truth.shape[0], cy):
                for x in range(0, truth.shape[1], cx):
                    k = int((truth[y : y + cy, x : x + cx] == cid).sum())
                    if k:
                        origins.append((y, x, min(cy, truth.shape[0] - y), min(cx, truth.shape[1] - x)))
                        counts.append(k)
            out.append((origins, np.array(counts, np.float64)))
        return out

    def __len__(self):
        return 1 << 62  # indexed by global sample number; the sampler decides which

    def _arr(self, s: int, name: str):
        key = (s, name)
        if key not in self._arrays:  # opened lazily, once per loader process
            self._arrays[key] = zarr.open_array(f"{self.stores[s]}/{name}", mode="r")
        return self._arrays[key]

    def position(self, rng, s: int, size: int):
        h, w = self.shapes[s]
        if self.rare_chunks is not None and rng.random() < self.rare.fraction:
            origins, counts = self.rare_chunks[s]
            if len(origins):
                y0, x0, ch, cw = origins[rng.choice(len(origins), p=counts / counts.sum())]
                cy, cx = y0 + rng.integers(0, ch), x0 + rng.integers(0, cw)
                return (int(np.clip(cy - size // 2, 0, max(h - size, 0))),
                        int(np.clip(cx - size // 2, 0, max(w - size, 0))))
        return int(rng.integers(0, max(h - size, 0) + 1)), int(rng.integers(0, max(w - size, 0) + 1))

    def read(self, s: int, y: int, x: int, size: int):
        """Image (size, size, 3) and truth (size, size), padded (0 / ignore) where the store is smaller."""
        img = self._arr(s, "image")[y : y + size, x : x + size]
        tru = self._arr(s, "truth")[y : y + size, x : x + size]
        if img.shape[:2] != (size, size):
            ph, pw = size - img.shape[0], size - img.shape[1]
            img = np.pad(img, [(0, ph), (0, pw), (0, 0)])
            tru = np.pad(tru, [(0, ph), (0, pw)], constant_values=IGNORE_LABEL)
        return img, tru

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, int(i)])
        s = int(rng.choice(len(self.stores), p=self.store_p))
        a = self.augment
        scale = float(rng.uniform(*a.scale)) if a is not None and a.scale else 1.0
        size = max(8, int(round(self.crop / scale)))
        y, x = self.position(rng, s, size)
        img, tru = self.read(s, y, x, size)
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
        truth = torch.from_numpy(tru.astype(np.int64))
        if size != self.crop:
            image, truth = resize_crop(image, truth, self.crop)
        if a is not None:
            image, truth = augment(image, truth, rng, a)
        return image.contiguous(), truth.contiguous()


class IndexRange(torch.utils.data.Sampler):
    """Global sample numbers start..stop-1, in order."""

    def __init__(self, start: int, stop: int):
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self):
        return self.stop - self.start
