"""One face in one frame: render an identity in this frame's z_aux and blend it in.

Keeps what is not identity: the subject's pose and expression (E_aux from the landmarks), the
frame's light (the render is shaded by the frame's own low frequencies), and the subject's
own eye openings and mouth interior (cut out of alpha, so gaze and speech survive).

The frame's light is carried at a scale of about an eye (``shading_sigma``). Finer than that, on the skin
outside the features (the texture's fifth channel), half the lightness relief down to a twentieth of the
face (``own_relief``, ``relief_sigma``) is the subject's own in this frame: the light on a cheekbone and the
broad folds follow the subject, and half the donor's photo-lit relief (smudges on a pale cheek, a darker
band on one side) is gone; pores and finer texture stay the donor's. Over the eyes and brows, nose and
mouth, whose lines carry identity, the subject's light is taken only at a coarser scale and bounded
(``feature_sigma``). All of the subject's relief fixed the skin's tone but kept their identity (two_faces:
14-17% of faces re-identified); half of it, on the 21 shared clips, brought the skin tone within 10 degrees
ITA on 7 points more of the faces and a fifth of the re-identifications, at the same mean ID distance. On a
small face the relief is most of what a recogniser sees of it: it comes in from ``relief_widths[0]`` px
across to full at ``relief_widths[1]`` (taken on all faces, crowd_1080p's people of 60-130 px kept their
identity: half as many surrogates passed τ, 5 of 70 faces re-identified).
Then each patch of the render's skin (cheeks, forehead, chin, jaw) is given the median colour of the
subject's own skin there in this frame (a brightness gain, and channel gains kept close to it so no tint
appears): the same skin tone in the same light, the donor's features unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deidstream.config import GeneratorConfig
from deidstream.engine.generator.aux import encode_aux
from deidstream.engine.generator.compose import CHEEKS, TONE_ANCHORS
from deidstream.engine.generator.compositor import Compositor, RenderedFace
from deidstream.engine.generator.facemodel import FaceModel, Identity, default_model
from deidstream.engine.generator.fast import AuxCode, FastPath, FastRender, light_ratio
from deidstream.engine.generator.glasses import frame_mask
from deidstream.engine.generator.lips import LipParting, parting
from deidstream.engine.generator.masks import interior_mask, polygons_mask

MIN_TONE_PIXELS = 24
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601 weights: brightness of an RGB colour


@dataclass(frozen=True, slots=True)
class Surrogate:
    """A locked identity ready to render: its shape (468, 3) canonical and albedo (T, T, 3); ``glasses``: its
    subject wears glasses, whose frames are kept in front of it; ``parted``: the albedo with its lips' inner
    edges as they look apart (:mod:`deidstream.engine.generator.lips`), mixed in as the subject's mouth opens."""

    identity: Identity
    shape: np.ndarray
    texture: np.ndarray
    glasses: bool = False
    parted: np.ndarray | None = None

    @classmethod
    def of(cls, model: FaceModel, identity: Identity) -> Surrogate:
        return cls(identity, model.shape_of(identity).astype(np.float32), model.albedo_of(identity))


class FaceRenderer:
    """``paint(frame, points, person_shape, surrogate)``: the surrogate in the subject's place."""

    def __init__(self, model: FaceModel, compositor: Compositor | None = None, *, shading_sigma: float = 0.12,
                 rim_px: int = 1, raster_px: int = 112, fade: float = 0.04, match_tone: bool = True,
                 own_relief: float = 0.5, relief_sigma: float = 0.05, feature_sigma: float = 0.07,
                 relief_widths: tuple[float, float] = (100.0, 180.0)) -> None:
        self.model = model
        self.own_relief = own_relief
        self.relief_sigma = relief_sigma
        self.feature_sigma = feature_sigma
        self.relief_widths = relief_widths
        self.match_tone = match_tone
        self.fade = fade
        self.fast = FastPath(model, shading_sigma=shading_sigma, raster_px=raster_px)
        # a render whose cheeks already have the subject's colour needs no second, global colour shift (it
        # would move them off again, toward the frame around the face)
        self.compositor = compositor or Compositor(levels=3, colour_match=not match_tone)
        self.rim_px = rim_px
        self._weights = model.mesh.weights
        self._frames: tuple[np.ndarray, bytes, tuple[np.ndarray, tuple[int, int]] | None] | None = None
        self._partings: dict[int, LipParting] = {}

    def render(self, frame: np.ndarray, points: np.ndarray, person_shape: np.ndarray,
               surrogate: Surrogate, aux: AuxCode | None = None,
               in_front: tuple[np.ndarray, tuple[int, int]] | None = None) -> tuple[RenderedFace, FastRender]:
        """The shaded render and its alpha, not yet blended (``aux``: E_id of ``points`` against
        ``person_shape`` if the caller has it already). ``in_front`` (mask (h, w) uint8, its top-left
        (x, y) in the frame): pixels of something in front of the face (a hand), which keep their own
        colours; the render goes behind them and their light is not taken for the face's. So do the
        frames of the subject's glasses, when the surrogate says they wear them."""
        aux = aux or encode_aux(points, person_shape, self._weights)
        texture = surrogate.texture
        if surrogate.parted is not None:
            texture = self._parting(texture.shape[0]).mixed(texture, surrogate.parted, parting(points))
        render = self.fast.render(surrogate.shape, texture, aux)
        crop = render.crop
        coverage = render.coverage
        if self.rim_px:
            kernel = np.ones((2 * self.rim_px + 1, 2 * self.rim_px + 1), np.uint8)
            coverage = cv2.erode(coverage, kernel)
        # fade in from the mesh border over a few % of the face: no hard edge for the blend to smear
        inside = cv2.distanceTransform((coverage > 0).astype(np.uint8), cv2.DIST_L2, 3)
        fade = max(self.fade * float(np.ptp(render.points[:, 0])), 1.0)
        coverage = np.minimum(np.clip(inside / fade, 0.0, 1.0), coverage).astype(np.float32)
        keep = interior_mask(points[:, :2], (crop.height, crop.width), offset=(crop.x0, crop.y0))
        alpha = coverage * (1.0 - keep.astype(np.float32) * np.float32(1.0 / 255.0))
        if in_front is not None:
            alpha *= 1.0 - _in_crop(in_front, crop.x0, crop.y0, alpha.shape)
        if surrogate.glasses and (frames := self._glasses(frame, points)) is not None:
            alpha *= 1.0 - _in_crop(frames, crop.x0, crop.y0, alpha.shape)
        frame_crop = crop.read(frame)
        rgb = self.fast.shade(render.rgb, frame_crop, alpha)
        width = float(np.ptp(points[:, 0]))
        lo, hi = self.relief_widths
        strength = self.own_relief * float(np.clip((width - lo) / max(hi - lo, 1e-6), 0.0, 1.0))
        if strength > 0 and render.skin is not None:
            rgb = _own_relief(rgb, frame_crop, alpha, render.skin * strength,
                              max(self.relief_sigma * width, 0.7), max(self.feature_sigma * width, 0.7), strength)
        if self.match_tone and (anchors := _anchors(points, crop.x0, crop.y0, alpha)):
            rgb = _tone_matched(rgb, frame_crop, anchors, width)
        return RenderedFace(rgb, alpha, crop.x0, crop.y0), render

    def _parting(self, size: int) -> LipParting:
        if (found := self._partings.get(size)) is None:
            found = self._partings[size] = LipParting(self.model.mesh.uvs, size)
        return found

    def _glasses(self, frame: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, tuple[int, int]] | None:
        """The glasses frame's pixels of this face, found once per frame and face: the lock renders every
        candidate into the same view (the same frame object, the same points). The frame is held while
        cached, so no other array can take its place."""
        key = np.ascontiguousarray(points).tobytes()
        cached = self._frames
        if cached is not None and cached[0] is frame and cached[1] == key:
            return cached[2]
        found = frame_mask(frame, points)
        self._frames = (frame, key, found)
        return found

    def paint(self, frame: np.ndarray, points: np.ndarray, person_shape: np.ndarray,
              surrogate: Surrogate, aux: AuxCode | None = None,
              in_front: tuple[np.ndarray, tuple[int, int]] | None = None,
              source: np.ndarray | None = None) -> RenderedFace:
        """Blend the surrogate into ``frame`` (H, W, 3) uint8 RGB in place, behind ``in_front``; returns
        what was blended (no pixel outside its crop changed). ``source``: the frame to take light, tone
        and the hands in front from, where ``frame`` has been changed already (default: ``frame``)."""
        face, _ = self.render(frame if source is None else source, points, person_shape, surrogate, aux, in_front)
        self.compositor.apply(frame, face)
        return face


def _anchors(points: np.ndarray, x0: int, y0: int,
             alpha: np.ndarray) -> list[tuple[tuple[slice, slice], np.ndarray, np.ndarray, int]]:
    """Each tone anchor's pixels the render covers (not a hand in front): the crop's slice around the anchor,
    a mask over that slice, the anchor's centre in the crop and its index in ``TONE_ANCHORS``, for the
    anchors with at least ``MIN_TONE_PIXELS`` (only each anchor's bounding box is worked on)."""
    out, (h, w) = [], alpha.shape
    for index, loop in enumerate(TONE_ANCHORS):
        polygon = points[list(loop), :2]
        lo = np.maximum(np.floor(polygon.min(0)).astype(int) - (x0, y0), 0)
        hi = np.minimum(np.ceil(polygon.max(0)).astype(int) + 1 - (x0, y0), (w, h))
        if np.any(hi - lo < 2):
            continue
        box = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        region = polygons_mask([polygon], (hi[1] - lo[1], hi[0] - lo[0]), offset=(x0 + lo[0], y0 + lo[1])) > 0
        region &= alpha[box] > 0.5
        if int(region.sum()) >= MIN_TONE_PIXELS:
            out.append((box, region, polygon.mean(0) - np.array([x0, y0], np.float32), index))
    return out


def _tone_matched(rgb: np.ndarray, frame_crop: np.ndarray,
                  anchors: list[tuple[tuple[slice, slice], np.ndarray, np.ndarray, int]],
                  face_width: float, limit: float = 1.4, tint: float = 0.08, reach: float = 0.15,
                  agree: float = 1.25) -> np.ndarray:
    """``rgb`` times a gain that gives each anchor (cheeks, forehead, chin, jaw) the median colour of the
    subject's own skin there in this frame; between anchors the gains blend smoothly (Gaussian weights,
    ``reach`` times the face's width), so a face lit from one side stays lit from that side and a donor's
    shadow at the chin does not stay darker than the subject's chin. Bounded: a brightness gain past
    ``limit`` is a shadow or a highlight, not a tone, and the channels' gains stay within ``tint`` of each
    other (unequal ones turn a donor's stubble and shadows purple or green)."""
    gains, brightness = [], []
    for box, region, _, _ in anchors:
        own = np.median(frame_crop[box][region].astype(np.float32), axis=0) * np.float32(1 / 255)
        drawn = np.median(rgb[box][region], axis=0)
        brightness.append(float(LUMA @ own) / max(float(LUMA @ drawn), 1e-3))
        relative = np.clip(own / np.maximum(drawn, 1e-3) / max(brightness[-1], 1e-3), 1.0 - tint, 1.0 + tint)
        gains.append((np.clip(brightness[-1], 1.0 / limit, limit) * relative).astype(np.float32))
    # past the cheeks, an anchor whose gain disagrees with theirs is not skin on one side: a beard, a fringe,
    # a hand the hand model missed (brightening a donor's beard to skin, or darkening a clean chin to a
    # subject's beard, would paint a smudge)
    cheeks = [b for (_, _, _, index), b in zip(anchors, brightness) if index < len(CHEEKS)]
    if cheeks:
        reference = float(np.exp(np.mean(np.log(np.maximum(cheeks, 1e-3)))))
        keep = [index < len(CHEEKS) or abs(np.log(max(b, 1e-3) / reference)) <= np.log(agree)
                for (_, _, _, index), b in zip(anchors, brightness)]
        anchors = [a for a, k in zip(anchors, keep) if k]
        gains = [g for g, k in zip(gains, keep) if k]
    if len(gains) == 1:
        return np.clip(rgb * gains[0], 0.0, 1.0, out=rgb)
    # the field varies over a third of a face: a grid of a few pixels holds it exactly enough
    h, w = rgb.shape[:2]
    step = max(face_width / 24.0, 1.0)
    ys = np.linspace(0, h - 1, max(int(h / step), 2), dtype=np.float32)[:, None, None]
    xs = np.linspace(0, w - 1, max(int(w / step), 2), dtype=np.float32)[None, :, None]
    centres = np.array([c for _, _, c, _ in anchors], np.float32)
    spread = 2.0 * (reach * face_width) ** 2

    def blend(d2: np.ndarray) -> np.ndarray:  # normalised Gaussian weights over the anchors (last axis)
        weights = np.exp(-(d2 - d2.min(axis=-1, keepdims=True)) / spread)
        return weights / weights.sum(axis=-1, keepdims=True)

    # weights that give each anchor exactly its own gain (neighbours' gains would pull it off), within the
    # range of the gains (no overshoot between anchors)
    at_anchors = blend(((centres[:, None] - centres[None]) ** 2).sum(-1))
    g = np.array(gains)
    try:
        own = np.clip(np.linalg.solve(at_anchors, g), g.min(0), g.max(0))
    except np.linalg.LinAlgError:  # two anchors on one spot (a face seen edge-on)
        own = g
    field = (blend((xs - centres[:, 0]) ** 2 + (ys - centres[:, 1]) ** 2) @ own).astype(np.float32)
    rgb *= cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def _own_relief(rgb: np.ndarray, frame_crop: np.ndarray, alpha: np.ndarray, skin: np.ndarray,
                sigma: float, feature_sigma: float, strength: float = 1.0, bound: float = 2.0,
                feature_bound: float = 1.2) -> np.ndarray:
    """``rgb`` with its skin's lightness relief coarser than ``sigma`` px moved toward the subject's own in this
    frame by ``skin`` (h, w) in [0, ``strength``]: pores and the donor's features stay, the broad folds and the
    light on cheeks, forehead and jaw come from the subject. Over the features the same at ``feature_sigma``,
    bounded by ``feature_bound``: their lines are the donor's, their mean light nearer the subject's (no
    darker mask around the eyes and nose)."""
    w = (alpha > 0.5).astype(np.float32)
    own = (frame_crop.astype(np.float32) @ LUMA) * np.float32(1 / 255)
    drawn = rgb @ LUMA
    fine = light_ratio(own, drawn, w, sigma, (1.0 / bound, bound))
    coarse = light_ratio(own, drawn, w, feature_sigma, (1.0 / feature_bound, feature_bound))
    gain = skin * fine + (strength - skin) * coarse + (1.0 - strength)
    return np.clip(rgb * gain[..., None], 0.0, 1.0)


def _in_crop(region: tuple[np.ndarray, tuple[int, int]], x0: int, y0: int, shape: tuple[int, ...]) -> np.ndarray:
    """(h, w) float32 in [0, 1]: ``region``'s mask where it overlaps the crop at (x0, y0) of ``shape``."""
    mask, (mx, my) = region
    out = np.zeros(shape[:2], np.float32)
    ax0, ay0 = max(mx, x0), max(my, y0)
    ax1, ay1 = min(mx + mask.shape[1], x0 + shape[1]), min(my + mask.shape[0], y0 + shape[0])
    if ax1 > ax0 and ay1 > ay0:
        out[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = mask[ay0 - my:ay1 - my, ax0 - mx:ax1 - mx] * np.float32(1 / 255)
    return out


def make_renderer(config: GeneratorConfig) -> FaceRenderer:
    """The renderer of the shipped face model with ``config``'s light and raster settings."""
    return FaceRenderer(default_model(), shading_sigma=config.shading_sigma, raster_px=config.raster_px)
