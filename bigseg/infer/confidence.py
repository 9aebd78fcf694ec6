"""How sure the model was: measured in the same pass that writes the labels, chunk by chunk.

For every pixel the blended logits give class probabilities p = softmax(sum of weighted logits / sum of
weights); its **confidence** is the largest of them. Each label chunk records (in its completion marker):
the sum of confidences, the number of **uncertain** pixels (confidence below :data:`UNCERTAIN_BELOW`), and the
soft class counts (sums of p) beside the hard ones (arg-max counts). The ``confidence`` array holds the mean
confidence of every ``f`` x ``f`` block (f = 16, or the largest power of two dividing the chunk), as
round(255 x mean), for the quicklook's confidence layer; it has its own dimensions (``conf_y``, ``conf_x``).

At the end of a run :func:`summarize` sums the chunks into ``labels.attrs["confidence"]``: mean confidence,
uncertain fraction, and for concrete tables the air content from hard and from soft counts (a large gap means
many pixels are torn between void and another class). ``bigseg report`` compares the uncertain fraction with the
range the model showed on its own validation styles (``confidence_reference`` in the checkpoint, written by
``bigseg calibrate``) and warns when it is outside.
"""

from __future__ import annotations

import math

import numpy as np

from bigseg import store as st
from bigseg.classes import concrete_ids

UNCERTAIN_BELOW = 0.9
BLOCK = 16


def factor(chunks: tuple[int, int]) -> int:
    """Pixels per confidence pixel: 16, or the largest power of two dividing both chunk sides (so that each label
    chunk writes exactly one chunk of the confidence array)."""
    return math.gcd(BLOCK, int(chunks[0]), int(chunks[1]))


def create_array(group, shape: tuple[int, int], chunks: tuple[int, int]):
    f = factor(chunks)
    h, w = (-(-shape[0] // f), -(-shape[1] // f))
    return st.create_array(group, "confidence", (h, w), (chunks[0] // f, chunks[1] // f), ("conf_y", "conf_x"),
                           attrs={"factor": f, "encoding": "round(255 * mean over f x f px of max class probability)",
                                  "uncertain_below": UNCERTAIN_BELOW})


def softmax(acc: np.ndarray, wsum: np.ndarray) -> np.ndarray:
    """Class probabilities (C, h, w) float32 from weighted logit sums and the sum of weights."""
    z = acc / wsum
    z -= z.max(axis=0, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=0, keepdims=True)
    return z


def block_mean(values: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks (edge blocks over the pixels they have)."""
    h, w = values.shape
    hb, wb = -(-h // f), -(-w // f)
    padded = np.zeros((hb * f, wb * f), np.float64)
    padded[:h, :w] = values
    counts = np.zeros((hb * f, wb * f), np.float64)
    counts[:h, :w] = 1
    s = padded.reshape(hb, f, wb, f).sum(axis=(1, 3))
    n = counts.reshape(hb, f, wb, f).sum(axis=(1, 3))
    return s / n


def hard_counts(labels: np.ndarray, n: int) -> list[int]:
    """Pixels of each of the ``n`` classes in ``labels``."""
    return [int(v) for v in np.bincount(labels.ravel(), minlength=n)[:n]]


def measure(prob: np.ndarray, labels: np.ndarray, f: int) -> tuple[np.ndarray, dict]:
    """(confidence map uint8, the chunk's measurements) from its probabilities and labels."""
    top = prob.max(axis=0)
    n = prob.shape[0]
    stats = {
        "pixels": int(top.size),
        "sum_confidence": float(top.sum(dtype=np.float64)),
        "uncertain": int((top < UNCERTAIN_BELOW).sum()),
        "soft_counts": [float(v) for v in prob.sum(axis=(1, 2), dtype=np.float64)],
        "hard_counts": hard_counts(labels, n),
    }
    return np.rint(255 * block_mean(top, f)).astype(np.uint8), stats


def summarize(chunks: list[dict], group) -> dict | None:
    """The whole image's confidence figures from the chunks' measurements (None when the chunks have none)."""
    if not chunks or any("sum_confidence" not in c for c in chunks):
        return None  # chunks resumed from a run of an older bigseg have no measurements
    pixels = sum(c["pixels"] for c in chunks)
    soft = np.sum([c["soft_counts"] for c in chunks], axis=0)
    hard = np.sum([c["hard_counts"] for c in chunks], axis=0)
    out = {
        "mean_confidence": sum(c["sum_confidence"] for c in chunks) / pixels,
        "uncertain_fraction": sum(c["uncertain"] for c in chunks) / pixels,
        "uncertain_below": UNCERTAIN_BELOW,
        "soft_fractions": [float(v) for v in soft / pixels],
        "hard_fractions": [float(v) for v in hard / pixels],
    }
    ids = concrete_ids(st.class_table(group))
    if ids:
        void = ids["void"]
        out["air_content_hard"] = float(hard[void] / pixels)
        out["air_content_soft"] = float(soft[void] / pixels)
    return out
