"""MediaPipe's canonical face mesh in landmark order: 468 vertices, 898 triangles, UVs.

Read from MediaPipe's geometry pipeline metadata (``geometry_pipeline_metadata_landmarks.pbtxt``,
Apache-2.0) with MediaPipe's own protobuf message, so vertex ``i`` is face-mesh landmark ``i``
(the .obj export of the same mesh is in another order and must not be indexed by landmark).
Positions are converted from the metadata's metric frame (centimetres, y up, z towards the
viewer) to image axes (x right, y down, z away from the camera): a 180° turn about x, so a
face looking at the camera has the identity rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

N_VERTICES = 468
# The mesh above in image axes, as the face model stores it (MediaPipe authors, Apache-2.0): for the
# rooms that need the canonical face without the generator (E_id alignment, pose gates).
DEFAULT_MESH = Path(__file__).resolve().parent / "canonical_mesh.npz"
_TO_IMAGE_AXES = np.array([1.0, -1.0, -1.0], np.float32)


@dataclass(frozen=True, slots=True)
class CanonicalMesh:
    """``vertices`` (468, 3) cm in image axes, ``uvs`` (468, 2) in [0, 1] with v down,
    ``triangles`` (898, 3) vertex indices, ``weights`` (468,) MediaPipe's Procrustes weights."""

    vertices: np.ndarray
    uvs: np.ndarray
    triangles: np.ndarray
    weights: np.ndarray

    @classmethod
    def from_metadata(cls, path: str | Path) -> CanonicalMesh:
        from google.protobuf import text_format
        from mediapipe.modules.face_geometry.protos import geometry_pipeline_metadata_pb2

        meta = geometry_pipeline_metadata_pb2.GeometryPipelineMetadata()
        text_format.Parse(Path(path).read_text(), meta)
        mesh = meta.canonical_mesh
        buffer = np.array(mesh.vertex_buffer, np.float32).reshape(-1, 5)  # x, y, z, u, v
        if buffer.shape[0] != N_VERTICES:
            raise ValueError(f"{path}: expected {N_VERTICES} vertices, got {buffer.shape[0]}")
        weights = np.zeros(N_VERTICES, np.float32)
        for basis in meta.procrustes_landmark_basis:
            weights[basis.landmark_id] = basis.weight
        return cls(
            vertices=buffer[:, :3] * _TO_IMAGE_AXES,
            uvs=buffer[:, 3:5].copy(),  # already image-style: v grows downwards (the .obj's is flipped)
            triangles=np.array(mesh.index_buffer, np.int32).reshape(-1, 3),
            weights=weights,
        )


@cache
def default_mesh() -> CanonicalMesh:
    """MediaPipe's canonical mesh, shipped beside this module (loaded once)."""
    with np.load(DEFAULT_MESH) as z:
        return CanonicalMesh(z["vertices"], z["uvs"], z["triangles"], z["weights"])
