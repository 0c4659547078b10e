"""The ONNX files the product runs, built once into the user's cache from the installed weights.

Nothing is downloaded: a missing file is exported here by the project's own exporter (about a second
for E_id) and checked against torch, as ``deidstream export`` does. The file's name carries what it
depends on (the weights' hash, the opset, torch's version), so an upgrade builds a new one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import threading
from pathlib import Path

from deidstream.config.paths import cache_dir
from deidstream.export.runtime import OPSET
from deidstream.networks.model_files import default_model_path

log = logging.getLogger(__name__)
_LOCK = threading.Lock()


def _weights_tag(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]


def eid_onnx() -> Path:
    """E_id's ONNX file for the installed weights and torch, exported on first use (torch is imported
    only then: a run that finds the file starts about a second sooner)."""
    torch_version = importlib.metadata.version("torch")
    folder = cache_dir() / "onnx" / f"eid-{_weights_tag(default_model_path())}-opset{OPSET}-torch{torch_version}"
    path = folder / "eid.onnx"
    with _LOCK:
        if not (path.is_file() and (folder / "eid.json").is_file()):
            from deidstream.export.onnx_export import export_eid

            log.info("building E_id's ONNX file once, into %s", folder)
            export_eid(folder)
    return path
