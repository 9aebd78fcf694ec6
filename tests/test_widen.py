"""A wider light U-Net made from the bundled one (bigseg.train.widen): the same answers, more channels; and
``bigseg train`` with model.init narrower than model.width widens it."""

import pytest
import torch
import yaml

from bigseg import checkpoint
from bigseg.checkpoint import BUNDLED
from bigseg.errors import BigsegError
from bigseg.models import build
from bigseg.synth import SynthParams
from bigseg.synth.slab import renderer
from bigseg.train.config import load_config
from bigseg.train.loop import train
from bigseg.train.widen import widen_light_unet


def _crop(seed: int = 5, size: int = 192) -> torch.Tensor:
    rgb, _ = renderer(SynthParams(size, size, seed=seed))(0, 0, size, size, True)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


def _bundled():
    model, _ = checkpoint.load(BUNDLED)
    model.set_logit_offset(None)
    return model.eval()


@pytest.mark.parametrize("width", [24, 40])
def test_a_widened_bundled_model_gives_the_same_logits(width):
    base = _bundled()
    wide = build("light_unet", 3, width=width)
    wide.load_state_dict(widen_light_unet(base.state_dict(), 16, width))
    wide.eval()
    assert sum(p.numel() for p in wide.parameters()) > 2 * sum(p.numel() for p in base.parameters())
    x = _crop()
    with torch.no_grad():
        a, b = base(x), wide(x)
    assert float((a - b).abs().max()) < 1e-4 * float(a.abs().max())


def test_widening_noise_breaks_the_copies_and_keeps_the_labels():
    base = _bundled()
    state = widen_light_unet(base.state_dict(), 16, 32, noise=0.01, seed=3)
    w = state["net.down.1.1.0.weight"]  # 128 channels out of 64: channel 64 copies channel 0
    assert not torch.equal(w[64], w[0])
    wide = build("light_unet", 3, width=32)
    wide.load_state_dict(state)
    x = _crop(seed=6)
    with torch.no_grad():
        same = (base(x).argmax(1) == wide.eval()(x).argmax(1)).float().mean()
    assert float(same) > 0.99
    with pytest.raises(ValueError, match="narrower"):
        widen_light_unet(base.state_dict(), 16, 8)


def test_train_widens_a_narrower_init_and_refuses_a_wider_init(tmp_path):
    torch.set_num_threads(1)
    base = {"synthetic": {"styles": {"random": 1}, "region": 256, "crops_per_region": 4},
            "crop": 96, "batch_size": 2, "iterations": 1, "optimizer": {"name": "adamw", "lr": 1e-6},
            "val_crops": 1, "val_every": 1000, "num_workers": 0, "seed": 4}
    said = []
    cfg = dict(base, model={"arch": "light_unet", "width": 24, "init": str(BUNDLED)}, out=str(tmp_path / "wide"))
    (tmp_path / "wide.yaml").write_text(yaml.safe_dump(cfg))
    train(load_config(tmp_path / "wide.yaml"), progress=False, echo=said.append)
    assert any("widened from width 16 to 24" in line for line in said), said
    model, meta = checkpoint.load(tmp_path / "wide" / "model.pt")
    assert meta["arch_kwargs"]["width"] == 24
    model.set_logit_offset(None)
    x = _crop(seed=8)
    with torch.no_grad():
        same = (model.eval()(x).argmax(1) == _bundled()(x).argmax(1)).float().mean()
    assert float(same) > 0.98  # one step at 1e-6 from the widened bundled model: its labels
    cfg = dict(base, model={"arch": "light_unet", "width": 8, "init": str(BUNDLED)}, out=str(tmp_path / "narrow"))
    (tmp_path / "narrow.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(BigsegError, match="model.init .* checkpoint, but the config builds"):
        train(load_config(tmp_path / "narrow.yaml"), progress=False, echo=lambda *a: None)
    assert not (tmp_path / "narrow").exists()
