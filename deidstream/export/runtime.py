"""onnxruntime sessions with the execution providers a user names (short names or onnxruntime's own)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from deidstream.errors import ConfigError

log = logging.getLogger(__name__)
OPSET = 17  # the ONNX opset the project exports (and names its cached files by)
SHORT_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
               "tensorrt": "TensorrtExecutionProvider", "openvino": "OpenVINOExecutionProvider",
               "coreml": "CoreMLExecutionProvider", "directml": "DmlExecutionProvider"}
INSTALL_HINT = "reinstall deidstream: pip install deidstream (onnxruntime is one of its dependencies)"


def available_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(f"onnxruntime is not installed; {INSTALL_HINT}") from exc
    return list(onnxruntime.get_available_providers())


def resolve_providers(names: Sequence[str]) -> list[str]:
    """onnxruntime's provider names for ``names`` (``cpu``, ``cuda``, ... or the full names), in order;
    a provider this onnxruntime lacks raises, listing the ones it has."""
    available = available_providers()
    out = []
    for name in names:
        full = SHORT_NAMES.get(name.lower(), name)
        if full not in available:
            short = [k for k, v in SHORT_NAMES.items() if v in available]
            raise ConfigError(f"execution provider {name!r} is not available in this onnxruntime; available: "
                              f"{', '.join(available)} (short: {', '.join(short)})")
        out.append(full)
    return out


def process_threads() -> int:
    """The threads a session may use: OMP_NUM_THREADS when set (Ray sets it for its workers), else the
    cores this process may run on (torch's own default, read without importing torch)."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def session(path: str | Path, providers: Sequence[str] = ("cpu",), threads: int = 0) -> object:
    """An ``onnxruntime.InferenceSession`` on ``path`` with ``providers`` (first that takes a node runs it);
    ``threads``: its intra-op threads (0: onnxruntime's choice, one per core)."""
    import onnxruntime

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such ONNX file (make it with: deidstream export --out {path.parent})")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its start-up warnings are not the user's business
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=resolve_providers(providers))
