"""A reader of dlib's serialisation of DNNs (the ``.dat`` files ``dlib::serialize`` writes).

dlib writes a network as nested C++ templates: the loss layer first, then one version number per
wrapper from the top down (``add_layer``, ``add_tag_layer``, ``add_skip_layer``), then the input
layer, then each layer's details from the bottom up. Which wrapper comes where is not in the file
(dlib knows it from the C++ type), so the caller passes the wrapper sequence of the network it
expects; the layer kinds are in the file (each layer's details start with a name such as
``con_4``). Everything read is checked, so a file that is not the expected network fails with a
:class:`~deidstream.errors.ConfigError` naming the file and the byte, not with a wrong network.

Encodings (dlib/serialize.h, float_details.h, dnn/tensor.h): an integer is a control byte (low
4 bits: how many little-endian bytes follow; bit 7: negative) and its bytes; a float is two such
integers, mantissa and exponent (value = mantissa * 2**exponent; exponents 32000-32002 mean inf,
-inf, nan); a string is its length then its bytes; a bool is the character '1' or '0'; a tensor
is version 2, four dimensions and the values as little-endian float32.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deidstream.errors import ConfigError

log = logging.getLogger(__name__)

LAYER, TAG, SKIP = "layer", "tag", "skip"  # the wrappers of a dlib network
_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
_MAX_NAME = 64  # longer "names" are not layer names: fail fast on other files


@dataclass(frozen=True, slots=True)
class DlibLayer:
    """One layer as dlib stored it. ``kind`` is dlib's name without its version ("con", "affine",
    "relu", "max_pool", "avg_pool", "add_prev", "fc", "input_rgb_image_sized", "loss_metric"; "tag"
    and "skip" for the wrappers, which store nothing); ``arrays`` its parameters, ``settings`` its
    sizes, strides and flags."""

    kind: str
    version: str = ""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    settings: dict[str, float] = field(default_factory=dict)


class _Stream:
    """The file's bytes and a read position; every read checks what it finds."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: not the dlib network expected here: {message} at byte {self.pos}")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"the file ends early (wanted {n} bytes, {len(self.data) - self.pos} left)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def integer(self, *, signed: bool = True) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70 or (control & 0x80 and not signed):
            raise self.fail(f"expected an integer, got control byte {control:#04x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def unsigned(self) -> int:
        return self.integer(signed=False)

    def real(self) -> float:
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.fail("expected a float, got dlib's old text float format (not supported)")
        mantissa, exponent = self.integer(), self.integer()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return float(np.ldexp(np.float32(mantissa), exponent).astype(np.float32))

    def flag(self) -> bool:
        ch = self.take(1)
        if ch not in (b"0", b"1"):
            raise self.fail(f"expected a bool ('0' or '1'), got {ch!r}")
        return ch == b"1"

    def name(self) -> str:
        n = self.unsigned()
        if n > _MAX_NAME:
            raise self.fail(f"expected a layer name, got a string of {n} bytes")
        raw = self.take(n)
        if not raw.isascii() or not raw.decode("ascii").isprintable():
            raise self.fail(f"expected a layer name, got {raw!r}")
        return raw.decode("ascii")

    def version(self, allowed: Sequence[int], what: str) -> int:
        v = self.integer()
        if v not in allowed:
            raise self.fail(f"expected {what} version {' or '.join(map(str, allowed))}, got {v}")
        return v

    def shape(self, version: int, what: str) -> tuple[int, int, int, int]:
        self.version((version,), what)
        dims = tuple(self.integer() for _ in range(4))
        if min(dims) < 0:
            raise self.fail(f"expected {what} dimensions >= 0, got {dims}")
        return dims  # type: ignore[return-value]

    def tensor(self) -> np.ndarray:
        """A tensor's values, flat (dlib stores a layer's parameters as one flat tensor)."""
        n = math.prod(self.shape(2, "tensor"))
        return np.frombuffer(self.take(4 * n), "<f4").astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        return self.shape(1, "alias tensor")


def _con(s: _Stream, version: str) -> DlibLayer:
    params = s.tensor()
    filters = s.integer()
    nr, nc, stride_y, stride_x, pad_y, pad_x = (s.integer() for _ in range(6))
    weight_shape, bias_shape = s.alias(), s.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        s.real()
    use_bias = s.flag() if version in ("con_5", "con_6") else True
    fused_relu = s.flag() if version == "con_6" else False
    n_weight = math.prod(weight_shape)
    n_bias = math.prod(bias_shape) if use_bias else 0
    if weight_shape[0] != filters or weight_shape[2:] != (nr, nc) or params.size != n_weight + n_bias:
        raise s.fail(f"inconsistent con_ layer: {filters} filters of {nr}x{nc}, weights {weight_shape}, "
                     f"{params.size} parameters")
    arrays = {"weight": params[:n_weight].reshape(weight_shape)}
    if use_bias:
        arrays["bias"] = params[n_weight:]
    return DlibLayer("con", version, arrays, {"filters": filters, "nr": nr, "nc": nc, "stride_y": stride_y,
                                              "stride_x": stride_x, "padding_y": pad_y, "padding_x": pad_x,
                                              "relu": fused_relu})


def _affine(s: _Stream, version: str) -> DlibLayer:
    params = s.tensor()
    gamma, beta = s.alias(), s.alias()
    mode = s.integer()
    disabled = s.flag() if version == "affine_2" else False
    n = math.prod(gamma)
    if gamma != beta or params.size != 2 * n:
        raise s.fail(f"inconsistent affine_ layer: gamma {gamma}, beta {beta}, {params.size} parameters")
    return DlibLayer("affine", version, {"gamma": params[:n], "beta": params[n:]},
                     {"mode": mode, "channels": gamma[1], "nr": gamma[2], "nc": gamma[3], "disabled": disabled})


def _pool(s: _Stream, version: str) -> DlibLayer:
    nr, nc, stride_y, stride_x, pad_y, pad_x = (s.integer() for _ in range(6))
    return DlibLayer(version[:-2], version, {}, {"nr": nr, "nc": nc, "stride_y": stride_y, "stride_x": stride_x,
                                                "padding_y": pad_y, "padding_x": pad_x})


def _fc(s: _Stream, version: str) -> DlibLayer:
    outputs, inputs = s.unsigned(), s.unsigned()
    params = s.tensor()
    weight, _ = s.alias(), s.alias()  # the bias alias: implied by the bias mode
    bias_mode = s.integer()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        s.real()
    use_bias = s.flag() if version == "fc_3" else True
    has_bias = bias_mode == 0 and use_bias  # dlib's FC_HAS_BIAS is 0
    n_weight = inputs * outputs
    if weight[:2] != (inputs, outputs) or params.size != n_weight + (outputs if bias_mode == 0 else 0):
        raise s.fail(f"inconsistent fc_ layer: {inputs} -> {outputs}, weights {weight}, {params.size} parameters")
    arrays = {"weight": params[:n_weight].reshape(inputs, outputs)}  # dlib computes x @ weight
    if has_bias:
        arrays["bias"] = params[n_weight:]
    return DlibLayer("fc", version, arrays, {"inputs": inputs, "outputs": outputs, "bias": has_bias})


def _relu(s: _Stream, version: str) -> DlibLayer:
    return DlibLayer("relu", version, {}, {"disabled": s.flag() if version == "relu_2" else False})


def _add_prev(s: _Stream, version: str) -> DlibLayer:
    return DlibLayer("add_prev", version)


def _loss_metric(s: _Stream, version: str) -> DlibLayer:
    margin, threshold = (s.real(), s.real()) if version == "loss_metric_2" else (0.1, 0.75)
    return DlibLayer("loss_metric", version, {}, {"margin": margin, "distance_threshold": threshold})


def _input_rgb(s: _Stream, version: str) -> DlibLayer:
    mean = np.array([s.real() for _ in range(3)], np.float32)
    nr, nc = s.unsigned(), s.unsigned()
    return DlibLayer("input_rgb_image_sized", version, {"mean": mean}, {"nr": nr, "nc": nc})


_LAYERS = {"con_4": _con, "con_5": _con, "con_6": _con, "affine_": _affine, "affine_2": _affine,
           "relu_": _relu, "relu_2": _relu, "max_pool_2": _pool, "avg_pool_2": _pool, "add_prev_": _add_prev,
           "fc_2": _fc, "fc_3": _fc}
_LOSSES = {"loss_metric_": _loss_metric, "loss_metric_2": _loss_metric}
_INPUTS = {"input_rgb_image_sized": _input_rgb}


def _details(s: _Stream, parsers: dict, what: str) -> DlibLayer:
    at = s.pos
    name = s.name()
    if name not in parsers:
        s.pos = at
        raise s.fail(f"expected {what} ({', '.join(parsers)}), got {name!r}")
    return parsers[name](s, name)


def _layer_state(s: _Stream, version: int, *, on_input: bool) -> None:
    """What ``add_layer`` stores after a layer's details: training state, checked and dropped."""
    for _ in range(3):  # setup called, gradient input stale, output and gradient disabled
        s.flag()
    for _ in range(2):  # x_grad, cached_output
        s.tensor()
    if on_input or version == 2:
        s.tensor()  # grad_final (on the input) / params_grad
    if on_input and version == 3:
        s.unsigned()  # sample expansion factor


def read_network(path: str | Path, wrappers: Sequence[str]) -> list[DlibLayer]:
    """The layers of the dlib network in ``path``, input first, loss last (forward order), for a
    network whose wrappers from the top down (below the loss) are ``wrappers`` (:data:`LAYER`,
    :data:`TAG`, :data:`SKIP`); the last must be the layer on the input."""
    path = Path(path)
    if not wrappers or wrappers[-1] != LAYER or any(w not in (LAYER, TAG, SKIP) for w in wrappers):
        raise ValueError(f"expected wrappers of layer/tag/skip ending with a layer, got {list(wrappers)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the dlib network: {exc.strerror or exc}") from exc
    s = _Stream(data, path)
    s.version((1,), "loss layer")
    loss = _details(s, _LOSSES, "a loss layer")
    versions = [s.version((1, 2) if w == LAYER else (1,), f"{w} wrapper") for w in wrappers[:-1]]
    bottom = s.version((2, 3), "input layer wrapper")
    layers = [_details(s, _INPUTS, "an input layer"), _details(s, _LAYERS, "a layer")]
    _layer_state(s, bottom, on_input=True)
    for wrapper, version in zip(reversed(wrappers[:-1]), reversed(versions)):
        if wrapper == LAYER:
            layers.append(_details(s, _LAYERS, "a layer"))
            _layer_state(s, version, on_input=False)
        else:
            layers.append(DlibLayer(wrapper))
    if s.pos != len(data):
        raise s.fail(f"{len(data) - s.pos} bytes left after the network")
    log.debug("read %d layers from %s", len(layers), path)
    return [*layers, loss]
