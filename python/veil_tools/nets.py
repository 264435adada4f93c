"""Network architectures shipped with veil (all activations are PolyAct).

Every activation is preceded by batch normalisation (kept un-folded in the ONNX export;
the C++ importer folds it), which keeps pre-activations near N(0, 1) and so inside the
interval the polynomial was fitted on.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
from torch import nn

from . import activations as A
from .polyact import PolyAct


# A true ReLU: teacher networks for distillation (train.py --teacher), never exported.
EXACT_RELU = "exact-relu"


def make_act_factory(kind: str, degree: int, bound: float, trainable: bool,
                     clamp: Optional[float] = None, method: str = "lsq") -> Callable[[], nn.Module]:
    """Return a function creating a fresh PolyAct.

    kind: "square" (x^2), "prism" (PRISM's degree-4 Softplus polynomial, B = 6),
    one of relu/softplus/silu/gelu: a degree-``degree`` fit on [-bound, bound], or
    "exact-relu": a true ReLU (nn.ReLU), for a distillation teacher only: such a network
    cannot run under encryption, and train.py exports no ONNX for it.
    """
    if kind == EXACT_RELU:
        return nn.ReLU
    if kind == "square":
        coeffs, base = [0.0, 0.0, 1.0], "square"
    elif kind == "prism":
        coeffs, base = list(A.PRISM_POLYS["prism"]), "softplus"
        bound = 6.0 if bound is None else bound
    else:
        coeffs = A.fit(kind, degree, bound, method).coefficients
        base = "silu" if kind == "swish" else kind

    def make():
        return PolyAct(coeffs, bound, base, trainable_coefficients=trainable, clamp=clamp)

    return make


class CryptoNets(nn.Module):
    """Conv5x5/2 (1->5, pad 1: 13x13) -> BN -> poly -> FC(845->hidden) -> BN -> poly -> FC(10)."""

    def __init__(self, act, hidden: int = 100, channels: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 5, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = act()
        self.fc1 = nn.Linear(channels * 13 * 13, hidden)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.act2 = act()
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv(x)))
        x = torch.flatten(x, 1)
        x = self.act2(self.bn2(self.fc1(x)))
        return self.fc2(x)


class Delphi(nn.Module):
    """conv5x5(1->16)-BN-poly-avgpool2-conv5x5(16->16)-BN-poly-avgpool2-FC(256->100)-BN-poly-FC(10)."""

    def __init__(self, act, c1: int = 16, c2: int = 16, hidden: int = 100):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.bn1 = nn.BatchNorm2d(c1)
        self.act1 = act()
        self.pool1 = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.bn2 = nn.BatchNorm2d(c2)
        self.act2 = act()
        self.pool2 = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(c2 * 16, hidden)
        self.bn3 = nn.BatchNorm1d(hidden)
        self.act3 = act()
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = self.pool1(self.act1(self.bn1(self.conv1(x))))
        x = self.pool2(self.act2(self.bn2(self.conv2(x))))
        x = torch.flatten(x, 1)
        x = self.act3(self.bn3(self.fc1(x)))
        return self.fc2(x)


class CifarShallow(nn.Module):
    """7 linear layers, 6 activations, no residuals (fits without bootstrapping).

    w = width: conv3x3(3->w) | conv3x3(w->2w), pool | conv3x3(2w->2w) |
    conv3x3(2w->4w), pool | conv3x3(4w->4w), pool | conv3x3(4w->8w) | GAP | FC(8w->10);
    every conv is followed by BN -> poly (then the pool, where there is one).
    """

    def __init__(self, act, width: int = 64):
        super().__init__()
        w = width
        spec = [(3, w, False), (w, 2 * w, True), (2 * w, 2 * w, False), (2 * w, 4 * w, True),
                (4 * w, 4 * w, True), (4 * w, 8 * w, False)]
        layers = []
        for cin, cout, pool in spec:
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), act()]
            if pool:
                layers.append(nn.AvgPool2d(2))
        self.features = nn.Sequential(*layers)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * w, 10)

    def forward(self, x):
        x = self.gap(self.features(x))
        return self.fc(torch.flatten(x, 1))


class PreActBlock(nn.Module):
    def __init__(self, act, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = act()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = act()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = self.act1(self.bn1(x))
        sc = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + sc


class PreActResNet(nn.Module):
    """Pre-activation residual network (He et al., "Identity mappings in deep residual
    networks", 2016): a 3x3 stem, stages of PreActBlocks (the first block of a stage
    takes the stage's stride and, where the shape changes, a 1x1 projection shortcut),
    then BN -> act -> global average pool -> FC. Module names (conv1, layers.i, bn, act,
    fc) are the same for every depth, so checkpoints and exports read alike."""

    def __init__(self, act, widths, strides, blocks: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        layers = []
        cin = widths[0]
        for cout, stride in zip(widths, strides):
            for b in range(blocks):
                layers.append(PreActBlock(act, cin, cout, stride if b == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.act = act()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.layers(self.conv1(x))
        x = self.gap(self.act(self.bn(x)))
        return self.fc(torch.flatten(x, 1))


class PreActResNet18(PreActResNet):
    """PRISM's PreAct-ResNet-18 (17 PolyAct instances): widths w..8w, strides 1/2/2/2,
    two blocks a stage."""

    def __init__(self, act, width: int = 64, num_classes: int = 10):
        w = width
        super().__init__(act, (w, 2 * w, 4 * w, 8 * w), (1, 2, 2, 2), 2, num_classes)


class PreActResNetCifar(PreActResNet):
    """PreAct ResNet-(6n+2) for CIFAR: three stages of n blocks at widths w, 2w, 4w,
    strides 1/2/2 (n = 3: ResNet-20, 19 PolyAct instances).

    Depth budget under leveled CKKS: each block costs two activations and two convolutions
    (one level each once the activation's scalars are folded), so n = 3 needs about
    4 * 9 + 3 = 39 levels.
    """

    def __init__(self, act, width: int = 16, blocks: int = 3, num_classes: int = 10):
        w = width
        super().__init__(act, (w, 2 * w, 4 * w), (1, 2, 2), blocks, num_classes)


# name -> dataset, builder(act_factory, width), default hyper-parameters
PRESETS: Dict[str, dict] = {
    "mnist-cryptonets": dict(
        dataset="mnist", net=lambda act, width: CryptoNets(act, hidden=width or 100),
        act="relu", degree=2, bound=4.0, trainable=True, epochs=20, batch_size=128,
        optimizer="adam", lr=2e-3, wd=0.0, augment="shift", penalty=1.0),
    "mnist-delphi": dict(
        dataset="mnist", net=lambda act, width: Delphi(act, c1=width or 16, c2=width or 16),
        act="relu", degree=2, bound=4.0, trainable=True, epochs=20, batch_size=128,
        optimizer="adam", lr=2e-3, wd=0.0, augment="shift", penalty=1.0),
    "fashion-delphi": dict(
        dataset="fashion-mnist", net=lambda act, width: Delphi(act, c1=width or 16, c2=width or 16),
        act="relu", degree=2, bound=4.0, trainable=True, epochs=20, batch_size=128,
        optimizer="adamw", lr=1e-3, wd=5e-4, augment="shift", penalty=1.0),
    "cifar10-shallow": dict(
        dataset="cifar10", net=lambda act, width: CifarShallow(act, width=width or 64),
        act="relu", degree=2, bound=4.0, trainable=True, epochs=60, batch_size=128,
        optimizer="sgd", lr=0.05, wd=5e-4, augment="crop-flip", penalty=1.0),
    "cifar10-resnet20": dict(
        dataset="cifar10", net=lambda act, width: PreActResNetCifar(act, width=width or 16, blocks=3),
        act="relu", degree=2, bound=4.0, trainable=True, epochs=40, batch_size=128,
        optimizer="sgd", lr=0.05, wd=5e-4, augment="crop-flip", penalty=1.0, ema=0.999),
    "cifar10-resnet18": dict(
        dataset="cifar10", net=lambda act, width: PreActResNet18(act, width=width or 64),
        act="prism", degree=4, bound=6.0, trainable=False, epochs=200, batch_size=128,
        optimizer="adamw", lr=1e-3, wd=3e-4, augment="crop-flip", penalty=1.0, clamp=4.5,
        ema=0.999, mixup=0.2, erasing=0.25, trivialaugment=True),
}
