"""``deidstream export``: the engine's networks as ONNX files, each checked against torch by onnxruntime.

The E_id contract (others may rely on it): input ``chips`` float32 N x 3 x 150 x 150, RGB, 0-255, cut with
dlib's chip geometry (150 px, padding 0.25; ``deidstream.geometry.chips``); output ``descriptors`` float32
N x 128 (dlib's metric: under 0.6 apart is the same person). The batch axis is dynamic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deidstream.errors import ConfigError
from deidstream.export.runtime import OPSET, resolve_providers, session
from deidstream.geometry.chips import CHIP_SIZE
from deidstream.networks.eid import DESCRIPTOR_SIZE, default_model_path, load_face_descriptor_net

log = logging.getLogger(__name__)
PARITY_BATCHES = (1, 5)  # a batch of one and a larger one: the batch axis must stay dynamic
PARITY_LIMIT = 1e-4  # descriptors differ by ~0.1 per element between people; float32 rounding is ~1e-6


@dataclass(frozen=True, slots=True)
class Exported:
    """One exported network: its ONNX file, its sidecar contract, and the largest |torch - onnxruntime|."""

    name: str
    onnx: Path
    sidecar: Path
    max_abs_diff: float


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, write) -> None:
    """``write(tmp)`` into a hidden file beside ``path``, renamed onto it only when it succeeds."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # created by the writer: the user's umask applies
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def parity_chips(batch: int, seed: int = 0) -> np.ndarray:
    """(batch, 3, 150, 150) float32 chips in 0-255: smooth gradients with noise (a numerical check of the
    graph; the tests add real faces)."""
    rng = np.random.default_rng(seed + batch)
    ramp = np.linspace(0.0, 255.0, CHIP_SIZE, dtype=np.float32)
    base = 0.5 * (ramp[None, :] + ramp[:, None])
    noise = rng.normal(0, 20, (batch, 3, CHIP_SIZE, CHIP_SIZE))
    chips = base[None, None] * rng.uniform(0.3, 1.0, (batch, 3, 1, 1)) + noise
    return np.clip(chips, 0, 255).astype(np.float32)


def onnx_parity(net: torch.nn.Module, path: Path, batches: tuple[int, ...] = PARITY_BATCHES,
                providers: tuple[str, ...] = ("cpu",)) -> float:
    """Largest |torch - onnxruntime| over ``batches`` of parity chips."""
    run = session(path, providers)
    worst = 0.0
    for batch in batches:
        chips = parity_chips(batch)
        with torch.no_grad():
            expected = net(torch.from_numpy(chips)).numpy()
        got = run.run(None, {"chips": chips})[0]  # type: ignore[attr-defined]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def export_eid(out_dir: Path, *, opset: int = OPSET, providers: tuple[str, ...] = ("cpu",)) -> Exported:
    """E_id (dlib's face descriptor network, in torch) as ``eid.onnx`` + ``eid.json`` in ``out_dir``."""
    resolve_providers(providers)  # an unknown provider is refused before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    net = load_face_descriptor_net().eval()
    onnx_path, sidecar = out_dir / "eid.onnx", out_dir / "eid.json"

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():  # the tracer's notes on shape arithmetic: constant for 150 px chips
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.from_numpy(parity_chips(2)),), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["chips"], output_names=["descriptors"],
                              dynamic_axes={"chips": {0: "N"}, "descriptors": {0: "N"}})

    _write_atomically(onnx_path, write)
    diff = onnx_parity(net, onnx_path, providers=providers)
    if not diff <= PARITY_LIMIT:
        onnx_path.unlink(missing_ok=True)
        raise ConfigError(f"{onnx_path}: onnxruntime differs from torch by {diff:.2e} (limit {PARITY_LIMIT:.0e}); "
                          "the file was removed")
    import onnxruntime

    source = default_model_path()
    contract = {
        "name": "eid", "file": onnx_path.name, "sha256": _sha256(onnx_path), "opset": opset,
        "description": "E_id: dlib's face descriptor network (ResNet-29), rebuilt in torch",
        "inputs": [{"name": "chips", "dtype": "float32", "shape": ["N", 3, CHIP_SIZE, CHIP_SIZE],
                    "meaning": "RGB, 0-255, dlib's chip geometry (150 px, padding 0.25)"}],
        "outputs": [{"name": "descriptors", "dtype": "float32", "shape": ["N", DESCRIPTOR_SIZE],
                     "meaning": "128-d face descriptors; under 0.6 apart is the same person"}],
        "weights": {"file": source.name, "package": "face-recognition-models", "sha256": _sha256(source)},
        "parity": {"max_abs_diff": diff, "batches": list(PARITY_BATCHES), "providers": list(providers),
                   "torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }
    _write_atomically(sidecar, lambda tmp: tmp.write_text(json.dumps(contract, indent=2) + "\n"))
    log.info("exported E_id to %s (max |torch - onnxruntime| %.2e)", onnx_path, diff)
    return Exported("eid", onnx_path, sidecar, diff)


def export_mapper(out_dir: Path, *, opset: int = OPSET, providers: tuple[str, ...] = ("cpu",)) -> Exported:
    """M_c (the shipped weights, run in numpy by the engine) as ``mapper.onnx`` + ``mapper.json``: input ``features``
    N x 134 (:func:`deidstream.networks.mapper.subject_features`), output ``distances`` N x donors."""
    from deidstream.networks.mapper import DEFAULT_MAPPER, FEATURES, IdentityMapper
    from deidstream.networks.mapper_net import MapperNet

    resolve_providers(providers)
    out_dir.mkdir(parents=True, exist_ok=True)
    mapper = IdentityMapper.load()
    net = MapperNet.from_mapper(mapper).eval()
    onnx_path, sidecar = out_dir / "mapper.onnx", out_dir / "mapper.json"
    rng = np.random.default_rng(0)
    inputs = [rng.normal(0, 0.3, (n, FEATURES)).astype(np.float32) for n in PARITY_BATCHES]

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():  # the legacy exporter's deprecation notes (it is the one opset 17 takes)
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.from_numpy(inputs[0]),), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["features"], output_names=["distances"],
                              dynamic_axes={"features": {0: "N"}, "distances": {0: "N"}})

    _write_atomically(onnx_path, write)
    run = session(onnx_path, providers)
    diff = 0.0
    for features in inputs:
        with torch.no_grad():
            expected = net(torch.from_numpy(features)).numpy()
        got = run.run(None, {"features": features})[0]  # type: ignore[attr-defined]
        engine = mapper.distances(features)
        diff = max(diff, float(np.abs(got - expected).max()), float(np.abs(engine - expected).max()))
    if not diff <= PARITY_LIMIT:
        onnx_path.unlink(missing_ok=True)
        raise ConfigError(f"{onnx_path}: onnxruntime or the engine differ from torch by {diff:.2e} "
                          f"(limit {PARITY_LIMIT:.0e}); the file was removed")
    contract = {
        "name": "mapper", "file": onnx_path.name, "sha256": _sha256(onnx_path), "opset": opset,
        "description": "M_c: a person's E_id embedding and attributes to each donor's surrogate's predicted E_id "
                       "distance from them",
        "inputs": [{"name": "features", "dtype": "float32", "shape": ["N", FEATURES],
                    "meaning": "deidstream.networks.mapper.subject_features"}],
        "outputs": [{"name": "distances", "dtype": "float32", "shape": ["N", len(mapper.names)],
                     "meaning": "per donor of the shipped bank, in its order"}],
        "weights": {"file": DEFAULT_MAPPER.name, "sha256": _sha256(DEFAULT_MAPPER)},
        "parity": {"max_abs_diff": diff, "batches": list(PARITY_BATCHES), "providers": list(providers),
                   "against": "torch, and the engine's numpy forward pass"},
    }
    _write_atomically(sidecar, lambda tmp: tmp.write_text(json.dumps(contract, indent=2) + "\n"))
    log.info("exported M_c to %s (max difference %.2e)", onnx_path, diff)
    return Exported("mapper", onnx_path, sidecar, diff)


def export_all(out_dir: Path, *, opset: int = OPSET, providers: tuple[str, ...] = ("cpu",)) -> list[Exported]:
    """Every network the engine runs per frame or per person."""
    return [export_eid(out_dir, opset=opset, providers=providers),
            export_mapper(out_dir, opset=opset, providers=providers)]
