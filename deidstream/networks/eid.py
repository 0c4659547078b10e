"""E_id in torch: dlib's face descriptor ResNet, rebuilt, with the weights read from dlib's own file.

The network is ``anet_type`` of dlib's dnn_face_recognition_ex.cpp, the one in
``dlib_face_recognition_resnet_model_v1.dat`` (package ``face-recognition-models``): a 7x7/2
convolution, 3x3/2 max pooling, 14 residual units (32, 64, 128, 256, 256 channels), global average
pooling and a 128-wide linear layer without bias. dlib's ``affine`` layers (batch norm frozen into
a per-channel scale and shift) follow every convolution and are folded into it here. Two of dlib's
habits are kept exactly, because the weights were trained with them: a downsampling unit adds the
2x2-average-pooled input to its output, padded with zero channels where the unit widens and with
zero rows and columns where the sizes differ (4x4 pooled + 3x3 convolved at 256 channels); and the
input is ``(pixel - mean) / 256`` with the per-channel mean stored in the file.

Input: chips as dlib cuts them (``deidstream.geometry.chips``), float32 N x 3 x 150 x 150, RGB,
0-255. Output: N x 128, dlib's ``compute_face_descriptor`` (one jitter; dlib does not normalise),
to within 2e-6 (benchmarks/bench_eid.py, 643 faces). On one core (AMD EPYC, Zen 4) it takes
5.2 ms a face at batch 32, 5.7 at batch 8 and 9.5 alone, against dlib's 14.2; under
``torch.autocast("cpu", dtype=torch.bfloat16)`` 3.0 ms at batch 32, but then descriptors are
about 0.01 from dlib's. Descriptors are biometric data: nothing here logs them.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deidstream.errors import ConfigError
from deidstream.networks.dlib_format import LAYER, DlibLayer, read_network
from deidstream.networks.model_files import default_model_path

log = logging.getLogger(__name__)

CHIP_SIZE = 150
DESCRIPTOR_SIZE = 128
STEM_CHANNELS = 32
# (channels, units, first unit downsamples) from the input up: dlib's alevel4 .. alevel0
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
_UNIT = ("tag", "con", "affine", "relu", "con", "affine", "add_prev", "relu")
_DOWN_UNIT = ("tag", "con", "affine", "relu", "con", "affine", "tag", "skip", "avg_pool", "add_prev", "relu")


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum over the larger of the two shapes, the smaller padded with zeros
    (top-left aligned: extra channels, rows and columns are zero)."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class _Unit(nn.Module):
    """relu(con(relu(con(x))) + x), convolutions with dlib's affine folded in; a downsampling unit's
    first convolution has stride 2 (no padding, as dlib pads only stride-1 convolutions) and its
    shortcut is 2x2 average pooling."""

    def __init__(self, inputs: int, outputs: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x), inplace=True))
        return F.relu(_add_padded(y, F.avg_pool2d(x, 2) if self.down else x), inplace=True)


class FaceDescriptorNet(nn.Module):
    """dlib's face descriptor network: N x 3 x 150 x 150 RGB chips (0-255) -> N x 128 descriptors.

    Build it with :func:`load_face_descriptor_net` (weights from dlib's file); a bare instance has
    random weights. Batched and differentiable (gradients reach the chips)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1))
        self.stem = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2)
        units, channels = [], STEM_CHANNELS
        for width, count, down in STAGES:
            for i in range(count):
                units.append(_Unit(channels, width, down and i == 0))
                channels = width
        self.units = nn.Sequential(*units)
        self.fc = nn.Linear(channels, DESCRIPTOR_SIZE, bias=False)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        if chips.dim() != 4 or tuple(chips.shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"expected chips of shape (N, 3, {CHIP_SIZE}, {CHIP_SIZE}), got {tuple(chips.shape)}")
        x = (chips - self.mean) * (1.0 / 256.0)  # dlib's input layer: (pixel - mean) / 256, exact in float32
        x = F.max_pool2d(F.relu(self.stem(x), inplace=True), 3, stride=2)
        x = self.units(x)
        return self.fc(x.mean(dim=(2, 3)))


def expected_kinds() -> list[str]:
    """The layer kinds of dlib's ``anet_type`` in forward order (input first, loss last)."""
    kinds = ["input_rgb_image_sized", "con", "affine", "relu", "max_pool"]
    for _, count, down in STAGES:
        for i in range(count):
            kinds += _DOWN_UNIT if down and i == 0 else _UNIT
    return [*kinds, "avg_pool", "fc", "loss_metric"]


def _wrappers(kinds: list[str]) -> list[str]:
    """dlib's wrappers from the top down, below the loss and above the input (what the file cannot say)."""
    return [k if k in ("tag", "skip") else LAYER for k in reversed(kinds[1:-1])]


def _check(path: Path, ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"{path}: not dlib's face descriptor network: {message}")


def _fold(path: Path, con: DlibLayer, affine: DlibLayer, conv: nn.Conv2d) -> dict[str, torch.Tensor]:
    """The convolution's weight and bias with the affine after it folded in, checked against ``conv``."""
    s = con.settings
    found = (s["filters"], int(con.arrays["weight"].shape[1]), s["nr"], s["nc"], s["stride_y"], s["stride_x"],
             s["padding_y"], s["padding_x"])
    want = (conv.out_channels, conv.in_channels, *conv.kernel_size, *conv.stride, *conv.padding)
    _check(path, found == want, f"a convolution is (filters, inputs, rows, cols, strides, paddings) {found}, "
                                f"expected {want}")
    _check(path, not s["relu"] and "bias" in con.arrays, "a convolution has a fused relu or no bias")
    a = affine.settings
    _check(path, a["mode"] == 0 and a["channels"] == conv.out_channels and not a["disabled"],
           f"an affine layer is not per-channel over {conv.out_channels} channels")
    gamma, beta = affine.arrays["gamma"].astype(np.float64), affine.arrays["beta"].astype(np.float64)
    weight = con.arrays["weight"].astype(np.float64) * gamma[:, None, None, None]
    bias = con.arrays["bias"].astype(np.float64) * gamma + beta
    return {"weight": torch.from_numpy(weight.astype(np.float32)), "bias": torch.from_numpy(bias.astype(np.float32))}


def _check_pools(path: Path, layers: list[DlibLayer]) -> None:
    pools = [layer.settings for layer in layers if layer.kind in ("max_pool", "avg_pool")]
    windows = [(p["nr"], p["nc"], p["stride_y"], p["stride_x"], p["padding_y"], p["padding_x"]) for p in pools]
    downs = sum(1 for _, _, down in STAGES if down)
    want = [(3, 3, 2, 2, 0, 0)] + [(2, 2, 2, 2, 0, 0)] * downs + [(0, 0, 1, 1, 0, 0)]
    _check(path, windows == want, f"pooling windows {windows}, expected {want}")
    _check(path, not any(layer.settings.get("disabled") for layer in layers if layer.kind == "relu"),
           "a relu is disabled")


def _state(path: Path, layers: list[DlibLayer], net: FaceDescriptorNet) -> dict[str, torch.Tensor]:
    """The torch state of ``net`` from dlib's layers (forward order), every size checked."""
    kinds = [layer.kind for layer in layers]
    _check(path, kinds == expected_kinds(), "its layers are not those of anet_type")
    _check_pools(path, layers)
    source = layers[0]
    _check(path, (source.settings["nr"], source.settings["nc"]) == (CHIP_SIZE, CHIP_SIZE),
           f"its input is {source.settings['nr']}x{source.settings['nc']}, expected {CHIP_SIZE}x{CHIP_SIZE}")
    convs = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    cons = [i for i, k in enumerate(kinds) if k == "con"]
    state = {"mean": torch.from_numpy(source.arrays["mean"].copy()).view(1, 3, 1, 1)}
    for (name, conv), i in zip(convs, cons):
        for key, value in _fold(path, layers[i], layers[i + 1], conv).items():
            state[f"{name}.{key}"] = value
    fc = layers[-2]
    _check(path, (fc.settings["inputs"], fc.settings["outputs"], fc.settings["bias"])
           == (net.fc.in_features, net.fc.out_features, False), "its last layer is not fc_no_bias<128> over 256")
    state["fc.weight"] = torch.from_numpy(np.ascontiguousarray(fc.arrays["weight"].T))
    return state


@functools.lru_cache(maxsize=4)
def _cached_state(path: Path, stamp: tuple[int, int]) -> dict[str, torch.Tensor]:
    """The parsed torch state of one version (mtime, size) of one file, kept for the process."""
    state = _state(path, read_network(path, _wrappers(expected_kinds())), FaceDescriptorNet())
    log.info("read dlib's face descriptor network from %s", path)
    return state


def load_face_descriptor_net(path: str | Path | None = None) -> FaceDescriptorNet:
    """dlib's face descriptor network in torch, in eval mode, weights frozen (gradients still reach
    the input), convolutions channels-last (oneDNN's fast layout on CPU; inputs may be either).
    ``path``: dlib's ``.dat`` (default: the ``face-recognition-models`` one). The file is parsed
    once per process; each call returns a new module."""
    path = Path(path) if path is not None else default_model_path()
    try:
        stat = path.resolve().stat()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read dlib's face descriptor network: {exc.strerror or exc}") from exc
    state = _cached_state(path.resolve(), (stat.st_mtime_ns, stat.st_size))
    net = FaceDescriptorNet()
    net.load_state_dict(state)
    net.eval()
    net.requires_grad_(False)
    return net.to(memory_format=torch.channels_last)
