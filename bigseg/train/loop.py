"""The training loop: optimizer, LR schedule, checkpoints every N iterations, exact resume, validation.

``OUT/last.pt`` is written every ``checkpoint_every`` iterations (atomically) with weights, optimizer,
scheduler, step, torch RNG state, config and class table; ``--resume`` continues from it, and because crops
are a function of the sample number (see sampler.py) a stopped-and-resumed run reproduces an uninterrupted
one exactly (CPU, deterministic mode). ``OUT/model.pt`` (weights + metadata only) is what ``infer`` takes.
With ``ema`` the run also keeps a moving average of the weights (torch's ``AveragedModel``, batch-norm statistics
included); ``model.pt`` and validation take the average, ``last.pt`` holds both, so a resumed run goes on
averaging where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from bigseg import checkpoint as ckpt
from bigseg import store as st
from bigseg.classes import CONCRETE
from bigseg.errors import BigsegError
from bigseg.metrics import confusion, scores
from bigseg.models import build, training_mode
from bigseg.paths import refuse_overlap
from bigseg.progress import make_bar
from bigseg.results import TrainResult
from bigseg.train.config import TrainConfig, resolve_epochs
from bigseg.train.losses import build_loss, distill
from bigseg.train.sampler import CropDataset, IndexRange
from bigseg.train.widen import WIDEN_NOISE, widen_light_unet


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise BigsegError("device: cuda was asked for, but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def _classes(cfg: TrainConfig):
    """The class table of the training (and validation) stores; synthetic crops are concrete."""
    stores = cfg.train + cfg.val
    if not stores:
        return CONCRETE
    tables = [st.class_table(st.open_store(p)) for p in stores]
    first = tables[0]
    for p, t in zip(stores, tables, strict=True):
        if [c.name for c in t] != [c.name for c in first]:
            raise BigsegError(f"{p}: its classes ({', '.join(c.name for c in t)}) differ from {stores[0]}'s "
                              f"({', '.join(c.name for c in first)})")
    if cfg.synthetic is not None and [c.name for c in first] != [c.name for c in CONCRETE]:
        raise BigsegError(f"synthetic crops are concrete (paste, stone, void); the stores' classes are "
                          f"{', '.join(c.name for c in first)}")
    return first


def _loader(cfg: TrainConfig, start: int, end: int, n_classes: int, device):
    """(training loader over steps start .. end - 1, validation set or None)."""
    from bigseg.train.synthetic import SyntheticBatches, SyntheticCrops

    common = {"num_workers": cfg.num_workers, "persistent_workers": False, "pin_memory": device.type == "cuda"}
    dataset: torch.utils.data.Dataset
    val: torch.utils.data.Dataset | None
    if cfg.synthetic is not None:
        dataset = SyntheticCrops(cfg.synthetic, cfg.crop, cfg.augment, cfg.seed, cache=2 * cfg.batch_size)
        batches = SyntheticBatches(start, end, cfg.batch_size, cfg.num_workers, cfg.synthetic.crops_per_region)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, **common)
    else:
        dataset = CropDataset(cfg.train, cfg.crop, cfg.augment, cfg.seed, cfg.rare_class, n_classes)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=cfg.batch_size, sampler=IndexRange(start * cfg.batch_size, end * cfg.batch_size),
            generator=torch.Generator().manual_seed(cfg.seed), **common)
    if cfg.val:
        val = CropDataset(cfg.val, cfg.crop, None, cfg.seed + 1)
    elif cfg.synthetic is not None:  # other slabs and styles (another seed), one crop per rendered region
        val = _SyntheticVal(SyntheticCrops(cfg.synthetic.model_copy(update={"region": cfg.crop}), cfg.crop, None,
                                           cfg.seed + 1, cache=1))
    else:
        val = None
    return loader, val


class _SyntheticVal(torch.utils.data.Dataset):
    """Validation crops: crop 0 of regions 2^40, 2^40 + 1, ... (one style each), as ``validate`` indexes them."""

    def __init__(self, crops):
        self.crops = crops

    def __getitem__(self, i: int):
        from bigseg.train.synthetic import CROP_BITS

        return self.crops[int(i) << CROP_BITS]


def _provenance(cfg: TrainConfig) -> list[str]:
    out = list(cfg.train)
    if cfg.synthetic is not None:
        styles = ", ".join(f"{k} {v:g}" for k, v in cfg.synthetic.styles.items())
        out.append(f"synthetic sections rendered on the fly (styles: {styles}; seed {cfg.seed}/{cfg.synthetic.seed})")
    return out


def _schedule(cfg: TrainConfig, opt):
    n = cfg.steps
    s = cfg.schedule
    if s.name == "onecycle" and n >= 3:
        # OneCycleLR divides by (pct_start * n - 1) and by (n - pct_start * n): keep both phases >= 1 step
        pct = min(max(s.warmup_fraction, 2 / n), 1 - 1 / n)
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=n,
                                                   pct_start=pct)
    if s.name == "poly":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: (1 - min(k, n - 1) / n) ** s.power)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0)


def train_mode(model) -> None:
    """``model.train()``, except for the batch-norm layers of frozen parts (weights not trained): those stay in
    eval mode, so their running statistics stay the checkpoint's and a frozen part computes what it did before."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.weight is not None \
                and not m.weight.requires_grad:
            m.eval()


def _param_groups(cfg: TrainConfig, model) -> list[dict]:
    """The parameters the optimizer trains: ``freeze`` leaves out the encoder (or the named prefixes) and turns
    their gradients off; ``encoder_lr`` gives the encoder its own learning rate."""
    from bigseg.models import encoder_prefixes

    encoder = encoder_prefixes(cfg.model.arch)
    frozen = tuple(p for name in cfg.freeze for p in (encoder if name == "encoder" else (name,)))
    named = list(model.named_parameters())
    if frozen:
        unmatched = [f for f in cfg.freeze if f != "encoder" and not any(n.startswith(f) for n, _ in named)]
        if unmatched:
            raise BigsegError(f"freeze: no parameter of {cfg.model.arch} starts with {unmatched[0]!r} (names begin "
                              f"with e.g. {named[0][0]!r}; or say encoder)")
    groups: dict[str, list] = {"encoder": [], "rest": []}
    for name, p in named:
        if frozen and name.startswith(frozen):
            p.requires_grad_(False)
            continue
        p.requires_grad_(True)
        groups["encoder" if cfg.encoder_lr is not None and name.startswith(encoder) else "rest"].append(p)
    if not groups["encoder"] and not groups["rest"]:
        raise BigsegError(f"freeze: {cfg.freeze} leaves nothing of {cfg.model.arch} to train")
    out: list[dict[str, Any]] = [{"params": groups["rest"]}] if groups["rest"] else []
    if groups["encoder"]:
        out.append({"params": groups["encoder"], "lr": cfg.encoder_lr})
    return out


def _optimizer(cfg: TrainConfig, model):
    o = cfg.optimizer
    params = _param_groups(cfg, model)
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


class _Log:
    """JSON lines always; TensorBoard as well when the tensorboard package is installed."""

    def __init__(self, out: Path):
        self.file = open(out / "log.jsonl", "a")  # noqa: SIM115 - closed in close()
        self.tb: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            self.tb = None

    def scalars(self, step: int, values: dict):
        self.file.write(json.dumps({"step": step, **values}) + "\n")
        self.file.flush()
        if self.tb:
            for k, v in values.items():
                if isinstance(v, int | float) and v is not None:
                    self.tb.add_scalar(k, v, step)

    def images(self, step: int, tag: str, image: torch.Tensor, pred: torch.Tensor, colors: np.ndarray):
        if self.tb:
            overlay = 0.5 * image.cpu().numpy() + 0.5 * colors[pred.cpu().numpy()].transpose(0, 3, 1, 2) / 255
            self.tb.add_images(tag, np.clip(overlay, 0, 1), step)

    def close(self):
        self.file.close()
        if self.tb:
            self.tb.close()


INPUT_CONVENTION = ("mean", "std", "bgr")
"""Model arguments that describe the input a network was trained on; a fine-tuned model inherits them from its
model.init checkpoint (an imported model trained on BGR crops stays a BGR model)."""


def model_kwargs(cfg: TrainConfig) -> dict:
    """The arguments the run builds its model with: the config's, and model.init's input convention."""
    kw = cfg.model.kwargs()
    if cfg.model.init:
        init = ckpt.read(cfg.model.init)["meta"].get("arch_kwargs", {})
        kw.update({k: init[k] for k in INPUT_CONVENTION if k in init})
    return kw


def _init_from(model, cfg: TrainConfig, echo) -> None:
    """Fine-tuning: copy a checkpoint's weights into ``model`` (same architecture); tensors whose shapes differ
    (the classifier, when the class count changed) or that the checkpoint lacks (an edge-refinement head added
    with ``refine``) keep their fresh initialisation, and the count is said. A light U-Net narrower than the
    config's ``width`` is widened first (:mod:`bigseg.train.widen`: the same answers, more channels)."""
    assert cfg.model.init is not None  # called only when fine-tuning
    blob = ckpt.read(cfg.model.init)
    meta = blob["meta"]

    def trunk(kwargs: dict) -> dict:  # the layers; the heads, input convention and dilation may differ
        return {k: v for k, v in kwargs.items()
                if k not in ("refine", "refine_hidden", "output_stride", "decoder_stride", *INPUT_CONVENTION)}

    state, theirs, ours = blob["state_dict"], trunk(meta.get("arch_kwargs", {})), trunk(cfg.model.kwargs())
    widened, old, new = "", theirs.get("width", 16), ours.get("width", 16)  # light_unet's default width
    if meta["arch"] == cfg.model.arch == "light_unet" and old < new:
        state = widen_light_unet(state, old, new, noise=WIDEN_NOISE, seed=cfg.seed)
        theirs, widened = {**theirs, "width": new}, f", widened from width {old} to {new} (its answers kept)"
    if meta["arch"] != cfg.model.arch or theirs != ours:
        raise BigsegError(f"model.init {cfg.model.init}: a {meta['arch']} {meta.get('arch_kwargs', {})} checkpoint, "
                          f"but the config builds {cfg.model.arch} {cfg.model.kwargs()}")
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    skipped = len(own) - len(fits)
    echo(f"initialised from {cfg.model.init}{widened}"
         + (f" ({skipped} tensors of other shapes or not in it left fresh)" if skipped else ""))


def validate(model, dataset: CropDataset, n_crops: int, n_classes: int, ignore: int, device, amp: bool):
    """Confusion matrix over a fixed set of crops (the same every time: sample numbers 2^40, 2^40 + 1, ...)."""
    model.eval()
    cm = np.zeros((n_classes, n_classes), np.int64)
    first = None
    with torch.inference_mode():
        for k in range(n_crops):
            image, truth = dataset[(1 << 40) + k]
            x = image[None].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
                pred = model(x).argmax(1)[0].cpu()
            cm += confusion(truth.numpy(), pred.numpy(), n_classes, ignore)
            if first is None:
                first = (image[None], pred[None])
    train_mode(model)
    return cm, first


@dataclass
class _State:
    """What the steps of a run share: model, optimizer, schedule, where the run is."""

    cfg: TrainConfig
    classes: tuple
    device: torch.device
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any  # a torch LR scheduler (the LR finder sets the rate itself and steps none)
    step: int
    out: Path
    kwargs: dict
    bf16: bool = False  # autocast to bfloat16 (models.training_mode: where it measured faster)
    channels_last: bool = False
    teacher: torch.nn.Module | None = None  # distill: frozen, in eval mode
    ema: AveragedModel | None = None  # cfg.ema: the moving average of the weights, updated after every step

    @property
    def kept(self) -> torch.nn.Module:
        """The network a run hands on (model.pt, validation): the moving average where there is one."""
        return self.model if self.ema is None else self.ema.module

    def save(self, path: Path, with_state: bool) -> None:
        """A checkpoint (weights + metadata): ``last.pt`` (``with_state``) holds the raw weights and the training
        state (the moving average in it), ``model.pt`` the network the run hands on (:attr:`kept`). Never one of
        non-finite weights: the run stops instead and the previous checkpoint stays."""
        net = self.model if with_state else self.kept
        bad = [k for k, v in net.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise BigsegError(f"the weights became non-finite at iteration {self.step} ({bad[0]}); lower "
                              f"optimizer.lr. {self.out / 'last.pt'} keeps the last good checkpoint")
        cfg = self.cfg
        state = None
        if with_state:
            state = {"step": self.step, "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                     "torch_rng": torch.get_rng_state()}
            if self.ema is not None:
                state["ema"] = self.ema.state_dict()
        meta = {"window": cfg.crop, "config": cfg.model_dump(mode="json"), "trained_on": _provenance(cfg)}
        if cfg.synthetic is not None and cfg.synthetic.min_pixel_size_um:  # infer shows finer scans at it
            meta["working_pixel_size_um"] = cfg.synthetic.min_pixel_size_um
        if self.ema is not None:
            meta["weights"] = (f"moving average (decay {cfg.ema:g}) over {int(self.ema.n_averaged)} steps"
                               if not with_state else f"raw weights at iteration {self.step}")
        ckpt.save(path, net, arch=cfg.model.arch, classes=self.classes, arch_kwargs=self.kwargs,
                  extra_meta=meta, train_state=state)


def _checked(cfg: TrainConfig, resume: bool) -> tuple:
    """Everything about the config that can fail, before any folder is made: (classes, device)."""
    out = Path(cfg.out)
    last = out / "last.pt"
    if last.exists() and not resume:
        raise BigsegError(f"{last} exists; pass --resume to continue that run, or set another 'out'")
    if resume and not last.exists():
        raise BigsegError(f"--resume: no checkpoint at {last}")
    refuse_overlap(out, "out", *[("training store", s) for s in cfg.train + cfg.val], ("model.init", cfg.model.init))
    resolve_epochs(cfg)
    classes = _classes(cfg)
    n_classes = len(classes)
    if isinstance(cfg.class_weights, list) and len(cfg.class_weights) != n_classes:
        raise BigsegError(f"class_weights has {len(cfg.class_weights)} entries for {n_classes} classes")
    if cfg.rare_class is not None and cfg.rare_class.class_id >= n_classes:
        raise BigsegError(f"rare_class.class_id {cfg.rare_class.class_id} is not a class (0..{n_classes - 1})")
    return classes, _device(cfg)


def class_weights(cfg: TrainConfig, n_classes: int, echo=print) -> list[float] | None:
    """The config's class weights; ``auto``: median-frequency balancing of the training stores' truth, said."""
    if cfg.class_weights != "auto":
        return cfg.class_weights
    from bigseg.train.sampler import balanced_weights, class_counts

    weights = balanced_weights(class_counts(cfg.train, n_classes))
    echo("class_weights: auto (median-frequency balancing of the training truth): "
         + ", ".join(f"{w:g}" for w in weights))
    return weights


def _setup(cfg: TrainConfig, classes, device, resume: bool, echo) -> _State:
    """The model (fresh, fine-tuned from model.init, or resumed from last.pt), optimizer and schedule."""
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    kwargs = model_kwargs(cfg)
    model = build(cfg.model.arch, len(classes), **kwargs)
    if cfg.model.init and not resume:
        _init_from(model, cfg, echo)
    model = model.to(device)
    opt = _optimizer(cfg, model)  # sets which parameters are trained (freeze)
    train_mode(model)
    sched = _schedule(cfg, opt)
    start, saved_ema = 0, None
    if resume:
        last = out / "last.pt"
        blob = ckpt.read(last)
        state = blob.get("train_state")
        if state is None:
            raise BigsegError(f"{last}: holds no training state (an inference-only checkpoint)")
        if blob["meta"]["arch"] != cfg.model.arch or [c["name"] for c in blob["meta"]["classes"]] != [
            c.name for c in classes
        ]:
            raise BigsegError(f"{last}: its architecture or classes differ from the config's")
        saved_kw = blob["meta"].get("arch_kwargs") or {}
        changed = sorted(k for k in set(saved_kw) | set(kwargs) if saved_kw.get(k) != kwargs.get(k))
        if changed:
            k = changed[0]
            raise BigsegError(f"{last}: the run was started with model.{k} {saved_kw.get(k)!r}, the config now says "
                              f"{kwargs.get(k)!r}; put it back to resume, or start a new run (another 'out')")
        saved_ema = state.get("ema")
        was = (blob["meta"].get("config") or {}).get("ema")
        if (saved_ema is None) != (cfg.ema is None):
            raise BigsegError(f"{last}: the run was started {'without' if saved_ema is None else 'with'} ema, the "
                              f"config now {'asks for it' if cfg.ema is not None else 'has none'}; put it as it was "
                              "to resume, or start a new run (another 'out')")
        if saved_ema is not None and was is not None and was != cfg.ema:
            raise BigsegError(f"{last}: the run was started with ema {was:g}, the config now says {cfg.ema:g}; put it "
                              "back to resume (the average so far is at that rate), or start a new run (another 'out')")
        model.load_state_dict(blob["state_dict"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["step"])
        echo(f"resuming {out} at iteration {start} of {cfg.iterations}")
    bf16, channels_last = training_mode(cfg.model.arch, device.type, cfg.amp)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    teacher = _teacher(cfg, classes, device) if cfg.distill else None
    ema = None
    if cfg.ema is not None:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        if saved_ema is not None:
            ema.load_state_dict(saved_ema)
        echo(f"keeping a moving average of the weights (decay {cfg.ema:g}) for model.pt; last.pt holds the raw ones")
    return _State(cfg, classes, device, model, opt, sched, start, out, kwargs, bf16, channels_last, teacher, ema)


def _teacher(cfg: TrainConfig, classes, device) -> torch.nn.Module:
    """distill's teacher: the checkpoint (its logit offset left out: the network as trained), frozen."""
    assert cfg.distill is not None
    model, meta = ckpt.load(cfg.distill.teacher)
    taught, own = [c.name for c in ckpt.classes_of(meta)], [c.name for c in classes]
    if taught != own:
        raise BigsegError(f"distill.teacher {cfg.distill.teacher}: classes {taught}, the run's are {own}")
    model.set_logit_offset(None)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval()


def _stores_without_labels(stores: list[str], ignore: int) -> list[str]:
    """The training stores whose truth holds no labelled pixel (read chunk by chunk, stopping at the first one)."""
    out = []
    for p in stores:
        truth = st.open_array(p, "truth")
        cy, cx = truth.chunks
        if not any((np.asarray(truth[y : y + cy, x : x + cx]) != ignore).any()
                   for y in range(0, truth.shape[0], cy) for x in range(0, truth.shape[1], cx)):
            out.append(str(p))
    return out


def _step(s: _State, loss_fn, image, truth) -> float:
    """One optimizer step; a non-finite loss stops the run (the last checkpoint stays)."""
    device = s.device
    image = image.to(device, non_blocking=True)
    truth = truth.to(device, non_blocking=True)
    if s.channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    if not bool((truth != s.cfg.ignore_label).any()):  # nothing to learn from (every loss leaves 255 out)
        empty = _stores_without_labels(s.cfg.train, s.cfg.ignore_label)
        raise BigsegError(
            f"{', '.join(empty)}: the truth has no labelled pixels (all {s.cfg.ignore_label}); import a mask with "
            "class ids" if empty else
            f"a batch of {len(truth)} crops held no labelled pixel at iteration {s.step} (the truth is mostly "
            f"unlabelled, {s.cfg.ignore_label}); raise crop or batch_size, or set rare_class")
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=s.bf16):
        logits = s.model(image)
        loss = loss_fn(logits.float(), truth)
        if s.teacher is not None:
            d = s.cfg.distill
            assert d is not None
            with torch.no_grad():
                taught = s.teacher(image)
            loss = loss + d.weight * distill(logits, taught, truth, s.cfg.ignore_label, d.where, d.temperature)
    if not torch.isfinite(loss):
        raise BigsegError(f"loss became {loss.item()} at iteration {s.step}; lower optimizer.lr")
    s.opt.zero_grad(set_to_none=True)
    loss.backward()
    s.opt.step()
    s.sched.step()
    if s.ema is not None:
        s.ema.update_parameters(s.model)
    s.step += 1
    return loss.item()


def _validation(s: _State, val_set, log, bar) -> dict:
    cfg, names = s.cfg, [c.name for c in s.classes]
    cm, sample = validate(s.kept, val_set, cfg.val_crops, len(names), cfg.ignore_label, s.device, cfg.amp)
    metrics = scores(cm, names).to_dict()
    log.scalars(s.step, {"val/mean_iou": metrics["mean_iou"], "val/pixel_accuracy": metrics["pixel_accuracy"],
                         **{f"val/iou_{k}": v for k, v in metrics["iou"].items() if v is not None}})
    log.images(s.step, "val/overlay", sample[0], sample[1], np.array([c.color for c in s.classes], np.uint8))
    bar.write(f"iteration {s.step}: val mean IoU {metrics['mean_iou']:.4f} "
              + " ".join(f"{k} {v:.4f}" for k, v in metrics["iou"].items() if v is not None))
    return metrics


def train(cfg: TrainConfig, resume: bool = False, stop_at: int | None = None, echo=print, progress=True,
          time_limit: float | None = None) -> TrainResult:
    """Train per ``cfg``; returns a summary. ``stop_at``: checkpoint and stop after that many iterations;
    ``time_limit``: checkpoint and stop after that many seconds (``--resume`` continues either way).

    Everything that can be checked is checked before the run folder is made; a run that fails before its first
    checkpoint removes the folder it made."""
    import shutil

    if cfg.stages:
        return _train_stages(cfg, resume, stop_at, echo, progress, time_limit)
    if stop_at is not None and stop_at < 1:
        raise BigsegError(f"--stop-at must be at least 1 iteration, got {stop_at}")
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
        raise BigsegError(f"--time-limit must be a positive number of seconds, got {time_limit}")
    classes, device = _checked(cfg, resume)
    out = Path(cfg.out)
    created = not out.exists()
    s = _setup(cfg, classes, device, resume, echo)
    end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    try:
        out.mkdir(parents=True, exist_ok=True)
        loader, val_set = _loader(cfg, s.step, end, len(classes), device)
        loss_fn = build_loss(cfg.loss, cfg.ignore_label, class_weights(cfg, len(classes), echo), device)
        log = _Log(out)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    bar = make_bar(end - s.step, "train", "it", enabled=progress)
    losses, metrics = [], None
    t0 = time.perf_counter()
    try:
        for image, truth in loader:
            losses.append(_step(s, loss_fn, image, truth))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            log.scalars(s.step, {"loss": losses[-1], "lr": s.sched.get_last_lr()[0]})
            out_of_time = time_limit is not None and time.perf_counter() - t0 > time_limit
            if s.step % cfg.checkpoint_every == 0 or s.step == end or out_of_time:
                s.save(out / "last.pt", True)
            if out_of_time:
                bar.write(f"time limit of {time_limit:g} s reached at iteration {s.step}; continue with --resume")
                break
            if val_set is not None and (s.step % cfg.val_every == 0 or s.step == cfg.steps):
                metrics = _validation(s, val_set, log, bar)
    except BaseException:
        if created and not (out / "last.pt").exists():
            shutil.rmtree(out, ignore_errors=True)  # nothing worth keeping: a failure before the first checkpoint
        raise
    finally:
        bar.close()
        log.close()
    if s.step == cfg.steps:
        s.save(out / "model.pt", False)
    seconds = time.perf_counter() - t0
    done = s.step == cfg.steps
    return TrainResult(out=str(out), iterations=s.step, of=cfg.steps, seconds=seconds,
                       first_loss=losses[0] if losses else None,
                       last_loss=float(np.mean(losses[-10:])) if losses else None, val=metrics,
                       model=str(out / "model.pt") if done else None,
                       it_per_second=(len(losses) / seconds) if seconds > 0 and losses else math.nan)


def _stage_config(cfg: TrainConfig, k: int, init: str | None) -> TrainConfig:
    """Stage ``k`` (from 1) of a staged config as a plain config: its own iterations, crop, batch, learning
    rates and frozen parts, initialised from the stage before (``init``), written to OUT/stage-K."""
    stage = cfg.stages[k - 1]
    derived = cfg.model_copy(deep=True)
    derived.stages = []
    derived.iterations = stage.iterations
    derived.out = str(Path(cfg.out) / f"stage-{k}")
    derived.model.init = init
    for key in ("crop", "batch_size", "encoder_lr", "freeze"):
        if getattr(stage, key) is not None:
            setattr(derived, key, getattr(stage, key))
    if stage.lr is not None:
        derived.optimizer.lr = stage.lr
    return derived


def _train_stages(cfg: TrainConfig, resume: bool, stop_at: int | None, echo, progress,
                  time_limit: float | None) -> TrainResult:
    """A staged run: each stage is a run of its own in OUT/stage-K, started from the stage before's model; a
    finished stage is skipped on --resume, the one in progress resumes bit for bit; OUT/model.pt is the last
    stage's model once every stage is done."""
    import shutil

    out = Path(cfg.out)
    started = (out / "stage-1").exists()
    if started and not resume:
        raise BigsegError(f"{out / 'stage-1'} exists; pass --resume to continue that staged run, or set another 'out'")
    if resume and not started:
        raise BigsegError(f"--resume: no staged run at {out} (no stage-1)")
    if stop_at is not None and stop_at < 1:
        raise BigsegError(f"--stop-at must be at least 1 iteration, got {stop_at}")
    t0, done, init = time.perf_counter(), 0, cfg.model.init
    first_loss, r = None, None
    for k, stage in enumerate(cfg.stages, start=1):
        sub = _stage_config(cfg, k, init)
        model = Path(sub.out) / "model.pt"
        if model.exists():
            done, init = done + stage.iterations, str(model)
            continue
        if stop_at is not None and stop_at <= done:
            break
        left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            break
        echo(f"stage {k} of {len(cfg.stages)}: {stage.iterations} iterations, crop {sub.crop}, "
             f"lr {sub.optimizer.lr:g}" + (f", encoder lr {sub.encoder_lr:g}" if sub.encoder_lr else "")
             + (f", frozen: {', '.join(sub.freeze)}" if sub.freeze else ""))
        r = train(sub, resume=(Path(sub.out) / "last.pt").exists(), echo=echo, progress=progress,
                  stop_at=None if stop_at is None else stop_at - done, time_limit=left)
        first_loss = r.first_loss if first_loss is None else first_loss
        if r.model is None:  # stopped inside this stage (--stop-at, --time-limit)
            done += r.iterations
            break
        done, init = done + stage.iterations, r.model
    complete = done == cfg.steps
    if complete:
        assert init is not None  # the last stage's model
        shutil.copyfile(init, out / "model.pt")
    seconds = time.perf_counter() - t0
    return TrainResult(out=str(out), iterations=done, of=cfg.steps, seconds=seconds, first_loss=first_loss,
                       last_loss=r.last_loss if r else None, val=r.val if r else None,
                       model=str(out / "model.pt") if complete else None,
                       it_per_second=r.it_per_second if r else math.nan)
