"""Weights trained elsewhere: the original air-void trainer's DeepLabV3 state dict, imported and run by bigseg."""

import numpy as np
import pytest
import torch
import zarr
from PIL import Image

from bigseg import checkpoint
from bigseg.errors import BigsegError
from bigseg.ingest import ingest
from bigseg.synth import SynthParams, render_region
from bigseg.weights_import import import_weights
from tests.helpers import error_line, run_cli

MEAN, STD = 0.35, 0.18  # the original trainer's Normalize, on every channel


def _as_the_trainer_feeds(rgb: np.ndarray) -> torch.Tensor:
    """OpenCV's BGR crop, scaled to [0, 1] and normalised as the original trainer does."""
    bgr = rgb[..., ::-1].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray((bgr - MEAN) / STD)).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def trainer_weights(tmp_path_factory):
    """A model built exactly as the original trainer builds it, trained a few steps on a synthetic slab (so that
    its predictions are not constant), saved as that trainer saves it: torch.save(net.state_dict(), "N.pth")."""
    from torchvision.models.segmentation import deeplabv3_resnet50

    d = tmp_path_factory.mktemp("trainer")
    torch.manual_seed(0)
    net = deeplabv3_resnet50(weights=None, weights_backbone=None)  # (their script takes ImageNet's backbone)
    net.classifier[4] = torch.nn.Conv2d(256, 3, 1)
    rgb, truth = render_region(SynthParams(1024, 1024, seed=8, pixel_size_um=20), 0, 0, 1024, 1024)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    probe = _as_the_trainer_feeds(rgb[:256, :256])
    for step in range(1, 61):  # until it predicts more than one class: how many steps that takes varies by platform
        net.train()
        ys, xs = rng.integers(0, 1024 - 96, 2), rng.integers(0, 1024 - 96, 2)
        x = torch.cat([_as_the_trainer_feeds(rgb[y : y + 96, c : c + 96]) for y, c in zip(ys, xs, strict=True)])
        t = torch.from_numpy(np.stack([truth[y : y + 96, c : c + 96] for y, c in zip(ys, xs, strict=True)])).long()
        loss = torch.nn.functional.cross_entropy(net(x)["out"], t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 12 and step % 6 == 0:
            net.eval()
            with torch.inference_mode():
                if len(net(probe)["out"].argmax(1).unique()) > 1:
                    break
    net.eval()
    torch.save(net.state_dict(), d / "600.pth")
    image = d / "test.png"
    Image.fromarray(rgb[:512, :512]).save(image)
    return d / "600.pth", image, net


def test_original_trainer_weights_run_in_bigseg_as_in_the_trainer(tmp_path, trainer_weights):
    pth, image, net = trainer_weights
    proc = run_cli("import", "weights", pth, "-o", tmp_path / "airvoid.pt", "--mean", "0.35", "--std", "0.18",
                   "--bgr")
    assert proc.returncode == 0, proc.stderr
    assert "deeplabv3_resnet50, 3 classes (paste, stone, void)" in proc.stdout and "BGR" in proc.stdout
    meta = checkpoint.read(tmp_path / "airvoid.pt")["meta"]
    assert meta["arch_kwargs"] == {"bgr": True, "mean": [0.35], "std": [0.18]}

    rgb = np.asarray(Image.open(image).convert("RGB"))
    with torch.inference_mode():
        theirs = net(_as_the_trainer_feeds(rgb))["out"].argmax(1)[0].numpy()
    assert len(np.unique(theirs)) > 1, "the trained model predicts one class only"
    store = tmp_path / "test.zarr"
    ingest(image, store)
    proc = run_cli("infer", store, "--model", tmp_path / "airvoid.pt", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    ours = zarr.open_group(str(store), mode="r")["labels"][:]
    assert (ours == theirs).mean() >= 0.999

    from bigseg.export import export

    export(tmp_path / "airvoid.pt", tmp_path / "airvoid.onnx", exporter="legacy", echo=lambda *a: None)
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "airvoid.onnx"), providers=["CPUExecutionProvider"])
    x = (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]  # bigseg's input: RGB in [0, 1]
    onnx_labels = session.run(None, {"image": np.ascontiguousarray(x)})[0].argmax(1)[0]
    assert (onnx_labels == theirs).mean() >= 0.999


def test_wrapped_state_dicts_aux_heads_and_other_architectures(tmp_path):
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(1)
    net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5)
    wrapped = {"epoch": 3, "model": {f"module.{k}": v for k, v in net.state_dict().items()},
               "optimizer_lr": torch.tensor(0.1)}
    torch.save(wrapped, tmp_path / "ckpt.pth")
    (tmp_path / "classes.txt").write_text("\n".join(f"{k} {k} {k} c{k}" for k in range(5)))
    r = import_weights(tmp_path / "ckpt.pth", tmp_path / "l.pt", classes=str(tmp_path / "classes.txt"),
                       echo=lambda *a: None)
    assert r["arch"] == "lraspp_mobilenet_v3_large" and r["classes"] == [f"c{k}" for k in range(5)]
    model, _ = checkpoint.load(tmp_path / "l.pt")
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        norm = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
            [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        assert torch.allclose(model(x), net.eval()(norm)["out"], atol=1e-5)

    from torchvision.models.segmentation import fcn_resnet50

    fcn = fcn_resnet50(weights=None, weights_backbone=None, num_classes=3, aux_loss=True)
    torch.save(fcn.state_dict(), tmp_path / "fcn.pth")
    r = import_weights(tmp_path / "fcn.pth", tmp_path / "fcn.pt", echo=lambda *a: None)
    assert r["arch"] == "fcn_resnet50" and r["aux_dropped"] > 0


def test_bad_and_foreign_files_get_one_line(tmp_path, trainer_weights):
    pth = trainer_weights[0]
    whole = tmp_path / "whole.pth"
    torch.save(torch.nn.Conv2d(3, 3, 1), whole)  # torch.save(net): a pickled model, not a state dict
    assert "save net.state_dict() instead" in error_line(run_cli("import", "weights", whole, "-o", tmp_path / "w.pt"))
    torch.save({"a.weight": torch.zeros(2, 2)}, tmp_path / "odd.pth")
    assert "no torchvision segmentation classifier" in error_line(
        run_cli("import", "weights", tmp_path / "odd.pth", "-o", tmp_path / "o.pt"))
    (tmp_path / "t.pth").write_text("not weights")
    assert "not a PyTorch file" in error_line(run_cli("import", "weights", tmp_path / "t.pth", "-o", tmp_path / "o.pt"))
    assert "one number or three" in error_line(
        run_cli("import", "weights", pth, "-o", tmp_path / "o.pt", "--mean", "0.1,0.2"))
    assert "is the weights file" in error_line(run_cli("import", "weights", pth, "-o", pth))
    # a plain state dict given straight to infer: the error says how to import it
    assert "bigseg import weights" in error_line(run_cli("infer", trainer_weights[1], "--model", pth,
                                                         "--workers", "0"))
    with pytest.raises(BigsegError, match="classifier has 3 classes but the class table names 2"):
        (tmp_path / "two.txt").write_text("0 0 0 a\n1 1 1 b\n")
        import_weights(pth, tmp_path / "x.pt", classes=str(tmp_path / "two.txt"), echo=lambda *a: None)
    assert not (tmp_path / "o.pt").exists() and not (tmp_path / "x.pt").exists()


def test_fine_tuning_an_imported_model_keeps_its_input_convention(tmp_path, trainer_weights):
    import yaml

    from bigseg.train.config import load_config
    from bigseg.train.loop import train

    import_weights(trainer_weights[0], tmp_path / "m.pt", mean=[0.35], std=[0.18], bgr=True, echo=lambda *a: None)
    rgb, truth = render_region(SynthParams(256, 256, seed=3), 0, 0, 256, 256)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(truth).save(tmp_path / "a.truth.png")
    ingest(tmp_path / "a.png", tmp_path / "a.zarr", truth=tmp_path / "a.truth.png")
    cfg = {"train": [str(tmp_path / "a.zarr")], "model": {"arch": "deeplabv3_resnet50", "init": str(tmp_path / "m.pt")},
           "crop": 64, "batch_size": 2, "iterations": 1, "num_workers": 0, "device": "cpu",
           "out": str(tmp_path / "ft")}
    (tmp_path / "ft.yaml").write_text(yaml.safe_dump(cfg))
    train(load_config(tmp_path / "ft.yaml"), progress=False, echo=lambda *a: None)
    assert checkpoint.read(tmp_path / "ft" / "model.pt")["meta"]["arch_kwargs"] == {
        "bgr": True, "mean": [0.35], "std": [0.18]}
