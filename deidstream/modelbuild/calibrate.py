"""Depth calibration of the mean shape against the landmark detector that drives it.

The shape space comes from MediaPipe landmarks of mostly frontal faces, whose depth (z) is
MediaPipe's guess. Rendered turned, that mean face is re-found by FaceMesh several pixels
away from where it was drawn (5-6 px at 45° yaw, 256-px face): the depths disagree with what
the detector perceives. Rendering the mean identity at a set of head poses and solving, per
vertex, the 3D offset that explains the re-detected displacement (least squares over all
poses), a few damped times, makes the generator consistent with E_aux: what is rendered at a
pose is what the detector reads back.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from deidstream.engine.generator.compositor import Compositor, RenderedFace
from deidstream.engine.generator.facemodel import FaceModel
from deidstream.engine.generator.render import AuxCode, Generator
from deidstream.modelbuild.collect import StillLandmarker

log = logging.getLogger(__name__)
POSES = ((-50, 0), (-30, 0), (-15, 0), (0, 0), (15, 0), (30, 0), (50, 0), (0, -15), (0, 15), (-30, 10), (30, -10))
FACE_PX = 256.0
CANVAS = (600, 640)
BACKGROUND = 110


def render_on_canvas(generator: Generator, shape: np.ndarray, texture: torch.Tensor, yaw: float, pitch: float,
                     face_px: float = FACE_PX) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face at (yaw, pitch) on a plain grey canvas: (image, drawn points (468, 3), rotation)."""
    rot = Rotation.from_euler("yx", [yaw, pitch], degrees=True)
    q = rot.as_quat()
    aux = AuxCode(q if q[3] >= 0 else -q, face_px / float(np.ptp(shape[:, 0])),
                  np.array([CANVAS[1] / 2, CANVAS[0] / 2, 0.0]), np.zeros((468, 3), np.float32))
    with torch.no_grad():
        render = generator.render(torch.as_tensor(shape, dtype=torch.float32), texture, aux)
    canvas = np.full((*CANVAS, 3), BACKGROUND, np.uint8)
    face = RenderedFace(render.rgb.permute(1, 2, 0).numpy(), render.coverage.numpy(), render.crop.x0,
                        render.crop.y0)
    return Compositor(colour_match=False).apply(canvas, face), render.points, rot.as_matrix()


def calibrate_depth(model: FaceModel, *, iterations: int = 9, step: float = 0.8) -> tuple[FaceModel, dict]:
    generator = Generator(model)
    texture = generator.texture(torch.zeros(model.n_appearance))
    shape = model.shape_mean.astype(np.float64)
    marker = StillLandmarker()
    history: list[float] = []
    try:
        for _ in range(iterations + 1):
            rows, errors = [], []
            for yaw, pitch in POSES:
                image, drawn, rot = render_on_canvas(generator, shape.astype(np.float32), texture, yaw, pitch)
                found = marker.largest(image)
                if found is None:
                    continue
                scale = FACE_PX / float(np.ptp(shape[:, 0]))
                rows.append((scale * rot[:2], found[:, :2] - drawn[:, :2]))
            errors = [float(np.linalg.norm(e, axis=1).mean()) for _, e in rows]
            history.append(round(float(np.mean(errors)), 2))
            if len(history) > iterations:
                break
            a = np.concatenate([r for r, _ in rows], axis=0)  # (2P, 3): image shift per unit of offset
            b = np.concatenate([e.T for _, e in rows], axis=0)  # (2P, 468)
            offset, *_ = np.linalg.lstsq(a, b, rcond=None)
            shape = shape + step * offset.T
    finally:
        marker.close()
    change = float(np.linalg.norm(shape - model.shape_mean, axis=1).mean())
    log.info("depth calibration: mean re-detection error per round %s px; mean shape moved %.2f", history, change)
    facts = {"poses_yaw_pitch_deg": [list(p) for p in POSES], "face_px": FACE_PX,
             "mean_error_px_per_round": history, "mean_vertex_change": round(change, 3)}
    return dataclasses.replace(model, shape_mean=shape.astype(np.float32)), facts
