"""One window through a model, as adapt scores and ranks it: the softmax (with the views of ``--tta``, as
``bigseg infer --tta`` averages their logits) and its labels. Used by the held-back scoring and the object rule's
examples (:mod:`bigseg.train.adapt`) and by where to paint next (:mod:`bigseg.train.suggest`)."""

from __future__ import annotations

import numpy as np

from bigseg.infer.predictor import TTA_VIEWS, scaled_size


def predict(model, image: np.ndarray, tta: str = "none"):
    """Softmax (C, H, W) of one RGB uint8 window (padded to a multiple of 32 for the network); with ``tta`` the
    softmax of the mean logits of the window's views, as ``bigseg infer --tta`` computes them."""
    import torch

    h, w = image.shape[:2]
    ph, pw = -h % 32, -w % 32
    x = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)[None]
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    views = TTA_VIEWS[tta]
    total = None
    with torch.inference_mode():
        for axes, scale in views:
            dims = tuple(a + 1 for a in axes)
            xv = x.flip(dims) if dims else x
            if scale != 1.0:
                xv = torch.nn.functional.interpolate(xv, size=(scaled_size(h + ph, scale), scaled_size(w + pw, scale)),
                                                     mode="bilinear", align_corners=False)
            y = model(xv).float()
            if scale != 1.0:
                y = torch.nn.functional.interpolate(y, size=(h + ph, w + pw), mode="bilinear", align_corners=False)
            y = y.flip(dims) if dims else y
            total = y if total is None else total + y
        assert total is not None
        return torch.softmax(total / len(views), 1)[0, :, :h, :w]


def labels(model, image: np.ndarray, tta: str = "none") -> np.ndarray:
    """uint8 labels of one RGB window (:func:`predict`'s arg-max)."""
    return predict(model, image, tta).argmax(0).numpy().astype(np.uint8)
