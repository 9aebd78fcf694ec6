"""Quantization-aware fine-tuning before an int8 export (``bigseg export --int8 --qat STORE``; issue #34).

Post-training quantization (ONNX Runtime, static, QDQ) rounds each convolution's weights -- with its batch norm
folded in -- to 129 steps per output channel (7 bits: ``reduce_range``), and the activations between operations
to 256 steps over the range they took on calibration windows. Where that moves too many labels, the model can
learn weights that survive the rounding: this module simulates that arithmetic in PyTorch and fine-tunes the
network through it.

- **Weights**: each ``Conv2d``'s weight, folded with the batch norm that follows it (found in the traced graph),
  is rounded per output channel, symmetric, to [-64, 64] x max|w| / 64 -- ONNX Runtime's ``WeightSymmetric``
  per-channel rule -- and unfolded again, so the batch norm (frozen: running statistics) sees weights on the
  7-bit grid. Gradients pass the rounding straight through.
- **Activations**: what ONNX Runtime rounds -- a convolution's output (after its batch norm and ReLU), sums,
  products, concatenations, resizing, pooling, activations; never the logits -- is rounded to uint8 over
  [min(0, lo), max(0, hi)], ``lo``/``hi`` the smallest and largest value seen on the calibration windows (ONNX
  Runtime's MinMax calibration) and on the training batches since (ranges only grow).
- **Target**: the original network's own logits (distillation): the int8 model is to give *the fp32 model's*
  labels, not to learn anything new, so no truth mask is needed and the stores only lend their images.

After training the weights are left *on the grid* (folded-and-rounded, then unfolded), so the int8 export that
follows quantizes them to the same integers; the export then checks its labels against the *original* fp32
model, like any int8 export.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch.nn.utils import parametrize

from bigseg.errors import BigsegError

WEIGHT_LEVELS = 64  # symmetric 7-bit weights, [-64, 64]: ONNX Runtime's WeightSymmetric per-channel range with
# reduce_range, which the export uses -- full 8-bit weights saturate the 16-bit sums of CPUs without VNNI (AVX2 only,
# e.g. AMD EPYC before Zen 4): there the same export moved 1.03 % of a test model's labels, against < 1 % with VNNI
ACTIVATION_LEVELS = 255  # asymmetric uint8 activations: [0, 255]


@dataclass
class QatRecord:
    """What a quantization-aware fine-tune did (stored in the int8 export's metadata, ``verified.qat``)."""

    steps: int
    lr: float
    crop: int
    batch: int
    seed: int
    stores: list[str]
    convolutions: int  # convolutions trained through the int8 simulation
    folded_batch_norms: int  # of them, those with a batch norm folded into their weights
    seconds: float
    distillation_loss: dict[str, float] = field(default_factory=dict)  # first and last 20 steps' logit MSE

    def to_dict(self) -> dict:
        return {**asdict(self), "seconds": round(self.seconds, 1)}


ROUNDED_MODULES = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.ReLU, torch.nn.ReLU6, torch.nn.Hardswish,
                   torch.nn.Hardsigmoid, torch.nn.Sigmoid, torch.nn.AdaptiveAvgPool2d, torch.nn.AvgPool2d,
                   torch.nn.MaxPool2d, torch.nn.Upsample)
ROUNDED_FUNCTIONS = {"interpolate", "cat", "add", "iadd", "mul", "imul", "relu", "relu_", "hardswish",
                     "hardsigmoid", "sigmoid", "adaptive_avg_pool2d", "avg_pool2d", "max_pool2d"}
"""What ONNX Runtime's QDQ quantization rounds: the outputs of convolutions (with their batch norm and ReLU
fused), additions, products, concatenations, resizing, pooling and activations."""
FUSED = (torch.nn.BatchNorm2d, torch.nn.ReLU, torch.nn.ReLU6)
DATA_FUNCTIONS = {"add", "iadd", "mul", "imul", "cat", "sub", "truediv"}  # every argument carries data


def _name(node) -> str:
    return getattr(node.target, "__name__", str(node.target))


def _rounded(node, modules) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], ROUNDED_MODULES)
    return node.op in ("call_function", "call_method") and _name(node) in ROUNDED_FUNCTIONS


def _fuses_into_next(node, modules) -> bool:
    """A convolution (or its batch norm) whose only user is a batch norm or a ReLU: rounded after those."""
    users = list(node.users)
    if len(users) != 1 or node.op != "call_module":
        return False
    user = users[0]
    if user.op == "call_module":
        return isinstance(modules[user.target], FUSED)
    return user.op in ("call_function", "call_method") and _name(user) in ("relu", "relu_")


def _makes_logits(graph, modules) -> set:
    """The nodes from the last convolutions to the output (:func:`bigseg.export.logit_nodes` keeps them float)."""
    found: set = set()
    stack = [n for n in graph.nodes if n.op == "output"]
    while stack:
        node = stack.pop()
        if node in found:
            continue
        found.add(node)
        if node.op == "call_module" and isinstance(modules[node.target], torch.nn.Conv2d):
            continue
        data = node.all_input_nodes if node.op == "output" or _name(node) in DATA_FUNCTIONS else node.args[:1]
        stack.extend(a for a in data if isinstance(a, fx.Node))
    return found


def _trace(model):
    try:
        return fx.symbolic_trace(model)
    except Exception as e:  # a model fx cannot trace: say so, rather than quantize it blind
        raise BigsegError(f"--qat: the model cannot be traced to find its convolutions "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def conv_batchnorm_pairs(model, graph=None) -> list[tuple]:
    """Each ``Conv2d`` of ``model`` with the ``BatchNorm2d`` that takes its output alone (None where none does),
    read from the traced graph (torch.fx), not guessed from module order: ``[(conv, bn or None), ...]``."""
    graph = graph if graph is not None else _trace(model)
    modules = dict(graph.named_modules())
    pairs = []
    for node in graph.graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], torch.nn.Conv2d):
            continue
        users, bn = list(node.users), None
        if len(users) == 1 and users[0].op == "call_module" and isinstance(modules[users[0].target],
                                                                         torch.nn.BatchNorm2d):
            bn = modules[users[0].target]
        pairs.append((modules[node.target], bn))
    return pairs


def _fold_scale(bn):
    """Per output channel, what the (frozen) batch norm multiplies the convolution's output by; never zero."""
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    tiny = 1e-8
    return torch.where(s.abs() < tiny, torch.full_like(s, tiny), s)


def round_weight(weight, bn=None):
    """``weight`` as the int8 export will hold it: folded with ``bn``, rounded per output channel to the symmetric
    int8 grid, unfolded. Differentiable (straight-through)."""
    s = _fold_scale(bn).view(-1, 1, 1, 1) if bn is not None else None
    folded = weight * s if s is not None else weight
    step = (folded.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / WEIGHT_LEVELS).float()
    zero = torch.zeros(step.shape, dtype=torch.int32)
    q = torch.fake_quantize_per_channel_affine(folded, step, zero, 0, -WEIGHT_LEVELS, WEIGHT_LEVELS)
    return q / s if s is not None else q


class RoundedWeight(torch.nn.Module):
    """A parametrization (torch.nn.utils.parametrize) rounding a convolution's weight as the export will."""

    def __init__(self, bn):
        super().__init__()
        self._bn = [bn]  # a reference, not a submodule: the batch norm stays where the model has it

    def forward(self, weight):
        return round_weight(weight, self._bn[0])


class _Round(torch.nn.Module):
    """A tensor rounded to uint8 over the range it has taken so far (first on the calibration windows, then on
    every training batch: the range only grows, so the network cannot learn to lean on a clipping that the
    export's own calibration would not reproduce)."""

    def __init__(self):
        super().__init__()
        self.lo, self.hi, self.rounding = 0.0, 0.0, False

    def forward(self, x):
        self.lo = min(self.lo, float(x.detach().min()))
        self.hi = max(self.hi, float(x.detach().max()))
        if not self.rounding:
            return x
        step = max((self.hi - self.lo) / ACTIVATION_LEVELS, 1e-12)
        zero = int(min(max(round(-self.lo / step), 0), ACTIVATION_LEVELS))
        return torch.fake_quantize_per_tensor_affine(x, step, zero, 0, ACTIVATION_LEVELS)


class Int8Simulation:
    """A copy of ``model`` that computes as its int8 export will: weights on the int8 grid (folded with their
    batch norms, which stay frozen), and what ONNX Runtime rounds (:data:`ROUNDED_MODULES`,
    :data:`ROUNDED_FUNCTIONS`; a convolution's output after its batch norm and ReLU; never the logits) rounded to
    uint8 over the ranges seen on ``calibration`` (float NCHW windows in [0, 1]) and since. ``model`` is the
    traced copy with the roundings in its graph; ``finish()`` returns the copy without them, its weights left on
    the grid as plain parameters."""

    def __init__(self, model, calibration: list[np.ndarray]):
        self._copy = copy.deepcopy(model).eval()  # eval: frozen batch norms, their folded form is what is rounded
        graph = _trace(self._copy)  # shares the copy's modules: what trains through it trains the copy
        self.pairs = conv_batchnorm_pairs(self._copy, graph)
        modules = dict(graph.named_modules())
        logits = _makes_logits(graph.graph, modules)
        self.roundings: list[_Round] = []
        for node in list(graph.graph.nodes):
            if node in logits or not _rounded(node, modules) or _fuses_into_next(node, modules):
                continue
            with graph.graph.inserting_after(node):
                rounded = graph.graph.call_module(self._new_rounding(graph), (node,))
            node.replace_all_uses_with(rounded, delete_user_cb=lambda user, r=rounded: user is not r)
        first = next(n for n in graph.graph.nodes if n.op == "call_module"
                     and isinstance(modules.get(n.target), torch.nn.Conv2d))
        with graph.graph.inserting_before(first):  # the image, normalised, into the first convolution
            rounded = graph.graph.call_module(self._new_rounding(graph), (first.args[0],))
        first.replace_input_with(first.args[0], rounded)
        graph.recompile()
        self.model = graph
        with torch.no_grad():  # ranges of the float model, as ONNX Runtime's calibration measures them
            for x in calibration:
                self.model(torch.from_numpy(x))
        for conv, bn in self.pairs:
            parametrize.register_parametrization(conv, "weight", RoundedWeight(bn))
        for r in self.roundings:
            r.rounding = True

    def _new_rounding(self, graph) -> str:
        name = f"int8_round_{len(self.roundings)}"
        self.roundings.append(_Round())
        graph.add_submodule(name, self.roundings[-1])
        return name

    def finish(self):
        """The copy, trained, without the simulation: weights left on the grid (the export rounds them to the
        same integers)."""
        with torch.no_grad():
            for conv, _ in self.pairs:
                parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
        return self._copy


def _crops(pool: list[np.ndarray], rng: np.random.Generator, batch: int, crop: int):
    """A batch of random ``crop``² crops, randomly mirrored, from the pool of uint8 HWC windows."""
    out = []
    for _ in range(batch):
        w = pool[int(rng.integers(len(pool)))]
        h, wd = w.shape[:2]
        c = min(crop, h, wd)
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, wd - c + 1))
        a = w[y : y + c, x : x + c]
        if rng.random() < 0.5:
            a = a[:, ::-1]
        if rng.random() < 0.5:
            a = a[::-1]
        out.append(np.ascontiguousarray(a.transpose(2, 0, 1)))
    return torch.from_numpy(np.stack(out)).float() / 255.0


def qat_finetune(model, pool: list[np.ndarray], calibration: list[np.ndarray], *, steps: int = 300,
                 lr: float = 1e-5, batch: int = 4, crop: int = 256, seed: int = 0, stores=(), echo=print):
    """Fine-tune a copy of ``model`` through the int8 simulation to give ``model``'s own logits.

    ``pool``: uint8 HWC windows to draw training crops from; ``calibration``: float NCHW windows in [0, 1] (the
    export's calibration windows) on which the activation ranges are observed first. Returns the fine-tuned copy,
    its weights left on the int8 grid, and a :class:`QatRecord`."""
    if steps < 1:
        raise BigsegError(f"--qat-steps must be at least 1, got {steps}")
    if not pool:
        raise BigsegError("--qat: no windows to train on (the stores gave none)")
    teacher = model.eval()
    sim = Int8Simulation(model, calibration)
    student = sim.model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    start = time.monotonic()
    every = max(steps // 5, 1)
    for step in range(steps):
        x = _crops(pool, rng, batch, crop)
        with torch.no_grad():
            target = teacher(x)
        loss = F.mse_loss(student(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % every == 0 or step + 1 == steps:
            echo(f"quantization-aware fine-tune: step {step + 1}/{steps}, distillation loss "
                 f"{np.mean(losses[-every:]):.4f}")

    student = sim.finish()
    n = min(20, len(losses))
    record = QatRecord(steps=steps, lr=lr, crop=crop, batch=batch, seed=seed, stores=[str(s) for s in stores],
                       convolutions=len(sim.pairs), folded_batch_norms=sum(bn is not None for _, bn in sim.pairs),
                       seconds=time.monotonic() - start,
                       distillation_loss={"first": round(float(np.mean(losses[:n])), 5),
                                          "last": round(float(np.mean(losses[-n:])), 5)})
    return student, record
