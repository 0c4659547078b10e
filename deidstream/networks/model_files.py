"""Where dlib's model files are installed, found without importing torch or the package itself.

The default mode's start-up needs only the files' paths (the ONNX cache key, the 5-point model); the
torch network that reads them is imported when a user asks for the torch backend or an export.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from deidstream.errors import ConfigError

EID_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def models_dir() -> Path:
    """The ``models`` folder of the ``face-recognition-models`` package (found without importing the
    package: its ``__init__`` needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the face-recognition-models package is not installed: pip install face-recognition-models")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def default_model_path() -> Path:
    """dlib's face descriptor network file."""
    return models_dir() / EID_FILE
