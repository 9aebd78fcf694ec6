"""The model architectures bigseg builds (bigseg.models.build), by name: light to import (no torch), so a config
or an option naming one is checked before torch is loaded."""

from __future__ import annotations

ARCHITECTURES = {
    "light_unet": "small U-Net, real-time on CPU (the bundled model)",
    "lraspp_mobilenet_v3_large": "LR-ASPP, MobileNetV3-Large backbone (torchvision)",
    "deeplabv3_mobilenet_v3_large": "DeepLabV3, MobileNetV3-Large backbone (torchvision)",
    "deeplabv3plus_mobilenet_v3_large": "DeepLabV3 with DeepLabV3+'s stride-4 decoder, MobileNetV3-Large backbone",
    "linknet_resnet18": "LinkNet, ResNet-18 encoder (real-time; decoder added back into the encoder)",
    "unet_resnet34": "U-Net on a ResNet-34 encoder (fastai's CamVid recipe)",
    "deeplabv3_resnet50": "DeepLabV3, ResNet-50 backbone (torchvision)",
    "deeplabv3_resnet101": "DeepLabV3, ResNet-101 backbone (torchvision)",
    "fcn_resnet50": "FCN, ResNet-50 backbone (torchvision)",
    "fcn_resnet101": "FCN, ResNet-101 backbone (torchvision)",
}


def deeplabv3plus_option_error(arch: str, output_stride: int = 16, decoder_stride: int = 4) -> str | None:
    """Why ``output_stride`` or ``decoder_stride`` does not fit ``arch`` (only DeepLabV3+ has a stage to dilate and a
    decoder to take on to stride 2), or None: the one rule that ``bigseg.models.build`` and a training config's
    ``model`` both apply."""
    other = arch != "deeplabv3plus_mobilenet_v3_large"
    if other and output_stride != 16:
        return f"output_stride {output_stride} is for deeplabv3plus_mobilenet_v3_large only, not {arch}"
    if decoder_stride not in (2, 4):
        return f"decoder_stride must be 2 or 4, got {decoder_stride}"
    if other and decoder_stride != 4:
        return f"decoder_stride {decoder_stride} is for deeplabv3plus_mobilenet_v3_large only, not {arch}"
    return None
