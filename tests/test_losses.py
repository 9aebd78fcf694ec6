"""The training losses (bigseg.train.losses): each one equals the quantity it stands for where that is exact
(Lovász and Dice on hard predictions are 1 - IoU and 1 - Dice, focal with gamma 0 and OHEM keeping every pixel are
cross-entropy), ignored pixels change neither value nor gradient, and a config with a sum of them trains."""

import numpy as np
import pytest
import torch
import yaml

from bigseg.ingest import ingest
from bigseg.synth import SynthParams, synthesize
from bigseg.train import losses as L
from bigseg.train.config import LossTerm, load_config
from bigseg.train.loop import train
from tests.helpers import error_line, run_cli

C = 3


def _hard_logits(pred: torch.Tensor) -> torch.Tensor:
    """Logits whose softmax is (numerically) one-hot on ``pred``."""
    return torch.nn.functional.one_hot(pred, C).permute(0, 3, 1, 2).float() * 60.0


def _case(seed=0, shape=(2, 24, 20)):
    g = torch.Generator().manual_seed(seed)
    truth = torch.randint(0, C, shape, generator=g)
    pred = torch.where(torch.rand(shape, generator=g) < 0.7, truth, torch.randint(0, C, shape, generator=g))
    return truth, pred


def test_lovasz_and_dice_on_hard_predictions_are_one_minus_iou_and_dice():
    truth, pred = _case()
    logits = _hard_logits(pred)
    ious, dices = [], []
    for c in range(C):
        t, p = truth == c, pred == c
        ious.append((t & p).sum().item() / (t | p).sum().item())
        dices.append(2 * (t & p).sum().item() / (t.sum() + p.sum()).item())
    assert L.lovasz(logits, truth).item() == pytest.approx(1 - np.mean(ious), abs=1e-5)
    assert L.dice(logits, truth, eps=0.0).item() == pytest.approx(1 - np.mean(dices), abs=1e-5)
    assert L.lovasz(_hard_logits(truth), truth).item() == pytest.approx(0.0, abs=1e-6)


def test_focal_gamma_0_and_ohem_keeping_everything_are_cross_entropy():
    truth, _ = _case(1)
    logits = torch.randn(truth.shape[0], C, *truth.shape[1:], generator=torch.Generator().manual_seed(2))
    weight = torch.tensor([1.0, 2.0, 4.0])
    ce = torch.nn.functional.cross_entropy(logits, truth)
    assert L.focal(logits, truth, gamma=0.0).item() == pytest.approx(ce.item(), rel=1e-5)
    assert L.ohem(logits, truth, threshold=1.0).item() == pytest.approx(ce.item(), rel=1e-5)
    wce = torch.nn.functional.cross_entropy(logits, truth, weight=weight)
    assert L.focal(logits, truth, weight=weight, gamma=0.0).item() == pytest.approx(wce.item(), rel=1e-5)
    # focusing: the easy pixels count less, so the focal loss is below cross-entropy
    assert L.focal(logits, truth, gamma=2.0).item() < ce.item()
    # OHEM keeps the hardest pixels: at least min_kept of them, so its mean is above the plain mean
    assert L.ohem(logits, truth, threshold=0.01, min_kept=0.1).item() > ce.item()


@pytest.mark.parametrize("name", L.NAMES)
def test_ignored_pixels_change_neither_value_nor_gradient(name):
    truth, _ = _case(3)
    logits = torch.randn(truth.shape[0], C, *truth.shape[1:], generator=torch.Generator().manual_seed(4))
    masked = truth.clone()
    masked[:, :8] = 255
    fn = L.build_loss([LossTerm(name=name)])
    a = logits.clone().requires_grad_(True)
    loss_a = fn(a, masked)
    loss_a.backward()
    assert torch.isfinite(loss_a) and loss_a.item() > 0
    assert torch.all(a.grad[:, :, :8] == 0)  # no gradient where the label is ignored
    b = logits.clone()
    b[:, :, :8] = torch.randn_like(b[:, :, :8]) * 10  # change the ignored pixels' logits: nothing changes
    assert fn(b, masked).item() == pytest.approx(loss_a.item(), rel=1e-5)
    everything = fn(logits.clone().requires_grad_(True), torch.full_like(truth, 255))
    assert everything.item() == 0.0  # a batch with nothing labelled: zero, not NaN


def test_a_sum_of_terms_is_the_weighted_sum():
    truth, _ = _case(5)
    logits = torch.randn(truth.shape[0], C, *truth.shape[1:], generator=torch.Generator().manual_seed(6))
    fn = L.build_loss([LossTerm(name="cross_entropy"), LossTerm(name="lovasz", weight=0.5)])
    want = torch.nn.functional.cross_entropy(logits, truth) + 0.5 * L.lovasz(logits, truth)
    assert fn(logits, truth).item() == pytest.approx(want.item(), rel=1e-6)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("losses")
    s = synthesize(d / "s.png", SynthParams(256, 256, seed=41, pixel_size_um=15))
    ingest(s["image"], d / "s.zarr", truth=s["truth"], chunk=128)
    return str(d / "s.zarr")


def _write(tmp_path, store, loss):
    cfg = {"train": [store], "model": {"arch": "light_unet", "width": 4}, "crop": 64, "batch_size": 4,
           "iterations": 40, "checkpoint_every": 40, "val_every": 1000, "num_workers": 0, "device": "cpu",
           "seed": 3, "out": str(tmp_path / "run"), "optimizer": {"name": "adamw", "lr": 0.01}, "loss": loss}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_config_with_dice_plus_focal_trains_and_bad_terms_name_the_key(tmp_path, store):
    torch.set_num_threads(1)
    cfg = load_config(_write(tmp_path, store, [{"name": "focal", "gamma": 1.0}, {"name": "dice", "weight": 0.5}]))
    assert [t.name for t in cfg.loss] == ["focal", "dice"]
    r = train(cfg, progress=False, echo=lambda *a: None)
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    log = [yaml.safe_load(x)["loss"] for x in lines if '"loss"' in x]
    assert r["model"] and np.mean(log[-5:]) < 0.8 * np.mean(log[:5]), log
    assert [t.name for t in load_config(_write(tmp_path, store, "lovasz")).loss] == ["lovasz"]  # one name
    assert "loss" in error_line(run_cli("train", "--config", _write(tmp_path, store, "hinge")))
    assert "loss.0.weight" in error_line(run_cli("train", "--config", _write(tmp_path, store,
                                                                              [{"name": "dice", "weight": -1}])))


def test_class_weights_auto_balances_the_stores_truth(tmp_path, store):
    import zarr

    from bigseg.train.sampler import balanced_weights, class_counts

    truth = zarr.open_group(store, mode="r")["truth"][:]
    counts = class_counts([store], 3)
    assert counts.tolist() == [int((truth == c).sum()) for c in range(3)]
    w = balanced_weights(counts)
    freq = counts / counts.sum()
    assert w == pytest.approx(list(np.median(freq) / freq), rel=1e-3)
    assert w[2] == max(w) > 1 and w[int(np.argmax(counts))] == min(w) < 1  # voids weigh most, the commonest least
    assert balanced_weights(np.array([10, 0, 30])) == [2.0, 0.0, pytest.approx(0.6667, rel=1e-3)]
    said = []
    cfg = load_config(_write(tmp_path, store, "cross_entropy"))
    cfg.class_weights, cfg.iterations = "auto", 2
    train(cfg, progress=False, echo=said.append)
    assert any(m.startswith("class_weights: auto") and f"{w[2]:g}" in m for m in said), said
    path = tmp_path / "synthetic.yaml"
    path.write_text(yaml.safe_dump({"synthetic": {"styles": {"classic": 1.0}}, "class_weights": "auto"}))
    assert "class_weights" in error_line(run_cli("train", "--config", path))


def test_distill_is_the_teachers_kl_divergence_over_what_it_got_right():
    g = torch.Generator().manual_seed(5)
    truth, _ = _case(5)
    teacher = torch.randn(2, C, 24, 20, generator=g) * 3
    student = torch.randn(2, C, 24, 20, generator=g, requires_grad=True)
    assert L.distill(teacher.clone(), teacher, truth).item() == pytest.approx(0.0, abs=1e-6)  # itself: nothing
    right = teacher.argmax(1) == truth
    assert 0.2 < right.float().mean() < 0.6
    q, log_p = teacher.softmax(1), student.log_softmax(1)
    kl = (q * (q.log() - log_p)).sum(1)
    assert L.distill(student, teacher, truth, where="all").item() == pytest.approx(kl.mean().item(), rel=1e-5)
    agree = L.distill(student, teacher, truth)
    assert agree.item() == pytest.approx(kl[right].mean().item(), rel=1e-5)
    agree.backward()  # what the teacher got wrong gets no gradient: the truth alone teaches it
    grad = student.grad.abs().sum(1)
    assert (grad[~right] == 0).all() and (grad[right] > 0).all()
    ignored = truth.clone()
    ignored[0] = 255
    assert L.distill(student, teacher, ignored).item() == pytest.approx(kl[1][right[1]].mean().item(), rel=1e-5)
    wrong = _hard_logits((truth + 1) % C)  # a teacher wrong everywhere teaches nothing
    assert L.distill(student, wrong, truth).item() == 0.0
    assert L.distill(student, teacher, truth, temperature=2.0).item() != pytest.approx(agree.item())


def test_gated_crf_pulls_labels_from_strokes_to_the_colour_edge():
    """The local CRF loss is zero for one label everywhere, costs less for labels that change at a colour edge than
    for labels that change inside one colour, and -- with cross-entropy on two strokes far inside each side --
    carries the strokes' labels over the undecided pixels of their colour up to the colour edge (cross-entropy
    alone leaves them where they started: nothing else reaches them)."""
    h, w, edge = 8, 40, 23
    image = torch.zeros(1, 3, h, w)
    image[..., edge:] = 1.0
    image += 0.01 * torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    one = torch.zeros(1, 2, h, w)
    one[:, 0] = 1
    assert L.gated_crf(one, image).item() == 0.0
    at_edge, inside = torch.zeros(1, 2, h, w), torch.zeros(1, 2, h, w)
    at_edge[:, 0, :, :edge], at_edge[:, 1, :, edge:] = 1, 1
    inside[:, 0, :, :10], inside[:, 1, :, 10:] = 1, 1
    assert L.gated_crf(at_edge, image).item() < 0.01 * L.gated_crf(inside, image).item()
    assert 0 < L.gated_crf(inside, image).item() <= 1
    labels = torch.full((1, h, w), 255)
    labels[:, :, 2:4], labels[:, :, 36:38] = 0, 1  # two strokes, far from the edge
    unpainted = labels[0] == 255
    for crf in (0.0, 1.0):
        logits = torch.zeros(1, 2, h, w, requires_grad=True)  # every pixel undecided
        opt = torch.optim.Adam([logits], lr=0.1)
        for _ in range(300):
            loss = L.cross_entropy(logits, labels) + crf * L.gated_crf(logits.softmax(1), image)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if crf:
            pred = logits.argmax(1)[0]
            assert (pred[:, :edge] == 0).all() and (pred[:, edge:] == 1).all()
        else:  # the strokes alone teach nothing beyond themselves
            assert float(logits.detach()[0][:, unpainted].abs().max()) == 0.0
