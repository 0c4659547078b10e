"""Shape and appearance spaces: principal components of pose-normalised shapes and of
lighting-normalised UV textures."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from deidstream.engine.generator.facemodel import normalise_lighting
from deidstream.engine.generator.uvmap import UVAtlas
from deidstream.geometry.mesh import CanonicalMesh
from deidstream.geometry.pose import fit_pose
from deidstream.modelbuild.collect import Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Space:
    """``mean`` (d,), ``basis`` (k, d) = unit components × their std, ``explained`` fraction,
    ``coefficients`` (n, k) of the samples in units of each component's std."""

    mean: np.ndarray
    basis: np.ndarray
    explained: float
    samples: int
    coefficients: np.ndarray


def pca(data: np.ndarray, *, variance: float, max_components: int) -> Space:
    """Components explaining ``variance`` of ``data`` (n, d), at most ``max_components``."""
    mean = data.mean(axis=0)
    centred = (data - mean).astype(np.float64)
    u, sing, vt = np.linalg.svd(centred, full_matrices=False)
    var = sing ** 2 / max(len(data) - 1, 1)
    ratio = np.cumsum(var) / var.sum()
    k = int(min(np.searchsorted(ratio, variance) + 1, max_components, len(var)))
    basis = vt[:k] * np.sqrt(var[:k])[:, None]
    coefficients = u[:, :k] * np.sqrt(max(len(data) - 1, 1))
    return Space(mean.astype(np.float32), basis.astype(np.float32), float(ratio[k - 1]), len(data),
                 coefficients.astype(np.float32))


def frontal(sample: Sample, mesh: CanonicalMesh, max_angle: float) -> bool:
    pose = fit_pose(sample.points, mesh.vertices, mesh.weights)
    yaw, pitch, _ = pose.yaw_pitch_roll()
    return abs(yaw) <= max_angle and abs(pitch) <= max_angle


def identity_shapes(samples: list[Sample], mesh: CanonicalMesh) -> tuple[np.ndarray, list[str]]:
    """One pose-normalised (468, 3) shape per person (the mean over their samples)."""
    by_person: dict[str, list[np.ndarray]] = {}
    for s in samples:
        pose = fit_pose(s.points, mesh.vertices, mesh.weights)
        by_person.setdefault(s.person, []).append(mesh.vertices + pose.residual)
    people = sorted(by_person)
    return np.stack([np.mean(by_person[p], axis=0) for p in people]).astype(np.float32), people


def shape_space(samples: list[Sample], mesh: CanonicalMesh, *, variance: float, max_components: int) -> Space:
    shapes, people = identity_shapes(samples, mesh)
    log.info("shape space: %d faces of %d people", len(samples), len(people))
    space = pca(shapes.reshape(len(shapes), -1), variance=variance, max_components=max_components)
    return Space(space.mean, space.basis, space.explained, len(people), space.coefficients)


@dataclass(frozen=True, slots=True)
class Textures:
    """Lighting-normalised albedo textures (n, T, T, 3) with eye openings and mouth interior
    inpainted, how well each texel was seen, and the mean before inpainting (T, T, 3)."""

    albedo: np.ndarray
    weight: np.ndarray
    open_mean: np.ndarray


def unwrap_all(samples: list[Sample], atlas: UVAtlas, *, sigma: float) -> Textures:
    raw = [atlas.unwrap(s.image, s.points) for s in samples]
    tex = np.stack([u.texture for u in raw])
    weight = np.stack([u.weight for u in raw])
    reference = _weighted_mean(tex, weight)
    albedo = np.stack([normalise_lighting(t, w, reference, sigma) for t, w in zip(tex, weight)])
    open_mean = _weighted_mean(albedo, weight) * atlas.mask[..., None]
    albedo = np.stack([atlas.fill_openings(a) for a in albedo])
    return Textures(albedo, weight, open_mean.astype(np.float32))


def _weighted_mean(tex: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return (tex * weight[..., None]).sum(0) / np.maximum(weight.sum(0), 1e-6)[..., None]


def rim_trust(mask: np.ndarray, width: float) -> np.ndarray:
    """0 at the UV layout's outer border rising smoothly to 1 at ``width`` texels inside: the
    border band (temples, upper forehead, jaw side) is where donors' hair and background lie."""
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    x = np.clip(inside / max(width, 1e-6), 0.0, 1.0)
    return (x * x * (3.0 - 2.0 * x)).astype(np.float32)


def appearance_space(
    textures: Textures, mask: np.ndarray, *, variance: float, max_components: int, component_size: int,
    full_weight: float = 0.35, rim: float = 0.1,
) -> tuple[np.ndarray, Space]:
    """Mean albedo (T, T, 3) and the components, stored at ``component_size``.

    Texels a photo saw badly (weight below ``full_weight``: turned away, hidden) and the outer
    ``rim`` of the layout (a fraction of T: hair, background) are filled from the mean so they
    do not become components of their own.
    """
    rim_w = rim_trust(mask, rim * mask.shape[0])
    mean = _weighted_mean(textures.albedo, textures.weight * np.maximum(rim_w, 1e-3))
    trust = np.clip(textures.weight / full_weight, 0.0, 1.0) * rim_w
    trust = np.stack([cv2.GaussianBlur(t, (0, 0), 2.0) for t in trust])[..., None]
    filled = trust * textures.albedo + (1.0 - trust) * mean
    inside = mask.reshape(-1)
    flat = filled.reshape(len(filled), -1, 3)[:, inside].reshape(len(filled), -1)
    space = pca(flat, variance=variance, max_components=max_components)
    size = mean.shape[0]
    comps = np.zeros((space.basis.shape[0], size * size, 3), np.float32)
    comps[:, inside] = space.basis.reshape(len(space.basis), -1, 3)
    comps = comps.reshape(-1, size, size, 3)
    if component_size != size:
        comps = np.stack([cv2.resize(c, (component_size, component_size), interpolation=cv2.INTER_AREA)
                          for c in comps])
    mean = mean * mask[..., None]
    return mean.astype(np.float32), Space(space.mean, comps, space.explained, space.samples, space.coefficients)
