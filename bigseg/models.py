"""Model registry: every architecture maps float RGB in [0, 1], shape (B, 3, H, W), to logits (B, C, H, W).

Normalisation (mean/std) lives inside the model, so a checkpoint or an exported file is self-contained.
Weights are never downloaded: torchvision models are built with ``weights=None``; pretrained backbones are
used only when torchvision already has them cached (see :func:`build`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bigseg.architectures import ARCHITECTURES, deeplabv3plus_option_error
from bigseg.errors import BigsegError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalized(nn.Module):
    """Wraps a network: takes RGB in [0, 1], reorders the channels for a network trained on BGR (OpenCV),
    normalises, unwraps torchvision's {'out': ...} dicts, and (``refine``) corrects the logits' boundaries at
    full resolution from the image (:class:`EdgeRefine`)."""

    mean: torch.Tensor
    std: torch.Tensor
    logit_offset: torch.Tensor | None

    def __init__(self, net: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD, bgr: bool = False,
                 refine: nn.Module | None = None):
        super().__init__()
        self.net = net
        self.bgr = bool(bgr)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.refine = refine
        self.register_buffer("logit_offset", None, persistent=False)

    def set_logit_offset(self, offset) -> None:
        """Add ``offset`` (one value per class) to every logit this model returns; None or all zeros: nothing, and
        the graph (an ONNX export's too) is the one without. Kept in a checkpoint's metadata (``logit_offset``),
        not in its weights: :func:`bigseg.checkpoint.load` sets it."""
        if offset is None or not any(float(v) for v in offset):
            self.logit_offset = None
            return
        values = [float(v) for v in offset]
        if not all(map(math.isfinite, values)):
            raise BigsegError(f"a logit offset must be finite numbers, got {offset!r}")
        self.logit_offset = torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x
        if self.bgr:
            x = x.flip(1)  # the network's channel order (mean and std are in that order too)
        out = self.net((x - self.mean) / self.std)
        out = out["out"] if isinstance(out, dict) else out
        out = self.refine(out, rgb) if self.refine is not None else out
        if self.logit_offset is not None:
            out = out + self.logit_offset.to(out.dtype)
        return out


def _conv_bn(cin, cout, stride=1, kernel=3):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class EdgeRefine(nn.Module):
    """A full-resolution residual correction of upsampled logits from the input image.

    Two 3x3 convolutions over (logits, RGB) at the input's resolution move class boundaries onto the image's
    edges, which logits upsampled from half resolution place only to within a pixel or two. The last convolution
    starts at zero, so a model fine-tuned from one without the head starts from exactly its predictions.
    """

    def __init__(self, num_classes: int, hidden: int = 8):
        super().__init__()
        self.mix = _conv_bn(num_classes + 3, hidden)
        self.out = nn.Conv2d(hidden, num_classes, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        assert self.out.bias is not None
        nn.init.zeros_(self.out.bias)

    def forward(self, logits, image):
        return logits + self.out(self.mix(torch.cat([logits, image], dim=1)))


class LightUNet(nn.Module):
    """A small U-Net for real-time CPU inference (~0.6 M parameters at width 16).

    A stride-2 stem, then four stride-2 stages (receptive field ~200 px), nearest upsampling with skip
    connections back to half resolution, and logits upsampled bilinearly to the input size: the half-resolution
    trunk costs a quarter of a full-resolution one, and voids a few pixels across are still resolved. With
    ``refine`` an :class:`EdgeRefine` head corrects the boundaries at full resolution (~15 % more CPU time).
    """

    def __init__(self, num_classes: int, width: int = 16, refine: bool = False, refine_hidden: int = 8):
        super().__init__()
        c = [width, width * 2, width * 4, width * 8]
        self.stem = nn.Sequential(_conv_bn(3, c[0], 2), _conv_bn(c[0], c[0]))
        self.down = nn.ModuleList(
            [nn.Sequential(_conv_bn(c[i], c[i + 1], 2), _conv_bn(c[i + 1], c[i + 1])) for i in range(3)]
        )
        self.bottom = nn.Sequential(_conv_bn(c[3], c[3], 2), _conv_bn(c[3], c[3]))
        self.up = nn.ModuleList([_conv_bn(c[i] + c[min(i + 1, 3)], c[i]) for i in range(3, -1, -1)])
        self.head = nn.Conv2d(c[0], num_classes, 1)
        self.refine = EdgeRefine(num_classes, refine_hidden) if refine else None

    def forward(self, x):
        size = x.shape[-2:]
        skips = [self.stem(x)]
        for d in self.down:
            skips.append(d(skips[-1]))
        y = self.bottom(skips[-1])
        for up, skip in zip(self.up, reversed(skips), strict=True):
            y = nn.functional.interpolate(y, size=skip.shape[-2:], mode="nearest")
            y = up(torch.cat([y, skip], dim=1))
        logits = nn.functional.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)
        return self.refine(logits, x) if self.refine is not None else logits


class DeepLabV3Plus(nn.Module):
    """DeepLabV3 on MobileNetV3-Large (dilated, ASPP at stride 16) with DeepLabV3+'s decoder: the ASPP features,
    brought to stride 4, are joined with the backbone's stride-4 features before the classifier.

    DeepLabV3 alone classifies at stride 16, where a 100 µm air void at 10 µm pixels is under one feature pixel;
    the stride-4 skip gives the classifier the void's edges back (the DeepLabV3+ paper's reason for the decoder).
    The decoder is narrow (64 channels) so that it adds little to a CPU step.

    ``output_stride`` 8 keeps the stride-16 stage at stride 8 too (its depthwise convolutions dilated 2, the last
    stage's 4, as the DeepLab papers do): the same weights, ASPP on 4x the feature pixels (a training step costs
    ~3.3x on one core, measured 2026-12-06).

    ``decoder_stride`` 2 adds a second, narrow decoder step at stride 2: the stride-4 decoder's features, brought to
    stride 2, joined with MobileNet's first block (16 channels at stride 2), and a residual on the logits whose
    last convolution starts at zero -- a stride-4 checkpoint loads unchanged and starts from exactly its answers."""

    def __init__(self, num_classes: int, pretrained_backbone: bool = False, width: int = 64, output_stride: int = 16,
                 decoder_stride: int = 4):
        super().__init__()
        from torchvision.models import mobilenet_v3_large
        from torchvision.models.segmentation.deeplabv3 import ASPP

        if output_stride not in (8, 16):
            raise BigsegError(f"output_stride must be 8 or 16, got {output_stride}")
        weights = _cached_backbone_weights("deeplabv3_mobilenet_v3_large") if pretrained_backbone else None
        features = mobilenet_v3_large(weights=weights, dilated=True).features
        if output_stride == 8:
            _dilate_from(features, first=7, last_stage=13)
        self.low = features[:4]  # stride 4, 24 channels
        self.high = features[4:]  # stride 16 (8 at output_stride 8; the last stage dilated), 960 channels
        self.aspp = ASPP(960, [12, 24, 36])  # 256 channels, as torchvision's DeepLabHead
        self.reduce_high = _conv_bn(256, width)
        self.reduce_low = _conv_bn(24, width // 2)
        self.decoder = nn.Sequential(nn.Conv2d(width + width // 2, width, 3, padding=1, bias=False),
                                     nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                     nn.Conv2d(width, width, 3, padding=1, bias=False),
                                     nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                     nn.Conv2d(width, num_classes, 1))
        self.fine: FineDecoder | None = FineDecoder(width, 16, num_classes) if decoder_stride == 2 else None

    def forward(self, x):
        size = x.shape[-2:]
        half = self.low[1](self.low[0](x))  # stride 2, 16 channels
        low = self.low[3](self.low[2](half))  # stride 4, 24 channels
        high = self.reduce_high(self.aspp(self.high(low)))
        high = nn.functional.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        features = torch.cat([high, self.reduce_low(low)], dim=1)
        *layers, classify = self.decoder  # the registered layers one by one (a slice would be a new, unnamed module)
        for layer in layers:
            features = layer(features)
        logits = nn.functional.interpolate(classify(features), size=size, mode="bilinear", align_corners=False)
        if self.fine is None:
            return logits
        return logits + nn.functional.interpolate(self.fine(features, half), size=size, mode="bilinear",
                                                  align_corners=False)


class FineDecoder(nn.Module):
    """DeepLabV3+'s decoder taken one step further, to stride 2: the stride-4 decoder's features (narrowed to 16
    channels, then upsampled) beside the backbone's stride-2 features, two 3x3 convolutions of 24 channels, and a
    correction of the logits whose last convolution starts at zero (~0.5 GMAC a 384² crop)."""

    def __init__(self, width: int, half_channels: int, num_classes: int, hidden: int = 24):
        super().__init__()
        self.narrow = _conv_bn(width, 16, kernel=1)
        self.skip = _conv_bn(half_channels, 16, kernel=1)
        self.mix = nn.Sequential(_conv_bn(32, hidden), _conv_bn(hidden, hidden))
        self.out = nn.Conv2d(hidden, num_classes, 1)
        nn.init.zeros_(self.out.weight)
        assert self.out.bias is not None
        nn.init.zeros_(self.out.bias)

    def forward(self, features, half):
        up = nn.functional.interpolate(self.narrow(features), size=half.shape[-2:], mode="bilinear",
                                       align_corners=False)
        return self.out(self.mix(torch.cat([up, self.skip(half)], dim=1)))


def _dilate_from(features: nn.Sequential, first: int, last_stage: int) -> None:
    """MobileNetV3's blocks from ``first`` (the one that halves the resolution to stride 16) kept at stride 8: its
    depthwise convolution no longer strides, the blocks after it dilate 2, those from ``last_stage`` (already
    dilated 2 by torchvision's ``dilated=True``) dilate 4; paddings follow, so every map keeps its size."""
    for index in range(first, len(features)):
        for conv in features[index].modules():
            if isinstance(conv, nn.Conv2d) and conv.groups > 1:  # the depthwise convolution of an inverted residual
                rate = 1 if index == first else (4 if index >= last_stage else 2)
                k = conv.kernel_size[0]
                conv.stride, conv.dilation, conv.padding = (1, 1), (rate, rate), (rate * (k - 1) // 2,) * 2


class _ResNetEncoder(nn.Module):
    """torchvision's ResNet-18/34 as five feature maps: stem at stride 2, pool + layer1 at 4, layer2 at 8, layer3
    at 16, layer4 at 32; ImageNet weights only where torchvision's cache already holds them."""

    def __init__(self, depth: int, pretrained_backbone: bool):
        super().__init__()
        from torchvision.models import ResNet18_Weights, ResNet34_Weights, resnet18, resnet34

        builder, weights = {18: (resnet18, ResNet18_Weights.IMAGENET1K_V1),
                            34: (resnet34, ResNet34_Weights.IMAGENET1K_V1)}[depth]
        net = builder(weights=_cached_weights(weights) if pretrained_backbone else None)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.e1, self.e2, self.e3, self.e4 = nn.Sequential(net.maxpool, net.layer1), net.layer2, net.layer3, net.layer4

    def forward(self, x):
        s = self.stem(x)
        e1 = self.e1(s)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        return s, e1, e2, e3, self.e4(e3)


def _up_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` resized (bilinear) to ``like``'s height and width: any input size works, no padding to 32."""
    return nn.functional.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class _LinkDecoder(nn.Module):
    """LinkNet's decoder block: 1x1 to a quarter of the channels, upsampling with a 3x3 convolution, 1x1 out."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cin // 4
        self.reduce = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True))
        self.conv = _conv_bn(mid, mid)
        self.expand = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x, like):
        return self.expand(self.conv(_up_to(self.reduce(x), like)))


class LinkNet(nn.Module):
    """LinkNet (Chaurasia & Culurciello 2017) on a ResNet-18 encoder: each decoder block's output is *added* to the
    encoder features of its scale, which keeps it light enough for real time. Upsampling is bilinear to the skip's
    exact size followed by a 3x3 convolution (the paper uses transposed convolutions), so any window size works."""

    def __init__(self, num_classes: int, pretrained_backbone: bool = False):
        super().__init__()
        self.encoder = _ResNetEncoder(18, pretrained_backbone)
        self.d4, self.d3, self.d2, self.d1 = (_LinkDecoder(512, 256), _LinkDecoder(256, 128),
                                              _LinkDecoder(128, 64), _LinkDecoder(64, 64))
        self.head = nn.Sequential(_conv_bn(64, 32), nn.Conv2d(32, num_classes, 1))

    def forward(self, x):
        s, e1, e2, e3, e4 = self.encoder(x)
        d = self.d4(e4, e3) + e3
        d = self.d3(d, e2) + e2
        d = self.d2(d, e1) + e1
        d = self.d1(d, s)
        return _up_to(self.head(d), x)


class ResNetUNet(nn.Module):
    """A U-Net on a ResNet-34 encoder (fastai's ``unet_learner(resnet34)`` shape, the CamVid recipe): at each scale
    the upsampled decoder features are concatenated with the encoder's and convolved twice; a last block at full
    resolution sees the input image too (thin structures such as void rims)."""

    def __init__(self, num_classes: int, pretrained_backbone: bool = False):
        super().__init__()
        self.encoder = _ResNetEncoder(34, pretrained_backbone)

        def block(cin, cout):
            return nn.Sequential(_conv_bn(cin, cout), _conv_bn(cout, cout))

        self.u3, self.u2, self.u1 = block(512 + 256, 256), block(256 + 128, 128), block(128 + 64, 64)
        self.u0 = block(64 + 64, 64)
        self.full = block(64 + 3, 32)
        self.head = nn.Conv2d(32, num_classes, 1)

    def forward(self, x):
        s, e1, e2, e3, e4 = self.encoder(x)
        d = self.u3(torch.cat([_up_to(e4, e3), e3], 1))
        d = self.u2(torch.cat([_up_to(d, e2), e2], 1))
        d = self.u1(torch.cat([_up_to(d, e1), e1], 1))
        d = self.u0(torch.cat([_up_to(d, s), s], 1))
        return self.head(self.full(torch.cat([_up_to(d, x), x], 1)))


_TORCHVISION = {
    "deeplabv3_resnet50": ("deeplabv3_resnet50", "resnet50"),
    "deeplabv3_resnet101": ("deeplabv3_resnet101", "resnet101"),
    "deeplabv3_mobilenet_v3_large": ("deeplabv3_mobilenet_v3_large", "mobilenet_v3_large"),
    "lraspp_mobilenet_v3_large": ("lraspp_mobilenet_v3_large", "mobilenet_v3_large"),
    "fcn_resnet50": ("fcn_resnet50", "resnet50"),
    "fcn_resnet101": ("fcn_resnet101", "resnet101"),
}


def _torchvision(name: str, num_classes: int, pretrained_backbone: bool):
    from torchvision.models import segmentation as seg

    builder = getattr(seg, _TORCHVISION[name][0])
    kwargs = {"weights": None, "num_classes": num_classes}
    if not name.startswith("lraspp"):
        kwargs["aux_loss"] = False
    kwargs["weights_backbone"] = _cached_backbone_weights(name) if pretrained_backbone else None
    return builder(**kwargs)


def _cached_backbone_weights(name: str):
    """ImageNet backbone weights if torchvision's cache already holds them, else a clear error (no download)."""

    from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights, ResNet101_Weights

    weights = {"resnet50": ResNet50_Weights.IMAGENET1K_V1, "resnet101": ResNet101_Weights.IMAGENET1K_V1,
               "mobilenet_v3_large": MobileNet_V3_Large_Weights.IMAGENET1K_V1}[_TORCHVISION[name][1]]
    return _cached_weights(weights, name)


def _cached_weights(weights, name: str | None = None):
    """``weights`` (a torchvision weights enum) if torch's cache already holds the file, else a clear error."""
    import os

    from torch.hub import get_dir

    cached = os.path.join(get_dir(), "checkpoints", os.path.basename(weights.url))
    if not os.path.exists(cached):
        raise BigsegError(
            f"pretrained backbone{' for ' + name if name else ''} is not in torch's cache ({cached}) and bigseg "
            f"never downloads; copy the file there or set model.pretrained_backbone: false"
        )
    return weights


ENCODERS = {
    "light_unet": ("net.stem.", "net.down.", "net.bottom."),
    "deeplabv3plus_mobilenet_v3_large": ("net.low.", "net.high."),
    "linknet_resnet18": ("net.encoder.",),
    "unet_resnet34": ("net.encoder.",),
}
"""Per architecture, the parameter-name prefixes of its encoder (``freeze: [encoder]``, ``encoder_lr`` in a
training config); torchvision's segmentation models keep theirs under ``net.backbone.``."""


def encoder_prefixes(arch: str) -> tuple[str, ...]:
    return ENCODERS.get(arch, ("net.backbone.",))


CPU_TRAINING = {  # measured: benchmarks/train_speed.py, RESULTS.md "Training speed on this CPU" (2026-12-02)
    "light_unet": ("bf16", True),  # 0.22 s -> 0.10 s per step of 4 x 384², bf16 + channels_last
    "lraspp_mobilenet_v3_large": ("bf16", False),  # 0.74 s -> 0.65 s
    "deeplabv3_mobilenet_v3_large": ("bf16", False),  # 1.18 s -> 0.84 s (channels_last: 0.88 s)
    "deeplabv3plus_mobilenet_v3_large": ("bf16", False),  # the same trunk; 1.17 s vs DeepLabV3's 1.13 s, bf16
    "deeplabv3_resnet50": ("bf16", False),  # 10.1 s -> 6.9 s
    "linknet_resnet18": ("bf16", False),  # 0.85 s -> 0.46 s (2026-12-03)
    "unet_resnet34": ("bf16", False),  # 3.14 s -> 1.85 s (2026-12-03)
}
"""Per architecture, the fastest training step on a CPU with bf16 hardware (AVX512-BF16/AMX) that keeps the
labels: (precision, channels_last). Architectures not listed train in fp32, NCHW."""


def cpu_bf16_supported() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (else autocast to bf16 is emulated, and slower)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def training_mode(arch: str, device_type: str, allow_bf16: bool = True) -> tuple[bool, bool]:
    """(bf16 autocast, channels_last) for training ``arch`` on ``device_type``: bf16 + channels_last on CUDA; on
    a CPU what :data:`CPU_TRAINING` measured fastest, bf16 only where the hardware has it."""
    if device_type == "cuda":
        return allow_bf16, True
    precision, channels_last = CPU_TRAINING.get(arch, ("fp32", False))
    bf16 = allow_bf16 and precision == "bf16" and cpu_bf16_supported()
    return bf16, channels_last and bf16


def _triple(values, what: str) -> tuple[float, float, float]:
    v = [float(x) for x in (values if isinstance(values, list | tuple) else [values])]
    if len(v) == 1:
        v = v * 3
    if len(v) != 3 or not all(map(math.isfinite, v)):
        raise BigsegError(f"{what} needs one value or three finite values, got {values!r}")
    return v[0], v[1], v[2]


def build(arch: str, num_classes: int, pretrained_backbone: bool = False, width: int = 16, refine: bool = False,
          mean=None, std=None, bgr: bool = False, output_stride: int = 16, refine_hidden: int = 8,
          decoder_stride: int = 4) -> Normalized:
    """A fresh model of ``arch`` (see ARCHITECTURES) for ``num_classes`` classes, input RGB in [0, 1].

    ``mean``/``std`` (one value or three, in the network's channel order) default to ImageNet's; ``bgr``: the
    network was trained on BGR input (OpenCV). ``refine`` adds a full-resolution edge-refinement head
    (``refine_hidden`` channels).
    ``output_stride`` 8: DeepLabV3+'s trunk dilated one stage further; ``decoder_stride`` 2: its decoder taken on to
    stride 2 (both that architecture only)."""
    if arch not in ARCHITECTURES:
        raise BigsegError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if not 2 <= num_classes <= 255:
        raise BigsegError(f"num_classes must be between 2 and 255, got {num_classes}")
    mean = _triple(mean, "mean") if mean is not None else IMAGENET_MEAN
    std = _triple(std, "std") if std is not None else IMAGENET_STD
    if min(std) <= 0:
        raise BigsegError(f"std must be positive, got {list(std)}")
    if (wrong := deeplabv3plus_option_error(arch, output_stride, decoder_stride)) is not None:
        raise BigsegError(wrong)
    if arch == "light_unet":  # its refine head lives inside it (checkpoints since 2026-11 have it there)
        return Normalized(LightUNet(num_classes, int(width), refine, int(refine_hidden)), mean, std, bgr)
    if arch == "deeplabv3plus_mobilenet_v3_large":
        net: nn.Module = DeepLabV3Plus(num_classes, pretrained_backbone, output_stride=output_stride,
                                       decoder_stride=decoder_stride)
    elif arch == "linknet_resnet18":
        net = LinkNet(num_classes, pretrained_backbone)
    elif arch == "unet_resnet34":
        net = ResNetUNet(num_classes, pretrained_backbone)
    else:
        net = _torchvision(arch, num_classes, pretrained_backbone)
    return Normalized(net, mean, std, bgr, EdgeRefine(num_classes, int(refine_hidden)) if refine else None)
