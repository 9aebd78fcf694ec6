"""Training on real zarr stores: loss decreases, stop + resume equals an uninterrupted run, configs validated."""

import numpy as np
import pytest
import torch
import yaml

from bigseg import checkpoint
from bigseg.classes import CONCRETE
from bigseg.errors import BigsegError
from bigseg.ingest import ingest
from bigseg.models import build
from bigseg.synth import SynthParams, synthesize
from bigseg.train.config import load_config
from bigseg.train.loop import _init_from, train
from tests.helpers import error_line, run_cli


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    out = []
    for k in range(2):
        s = synthesize(d / f"s{k}.png", SynthParams(320, 320, seed=40 + k, pixel_size_um=15))
        ingest(s["image"], d / f"s{k}.zarr", truth=s["truth"], chunk=128)
        out.append(str(d / f"s{k}.zarr"))
    return out


def _config(tmp_path, stores, name, **kw):
    cfg = {"train": stores[:1], "val": stores[1:], "model": {"arch": "light_unet", "width": 4}, "crop": 64,
           "batch_size": 4, "iterations": 6, "checkpoint_every": 2, "val_every": 3, "val_crops": 2,
           "num_workers": 0, "device": "cpu", "deterministic": True, "seed": 3, "out": str(tmp_path / name),
           "optimizer": {"name": "adamw", "lr": 0.01}, "rare_class": {"class_id": 2, "fraction": 0.5}}
    cfg.update(kw)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def _weights(path):
    return checkpoint.read(path)["state_dict"]


def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path, stores, record_property):
    record_property("reliability", ("fault", "training stopped at a checkpoint and resumed",
                                    "weights identical to an uninterrupted run"))
    torch.set_num_threads(1)
    full = train(_config(tmp_path, stores, "full"), progress=False, echo=lambda *a: None)
    assert full["iterations"] == 6 and full["model"]
    train(_config(tmp_path, stores, "split"), stop_at=3, progress=False, echo=lambda *a: None)
    assert checkpoint.read(tmp_path / "split" / "last.pt")["train_state"]["step"] == 3
    assert not (tmp_path / "split" / "model.pt").exists()
    with pytest.raises(BigsegError, match="--resume"):
        train(_config(tmp_path, stores, "split"), progress=False)
    train(_config(tmp_path, stores, "split"), resume=True, progress=False, echo=lambda *a: None)
    a, b = _weights(tmp_path / "full" / "model.pt"), _weights(tmp_path / "split" / "model.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_loss_decreases_on_an_easy_task(tmp_path, stores):
    torch.set_num_threads(1)
    cfg = _config(tmp_path, stores, "easy", iterations=60, val_every=60, checkpoint_every=60, deterministic=False)
    r = train(cfg, progress=False, echo=lambda *a: None)
    log = [line for line in (tmp_path / "easy" / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    losses = [yaml.safe_load(line)["loss"] for line in log]
    assert len(losses) == 60
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5]), losses
    assert r["val"]["pixel_accuracy"] > 0.5
    # the trained checkpoint is what infer takes: it loads safely with its metadata
    model, meta = checkpoint.load(tmp_path / "easy" / "model.pt")
    assert meta["arch"] == "light_unet" and [c["name"] for c in meta["classes"]] == ["paste", "stone", "void"]


def test_config_errors_name_the_key(tmp_path, stores):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"train": stores, "crop": 900, "learning_rate": 0.1}))
    assert "learning_rate: unknown key" in error_line(run_cli("train", "--config", bad))
    bad.write_text(yaml.safe_dump({"train": stores, "model": {"arch": "resnet9000"}}))
    assert "model.arch" in error_line(run_cli("train", "--config", bad))
    bad.write_text(yaml.safe_dump({"train": stores, "batch_size": 0}))
    assert "batch_size" in error_line(run_cli("train", "--config", bad))
    bad.write_text("train: [unclosed\n")
    assert "not valid YAML" in error_line(run_cli("train", "--config", bad))
    bad.write_text(yaml.safe_dump({"train": [str(tmp_path / "nothing-*.zarr")]}))
    assert "no stores match" in error_line(run_cli("train", "--config", bad))


def test_fsspec_urls_train_like_paths(tmp_path, stores):
    """Stores given as fsspec URLs (file:// here; s3://, gs://... the same way) and URL globs."""
    from pathlib import Path

    from bigseg.train.sampler import CropDataset

    parent = Path(stores[0]).parent
    url_glob = f"file://{parent}/s[0].zarr"
    cfg = _config(tmp_path, [url_glob], "url", val=[f"file://{stores[1]}"], iterations=2)
    assert cfg.train == [f"file://{stores[0]}"]
    by_path = CropDataset(stores[:1], 64, None, seed=1)
    by_url = CropDataset(cfg.train, 64, None, seed=1)
    for i in range(3):
        for a, b in zip(by_path[i], by_url[i], strict=True):
            assert torch.equal(a, b)
    r = train(cfg, progress=False, echo=lambda *a: None)
    assert (tmp_path / "url" / "last.pt").is_file() and r
    with pytest.raises(BigsegError, match="no such store"):
        CropDataset([f"file://{parent}/nothere.zarr"], 64)


def test_fine_tuning_starts_from_a_checkpoint(tmp_path, stores):
    from bigseg.checkpoint import BUNDLED

    cfg = _config(tmp_path, stores, "ft", model={"arch": "light_unet", "width": 16, "init": str(BUNDLED)},
                  iterations=1, optimizer={"name": "adamw", "lr": 1e-9, "weight_decay": 0.0}, val=[])
    lines = []
    train(cfg, progress=False, echo=lines.append)
    assert any(line.startswith("initialised from") for line in lines)
    tuned, bundled = _weights(tmp_path / "ft" / "last.pt"), _weights(BUNDLED)
    params = [k for k in bundled if "running_" not in k and "num_batches" not in k]  # BN statistics move in train
    assert len(params) > 20
    for k in params:
        assert torch.allclose(tuned[k].float(), bundled[k].float(), atol=1e-5), k
    bad = _config(tmp_path, stores, "ft2", model={"arch": "light_unet", "width": 8, "init": str(BUNDLED)})
    with pytest.raises(BigsegError, match="but the config builds light_unet"):
        train(bad, progress=False, echo=lambda *a: None)


def test_edge_refinement_head_fine_tunes_from_a_model_without_it(tmp_path, stores):
    """model.refine adds a full-resolution head; initialised from the bundled model (which has none) it starts
    from exactly the bundled model's logits, then trains; the result loads and exports like any checkpoint."""
    from bigseg.checkpoint import BUNDLED
    from bigseg.export import export

    bundled, _ = checkpoint.load(BUNDLED)
    cfg = _config(tmp_path, stores, "refine", iterations=3, val=[], crop=96,
                  model={"arch": "light_unet", "width": 16, "refine": True, "init": str(BUNDLED)})
    start = build("light_unet", 3, width=16, refine=True)
    lines = []
    _init_from(start, cfg, lines.append)  # what train does before step 1
    assert any("left fresh" in line for line in lines)
    x = torch.rand(1, 3, 120, 152)
    with torch.inference_mode():
        assert torch.equal(start.eval()(x), bundled(x))
    train(cfg, progress=False, echo=lambda *a: None)
    assert checkpoint.read(tmp_path / "refine" / "model.pt")["meta"]["arch_kwargs"] == {"width": 16, "refine": True}
    tuned, _ = checkpoint.load(tmp_path / "refine" / "model.pt")
    assert tuned.net.refine.out.weight.abs().sum() > 0  # the head learned something
    r = export(tmp_path / "refine" / "model.pt", tmp_path / "refine.onnx", exporter="legacy", echo=lambda *a: None)
    assert r["verified"]["fp32_max_abs_logit_diff"] <= 1e-3
    # torchvision models take the same head, on the wrapper: zero-initialised, it leaves their logits as they are
    deeplab = build("lraspp_mobilenet_v3_large", 3, refine=True).eval()
    assert deeplab.refine is not None
    with torch.inference_mode():
        raw = deeplab.net((x - deeplab.mean) / deeplab.std)["out"]
        assert torch.equal(deeplab(x), raw)


def test_epochs_instead_of_iterations(tmp_path, stores):
    # one epoch = crops covering the training area once: 320 x 320 px / (64 x 64 px x batch 4) = 6.25 -> 7 steps
    cfg = _config(tmp_path, stores, "ep", epochs=1.0, iterations=None)
    assert cfg.iterations == 7
    assert _config(tmp_path, stores, "ep3", epochs=3, iterations=None).iterations == 19
    with pytest.raises(BigsegError, match="iterations or epochs, not both"):
        _config(tmp_path, stores, "both", epochs=1, iterations=5)
    assert _config(tmp_path, stores, "default", iterations=None).iterations == 1000


@pytest.mark.parametrize("iterations", [1, 2, 3, 10, 25])
def test_schedules_work_for_short_runs(tmp_path, stores, iterations):
    """One-cycle and poly schedules on runs of a few steps (one-cycle divided by zero at 10 steps)."""
    from bigseg.train.loop import _schedule

    for name in ("onecycle", "poly"):
        cfg = _config(tmp_path, stores, f"s{name}", iterations=iterations, schedule={"name": name})
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optimizer.lr)
        sched = _schedule(cfg, opt)
        lrs = []
        for _ in range(iterations):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        assert all(np.isfinite(lrs)) and max(lrs) <= cfg.optimizer.lr * 1.0001, (name, lrs)


def test_staged_training_freezes_then_unfreezes_and_resumes_stage_by_stage(tmp_path, stores):
    """fastai's recipe as stages: a frozen encoder at a small crop, then everything at full crop with a lower
    learning rate for the encoder; a stop inside stage two resumes to the weights of an uninterrupted run."""
    torch.set_num_threads(1)
    init = tmp_path / "init.pt"
    torch.manual_seed(0)
    checkpoint.save(init, build("light_unet", 3, width=4), arch="light_unet", classes=CONCRETE,
                    arch_kwargs={"width": 4})
    stages = [{"iterations": 4, "crop": 48, "freeze": ["encoder"], "lr": 0.01},
              {"iterations": 4, "crop": 64, "encoder_lr": 0.001}]
    kw = {"iterations": None, "stages": stages, "model": {"arch": "light_unet", "width": 4, "init": str(init)}}
    r = train(_config(tmp_path, stores, "staged", **kw), progress=False, echo=lambda *a: None)
    assert r["iterations"] == r["of"] == 8 and r["model"] == str(tmp_path / "staged" / "model.pt")
    start, one, two = (_weights(p) for p in (init, tmp_path / "staged/stage-1/model.pt",
                                               tmp_path / "staged/stage-2/model.pt"))
    enc = [k for k in start if k.startswith(("net.stem.", "net.down.", "net.bottom.")) and k.endswith("weight")]
    dec = [k for k in start if k.startswith(("net.up.", "net.head.")) and k.endswith("weight")]
    assert enc and dec
    assert all(torch.equal(start[k], one[k]) for k in enc)  # frozen in stage one
    stats = [k for k in start if k.startswith(("net.stem.", "net.down.", "net.bottom.")) and "running_" in k]
    assert stats and all(torch.equal(start[k], one[k]) for k in stats)  # its batch-norm statistics too
    assert not all(torch.equal(start[k], one[k]) for k in start if k.startswith("net.up.") and "running_" in k)
    assert not any(torch.equal(start[k], one[k]) for k in dec)
    assert not any(torch.equal(one[k], two[k]) for k in enc)  # trained in stage two
    state = checkpoint.read(tmp_path / "staged/stage-2/last.pt")["train_state"]["optimizer"]
    lo, hi = sorted(g["initial_lr"] for g in state["param_groups"])
    assert hi == pytest.approx(10 * lo)  # the encoder's own rate, a tenth of the rest's
    assert (tmp_path / "staged/model.pt").read_bytes() == (tmp_path / "staged/stage-2/model.pt").read_bytes()

    cfg = _config(tmp_path, stores, "split", **kw)
    assert train(cfg, stop_at=6, progress=False, echo=lambda *a: None)["model"] is None
    with pytest.raises(BigsegError, match="--resume"):
        train(cfg, progress=False)
    said = []
    assert train(cfg, resume=True, progress=False, echo=said.append)["model"]
    assert not any(m.startswith("stage 1 of 2") for m in said)  # the finished stage is not run again
    a, b = _weights(tmp_path / "staged/model.pt"), _weights(tmp_path / "split/model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    bad = _config(tmp_path, stores, "bad", stages=[{"iterations": 2, "freeze": ["net.nothing."]}], iterations=None)
    with pytest.raises(BigsegError, match="freeze: no parameter of light_unet starts with 'net.nothing.'"):
        train(bad, progress=False, echo=lambda *a: None)
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump({"train": stores, "iterations": 5, "stages": [{"iterations": 2}]}))
    assert "give each stage its iterations" in error_line(run_cli("train", "--config", path))


DEEPLABV3PLUS = "deeplabv3plus_mobilenet_v3_large"


def _deeplabv3plus_init(tmp_path, seed: int, name: str):
    """A fresh DeepLabV3+ with its edge head (weights from ``seed``), saved as TMP/NAME for a model.init:
    (the model, the path)."""
    torch.manual_seed(seed)
    model = build(DEEPLABV3PLUS, 3, refine=True)
    path = tmp_path / name
    checkpoint.save(path, model, arch=DEEPLABV3PLUS, classes=CONCRETE, arch_kwargs={"refine": True})
    return model, path


def test_deeplabv3plus_at_output_stride_8_starts_from_a_stride_16_checkpoint(tmp_path, stores):
    """model.output_stride 8 dilates DeepLabV3+'s stride-16 stage instead: the same tensors (a stride-16 checkpoint
    loads into it whole), features at twice the resolution, full-size logits; the checkpoint it writes rebuilds at
    stride 8, and the option is refused on an architecture that has no such stage."""
    arch = DEEPLABV3PLUS
    coarse, init = _deeplabv3plus_init(tmp_path, 2, "os16.pt")
    cfg = _config(tmp_path, stores, "os8", iterations=1, val=[], crop=64, batch_size=2, checkpoint_every=1,
                  model={"arch": arch, "refine": True, "output_stride": 8, "init": str(init)})
    fine = build(arch, 3, refine=True, output_stride=8)
    lines = []
    _init_from(fine, cfg, lines.append)
    assert not any("left fresh" in line for line in lines)  # every tensor came from the stride-16 checkpoint
    assert all(torch.equal(a, b) for a, b in zip(fine.state_dict().values(), coarse.state_dict().values(), strict=True))
    x = torch.rand(1, 3, 128, 160)
    with torch.inference_mode():
        low = coarse.eval().net.low(x)
        assert coarse.net.high(low).shape[-2:] == (8, 10)  # stride 16
        assert fine.eval().net.high(low).shape[-2:] == (16, 20)  # stride 8
        assert fine(x).shape == coarse(x).shape == (1, 3, 128, 160)
        batch = torch.rand(2, 3, 128, 160)  # batch statistics: an untrained trunk's running ones flatten it to ~0
        assert not torch.allclose(fine.train()(batch), coarse.train()(batch), atol=1e-3)  # dilated, it reads anew
    train(cfg, progress=False, echo=lambda *a: None)
    meta = checkpoint.read(tmp_path / "os8" / "model.pt")["meta"]
    assert meta["arch_kwargs"] == {"refine": True, "output_stride": 8}
    tuned, _ = checkpoint.load(tmp_path / "os8" / "model.pt")
    with torch.inference_mode():
        assert tuned.eval().net.high(tuned.net.low(x)).shape[-2:] == (16, 20)
    with pytest.raises(BigsegError, match="output_stride 8 is for deeplabv3plus"):
        build("light_unet", 3, output_stride=8)
    with pytest.raises(BigsegError, match="output_stride 8 is for deeplabv3plus"):  # refused when the config is read
        _config(tmp_path, stores, "os8-unet", model={"arch": "light_unet", "width": 4, "output_stride": 8})


def test_a_stride_2_decoder_starts_from_a_stride_4_checkpoints_answers_and_learns(tmp_path, stores):
    """model.decoder_stride 2 adds a decoder step at stride 2 to DeepLabV3+: from a stride-4 checkpoint the new step
    starts fresh (said) and the model answers exactly as the checkpoint did; trained, the step has moved off zero,
    the checkpoint rebuilds with it and exports to ONNX with the same answers; refused on other architectures."""
    arch = DEEPLABV3PLUS
    coarse, init = _deeplabv3plus_init(tmp_path, 5, "stride4.pt")
    cfg = _config(tmp_path, stores, "stride2", iterations=2, val=[], crop=64, batch_size=2, checkpoint_every=2,
                  model={"arch": arch, "refine": True, "decoder_stride": 2, "init": str(init)})
    fine = build(arch, 3, refine=True, decoder_stride=2)
    lines = []
    _init_from(fine, cfg, lines.append)
    assert any("left fresh" in line for line in lines)
    x = torch.rand(1, 3, 96, 128)
    with torch.inference_mode():
        assert torch.equal(fine.eval()(x), coarse.eval()(x))  # the new step's last convolution starts at zero
    train(cfg, progress=False, echo=lambda *a: None)
    assert checkpoint.read(tmp_path / "stride2" / "model.pt")["meta"]["arch_kwargs"] == {"refine": True,
                                                                                        "decoder_stride": 2}
    tuned, _ = checkpoint.load(tmp_path / "stride2" / "model.pt")
    assert tuned.net.fine is not None and tuned.net.fine.out.weight.abs().sum() > 0
    with torch.inference_mode():
        assert not torch.equal(tuned.eval()(x), coarse(x))
    from bigseg.export import export  # the export checks its answers against the checkpoint's and raises if off

    checked = export(tmp_path / "stride2" / "model.pt", tmp_path / "stride2.onnx", exporter="legacy",
                     echo=lambda *a: None)
    assert checked["verified"]["fp32_max_abs_logit_diff"] <= 1e-3
    with pytest.raises(BigsegError, match="decoder_stride 2 is for deeplabv3plus"):
        build("light_unet", 3, decoder_stride=2)
    with pytest.raises(BigsegError, match="decoder_stride 2 is for deeplabv3plus"):  # refused when the config is read
        _config(tmp_path, stores, "stride2-unet", model={"arch": "light_unet", "width": 4, "decoder_stride": 2})


def test_a_wider_edge_head_trains_alone_on_a_frozen_network(tmp_path, stores):
    """model.refine_hidden widens the full-resolution head; from a checkpoint with the 8-channel head the new head
    starts fresh (said), and with freeze: [net] only the head trains -- every weight and batch-norm statistic of
    the network stays the checkpoint's; the checkpoint it writes rebuilds with the wider head."""
    arch = DEEPLABV3PLUS
    _, init = _deeplabv3plus_init(tmp_path, 4, "narrow.pt")
    cfg = _config(tmp_path, stores, "wide", iterations=2, val=[], crop=64, batch_size=2, checkpoint_every=2,
                  freeze=["net"], model={"arch": arch, "refine": True, "refine_hidden": 16, "init": str(init)})
    lines = []
    _init_from(build(arch, 3, refine=True, refine_hidden=16), cfg, lines.append)
    assert any("left fresh" in line for line in lines)
    train(cfg, progress=False, echo=lambda *a: None)
    blob = checkpoint.read(tmp_path / "wide" / "model.pt")
    assert blob["meta"]["arch_kwargs"] == {"refine": True, "refine_hidden": 16}
    before = checkpoint.read(init)["state_dict"]
    net = {k: v for k, v in blob["state_dict"].items() if k.startswith("net.")}
    assert net and all(torch.equal(v, before[k]) for k, v in net.items())  # weights and running statistics
    tuned, _ = checkpoint.load(tmp_path / "wide" / "model.pt")
    assert tuned.refine.mix[0].out_channels == 16 and tuned.refine.out.weight.abs().sum() > 0


def test_a_moving_average_of_the_weights_is_what_the_run_hands_on_and_resumes_exactly(tmp_path, stores):
    """ema: model.pt holds the moving average (between the start and the raw weights, nearer the start the slower
    the decay), last.pt the raw weights; a stopped and resumed run averages on to the same model.pt bit for bit;
    a resume that adds or drops ema, or changes its decay, is refused."""
    torch.set_num_threads(1)
    quiet = {"progress": False, "echo": lambda *a: None}
    said: list[str] = []
    slow = train(_config(tmp_path, stores, "slow", ema=0.9), progress=False, echo=said.append)
    assert any("moving average of the weights (decay 0.9)" in line for line in said), said
    fast = train(_config(tmp_path, stores, "fast", ema=0.1), **quiet)
    raw, raw_fast = _weights(tmp_path / "slow" / "last.pt"), _weights(tmp_path / "fast" / "last.pt")
    assert all(torch.equal(raw[k], raw_fast[k]) for k in raw)  # the decay changes the average, not the run
    torch.manual_seed(3)  # the config's seed: the initial weights, as the run built them
    start = build("light_unet", 3, width=4).state_dict()
    slow_w, fast_w = _weights(slow["model"]), _weights(fast["model"])

    def dist(a, b):
        return sum(float((a[k].float() - b[k].float()).norm()) for k in a if a[k].is_floating_point())

    assert dist(fast_w, raw) < dist(slow_w, raw)  # a fast decay follows the raw weights closely
    assert dist(slow_w, start) < dist(raw, start)  # a slow one stays nearer where the run began
    assert "moving average (decay 0.9) over 6 steps" in checkpoint.read(slow["model"])["meta"]["weights"]

    train(_config(tmp_path, stores, "split", ema=0.9), stop_at=3, **quiet)
    with pytest.raises(BigsegError, match="started with ema"):
        train(_config(tmp_path, stores, "split"), resume=True, **quiet)
    with pytest.raises(BigsegError, match="started with ema 0.9, the config now says 0.5"):
        train(_config(tmp_path, stores, "split", ema=0.5), resume=True, **quiet)
    train(_config(tmp_path, stores, "split", ema=0.9), resume=True, **quiet)
    resumed = _weights(tmp_path / "split" / "model.pt")
    for k in slow_w:
        assert torch.equal(slow_w[k], resumed[k]), k
    train(_config(tmp_path, stores, "plain"), stop_at=3, **quiet)
    with pytest.raises(BigsegError, match="started without ema"):
        train(_config(tmp_path, stores, "plain", ema=0.9), resume=True, **quiet)
    stages = [{"iterations": 2}, {"iterations": 2, "lr": 0.001}]
    train(_config(tmp_path, stores, "staged", ema=0.9, iterations=None, stages=stages), **quiet)
    one, two = (checkpoint.read(tmp_path / f"staged/stage-{k}/model.pt")["meta"] for k in (1, 2))
    assert one["weights"] == two["weights"] == "moving average (decay 0.9) over 2 steps"  # each stage afresh
    assert two["config"]["model"]["init"] == str(tmp_path / "staged/stage-1/model.pt")  # from stage one's average
