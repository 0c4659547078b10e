"""The lock on the natural identity space: per person, a surrogate assembled from donors of their apparent
sex and age, toned to their skin, verified to be at least τ from them in their own frames.

Every candidate is a natural face (one donor's real texture, a donor's face shape), so nothing climbs toward the
recogniser's distance. With M_c (:mod:`deidstream.networks.mapper`, the default) one forward pass predicts how far
each donor's render would land from the person; donors are ranked by the paper's trade-off on those predictions
(:func:`deidstream.engine.fit.mapped_score`: at least τ, the person's apparent sex and age, skin tone and facial
hair kept), the key's order for their face (:mod:`deidstream.engine.keyed_order`) breaking near-ties, and rendered
into the person's best views a few at a time until one passes every bound. Without it, the keyed search renders
``explore`` donors in the key's order and keeps, among those that pass, the best fit
(:func:`deidstream.engine.fit.attribute_fit`) with a little preference for a wider margin over τ. Either way the
person's embedding and the key, not their place in the run, fix the surrogate; two people of a run never get the
same base donor, and each surrogate keeps ``min_distance`` from everyone else of the video and their surrogates.
(A surrogate may look like its donor: the donors are synthetic, nobody real, so that identifies no one.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from deidstream.config import AGE_BAND_YEARS, LockConfig, age_band
from deidstream.engine.fit import Subject, attribute_fit, mapped_score
from deidstream.engine.generator.aux import canonical_shape
from deidstream.engine.generator.compose import (
    CHEEKS,
    NOSE,
    Composer,
    Recipe,
)
from deidstream.engine.generator.face_render import MIN_TONE_PIXELS, FaceRenderer, Surrogate
from deidstream.engine.generator.glasses import wears_glasses
from deidstream.engine.generator.masks import polygons_mask
from deidstream.engine.generator.tone import SkinTone, ita_difference, ita_of, median_lab
from deidstream.engine.keyed_order import KeyedOrder
from deidstream.engine.lock import Lock, face_chip
from deidstream.errors import ConfigError
from deidstream.networks.mapper import IdentityMapper, subject_features
from deidstream.types import FaceView

log = logging.getLogger(__name__)
MID_FACE = (*CHEEKS, *NOSE)  # the skin a viewer reads a complexion from: both cheeks below the eyes, the nose
# (n, 128) E_id descriptors → (n,) P(female), (n,) age in years
Attributes = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, slots=True)
class _Judged:
    recipe: Recipe
    surrogate: Surrogate
    distance: float  # worst over the views it was rendered in
    nearest_donor: float
    nearest_other: float
    female: float  # apparent sex of the output
    age: float
    output: np.ndarray  # its E_id in the first view
    tone_off: float = 0.0  # ITA° of its cheeks and nose against the person's, mean over the views


class NaturalLocker:
    """Chooses and verifies natural surrogates; remembers accepted outputs (people never look alike)."""

    def __init__(self, renderer: FaceRenderer, composer: Composer, recognizer: object, key: bytes,
                 attributes: Attributes, config: LockConfig | None = None, *, shape_change: float = 0.7,
                 mapper: IdentityMapper | None = None) -> None:
        if not key:
            raise ConfigError("the identity key must not be empty")
        self.renderer = renderer
        self.composer = composer
        self.recognizer = recognizer
        self.attributes = attributes
        self.config = config or LockConfig()
        self.shape_change = shape_change
        bank = composer.bank
        self._order = KeyedOrder(key, np.nanmean(bank.descriptors.astype(np.float64), axis=0), len(bank))
        self.mapper = mapper
        self._donor_reads: tuple[np.ndarray, np.ndarray] | None = None  # each donor's own apparent sex and age
        self._mesh = renderer.model.mesh
        self._accepted: list[np.ndarray] = []
        self._used: set[int] = set()  # base donors given to someone this run
        self.pause_when: Callable[[], bool] | None = None

    def __repr__(self) -> str:  # never show the key
        return f"NaturalLocker(tau={self.config.tau}, locked={len(self._accepted)})"

    def warm(self) -> None:
        """Builds ahead what the first lock would build while its person waits: each donor's own apparent sex and
        age and facial hair, and OpenCV's CIELab tables (its first float conversion to Lab takes about 0.1 s).
        Cold, the first lock of a process took about 0.12 s longer than the same lock warmed."""
        cv2.cvtColor(np.zeros((1, 1, 3), np.float32), cv2.COLOR_RGB2LAB)
        self._own_reads()
        for donor in range(len(self.composer.bank)):
            self.composer.donor_hair(donor)

    def _own_reads(self) -> tuple[np.ndarray, np.ndarray]:
        """(D,) each donor's own apparent sex and (D,) age, as the attribute model reads its descriptor; read once."""
        if self._donor_reads is None:
            self._donor_reads = self.attributes(self.composer.bank.descriptors.astype(np.float32))
        return self._donor_reads

    def lock(self, label: int, embedding: np.ndarray, exemplars: list[FaceView], others: np.ndarray | None = None,
             *, first_attempt: int = 0, verify_views: int = 2) -> Lock:
        """Person ``label``'s surrogate, verified in their first ``verify_views`` views (best first)."""
        cfg = self.config
        views = exemplars[:verify_views]
        p_female, years = self.attributes(np.asarray(embedding, np.float32)[None])
        female, age = float(p_female[0]), float(years[0])
        tone = self.composer.tone_of(exemplars[:3])
        shape = np.mean([canonical_shape(v.points, self._mesh.vertices, self._mesh.weights) for v in views], axis=0)
        nearby = np.concatenate([np.zeros((0, 128), np.float32) if others is None else np.asarray(others, np.float32),
                                 np.array(self._accepted, np.float32).reshape(-1, 128)])
        searched = min(cfg.search_views, len(views))
        glasses = wears_glasses(exemplars)  # their frames stay in front, in the views judged too
        if self.mapper is not None:
            return self._mapped(label, embedding, female, age, tone, shape, views, nearby, glasses, first_attempt)
        order = self._order_for(embedding, female >= 0.5, age, None if tone is None else tone.ita, first_attempt)
        judged: list[_Judged] = []
        while len(judged) < min(self._budget(judged), len(order)):
            batch = order[len(judged):len(judged) + cfg.per_round][: self._budget(judged) - len(judged)]
            judged += self._judge(batch, tone, shape, embedding, views[:searched], nearby, glasses)
        kept = self._choose(judged, female, age, embedding, views[searched:], nearby, order,
                            ita=None if tone is None else tone.ita, hair=None if tone is None else tone.hair)
        return self._outcome(label, kept, judged)

    def _outcome(self, label: int, kept: _Judged | None, judged: list[_Judged]) -> Lock:
        """The lock for ``label``: ``kept`` remembered (nobody else gets its donor or looks like it), or none."""
        cfg, tried = self.config, len(judged)
        if kept is not None:
            self._accepted.append(kept.output)
            self._used.add(kept.recipe.base)
            return Lock(label, kept.surrogate, kept.distance, tried, kept.nearest_donor, kept.nearest_other)
        best = max(judged, key=lambda j: j.distance, default=None)
        log.info("person %d: no natural surrogate reached tau=%.2f in %d candidates (%s)", label, cfg.tau, tried,
                 "none judged" if best is None else f"best {best.distance:.2f}")
        return Lock(label, None, None if best is None else best.distance, tried,
                    0.0 if best is None else best.nearest_donor, 0.0 if best is None else best.nearest_other)

    def _mapped(self, label: int, embedding: np.ndarray, female: float, age: float, tone: SkinTone | None,
                shape: np.ndarray, views: list[FaceView], nearby: np.ndarray, glasses: bool, attempt: int) -> Lock:
        """M_c's order for this person (:meth:`_mapped_order`), ``mapped_round`` donors judged at a time; the first
        that passes every bound in the search views and then in the further views, and whose render E_id reads as
        the person's apparent sex, is kept (up to ``candidates``; one of the other sex only where none of theirs
        passes). A second search starts past the ``attempt`` donors the first judged."""
        cfg = self.config
        order = self._mapped_order(embedding, female, age, tone)[attempt:][: cfg.candidates]
        searched = min(cfg.search_views, len(views))
        judged: list[_Judged] = []
        reserve = None  # the first that passed but reads as the other sex: kept only if none of theirs passes
        for start in range(0, len(order), cfg.mapped_round):
            batch = self._judge(order[start:start + cfg.mapped_round], tone, shape, embedding, views[:searched],
                                nearby, glasses)
            judged += batch
            for j in batch:
                kept = self._verified(j, embedding, views[searched:], nearby)
                if kept is not None and (kept.female >= 0.5) == (female >= 0.5):
                    return self._outcome(label, kept, judged)
                reserve = reserve or kept
        return self._outcome(label, reserve, judged)

    def _mapped_order(self, embedding: np.ndarray, female: float, age: float, tone: SkinTone | None) -> list[int]:
        """The donors of the person's apparent sex not given to anyone else this run, best first by
        :func:`deidstream.engine.fit.mapped_score` on M_c's predicted distances and what is known of each donor
        before rendering (its labels and its own apparent sex and age), the key's order for their face breaking
        near-ties."""
        bank, mapper = self.composer.bank, self.mapper
        assert mapper is not None
        pool = np.array([i for i in np.flatnonzero(bank.sex == ("f" if female >= 0.5 else "m")) if i not in self._used],
                        np.int64)
        reads = self._own_reads()
        hair = None if tone is None else tone.hair
        features = subject_features(np.asarray(embedding, np.float32)[None], mapper.centre, np.array([female]),
                                    np.array([age]), np.array([np.nan if tone is None else tone.ita]),
                                    (np.full(2, np.nan) if hair is None else hair)[None])
        donor_hair = np.array([np.full(2, np.nan) if (h := self.composer.donor_hair(int(d))) is None else h
                               for d in pool])
        fit = attribute_fit(self.config, Subject(female, age, age_band(age), None if tone is None else tone.ita, hair),
                            reads[0][pool], reads[1][pool], bank.age[pool], bank.ita[pool],
                            np.zeros(len(pool)), donor_hair)
        score = mapped_score(self.config, fit, mapper.distances(features)[0][pool],
                             self._order.affinity(embedding)[pool])
        return [int(d) for d in pool[np.argsort(-score, kind="stable")]]

    def _verified(self, j: _Judged, embedding: np.ndarray, views: list[FaceView], nearby: np.ndarray) -> _Judged | None:
        """``j`` if it passes τ and keeps from everyone else in the views it was judged in and in ``views``."""
        cfg = self.config
        if j.distance < cfg.tau or j.nearest_other < cfg.min_distance:
            return None
        if not views:
            return j
        more, _ = self._describe([(j.recipe, j.surrogate)], views)
        d, nd, no = (min(v) for v in zip(*(self._distances(embedding, out[0], nearby) for out in more)))
        if d < cfg.tau or no < cfg.min_distance:
            return None
        return _Judged(j.recipe, j.surrogate, min(d, j.distance), min(nd, j.nearest_donor), min(no, j.nearest_other),
                       j.female, j.age, j.output, j.tone_off)

    def _budget(self, judged: list[_Judged]) -> int:
        """How many candidates to judge: ``explore``; up to ``candidates`` while none has passed τ but the
        best came within ``give_up_margin`` twice over (a small face, whose best of the first falls just short)."""
        cfg = self.config
        if len(judged) < cfg.explore or any(j.distance >= cfg.tau for j in judged):
            return cfg.explore
        best = max(j.distance for j in judged)
        return cfg.candidates if best >= cfg.tau - 2 * cfg.give_up_margin else cfg.explore

    def _order_for(self, embedding: np.ndarray, female: bool, age: float, ita: float | None,
                   attempt: int) -> list[int]:
        """The donors this person tries, in order: of the donors of their apparent sex not given to anyone else
        this run, the ``2 * explore`` nearest them in apparent age (a step per ``age_step`` years between a
        donor's age band and theirs) and skin tone (a step per ``skin_tolerance``° of ITA: a donor far from
        their complexion needs a large colour shift, which shows), in the key's order for their face. Nearness
        is continuous in what is read of them: read 36 years old in one file and 39 in another (either side
        of two bands' border), they draw from nearly the same donors; and the key still decides which half of
        them are judged first, so another key gives other surrogates."""
        bank, cfg = self.composer.bank, self.config
        pool = np.array([i for i in np.flatnonzero(bank.sex == ("f" if female else "m")) if i not in self._used],
                        np.int64)
        far = np.abs(np.asarray(list(AGE_BAND_YEARS.values()))[bank.age[pool]] - age) / cfg.age_step
        if ita is not None:
            far = far + np.abs(bank.ita[pool] - ita) / cfg.skin_tolerance
        return self._order.rank(embedding, pool[np.argsort(far, kind="stable")[: 2 * cfg.explore]], attempt)

    def surrogate(self, recipe: Recipe, tone: SkinTone | None, subject_shape: np.ndarray,
                  glasses: bool = False) -> Surrogate:
        donor_shape = self.composer.bank.shapes[recipe.base]
        shape = (1.0 - self.shape_change) * subject_shape + self.shape_change * donor_shape
        texture = self.composer.texture(recipe, tone)
        return Surrogate(recipe, shape.astype(np.float32), texture, glasses, self.composer.parting.parted(texture))

    def _judge(self, donors: list[int], tone: SkinTone | None, shape: np.ndarray, embedding: np.ndarray,
               views: list[FaceView], nearby: np.ndarray, glasses: bool) -> list[_Judged]:
        """Each donor's surrogate rendered into ``views``, judged by its worst view."""
        candidates = [(Recipe(d), self.surrogate(Recipe(d), tone, shape, glasses)) for d in donors]
        outputs, tone_off = self._describe(candidates, views)  # (views, candidates, 128), (views, candidates)
        attrs = self.attributes(outputs[0])
        judged = []
        for k, (recipe, surrogate) in enumerate(candidates):
            d, nd, no = (min(v) for v in zip(*(self._distances(embedding, out[k], nearby) for out in outputs)))
            judged.append(_Judged(recipe, surrogate, d, nd, no, float(attrs[0][k]), float(attrs[1][k]), outputs[0][k],
                                  float(tone_off[:, k].mean())))
        return judged

    def _choose(self, judged: list[_Judged], female: float, age: float, embedding: np.ndarray,
                views: list[FaceView], nearby: np.ndarray, order: list[int], ita: float | None = None,
                hair: np.ndarray | None = None) -> _Judged | None:
        """The candidate that keeps the subject's look best (:func:`deidstream.engine.fit.attribute_fit`, with a
        little preference for a wider margin over τ; among up to ``key_choice`` within ``key_tie`` of the best, the
        one first in the person's keyed ``order``) among those that pass every bound (in the search views, then in
        the further ``views``)."""
        cfg = self.config
        passing = [j for j in judged if j.distance >= cfg.tau and j.nearest_other >= cfg.min_distance]
        bank = self.composer.bank
        subject = Subject(female, age, age_band(age), ita, hair)

        def score(j: _Judged) -> float:
            fit = attribute_fit(cfg, subject, np.float64(j.female), np.float64(j.age), bank.age[j.recipe.base],
                                bank.ita[j.recipe.base], np.float64(j.tone_off),
                                self.composer.donor_hair(j.recipe.base))
            return float(fit) + min(j.distance - cfg.tau, 0.2)

        ranked = sorted(passing, key=score, reverse=True)
        log.debug("%d of %d candidates pass; scores (donor, score, place in the keyed order): %s", len(passing),
                  len(judged), [(j.recipe.base, round(score(j), 3), order.index(j.recipe.base)) for j in ranked[:8]])
        top = [j for j in ranked[:cfg.key_choice] if score(j) >= score(ranked[0]) - cfg.key_tie]
        ranked = sorted(top, key=lambda j: order.index(j.recipe.base)) + ranked[len(top):]
        return next((kept for j in ranked if (kept := self._verified(j, embedding, views, nearby)) is not None), None)

    def _distances(self, embedding: np.ndarray, output: np.ndarray, nearby: np.ndarray) -> tuple[float, float, float]:
        distance = float(np.linalg.norm(output - embedding))
        donors = self.composer.bank.descriptors
        nearest_donor = float(np.nanmin(np.linalg.norm(donors - output, axis=1), initial=9.0))
        nearest_other = float(np.linalg.norm(nearby - output, axis=1).min(initial=9.0))
        return distance, nearest_donor, nearest_other

    def _describe(self, candidates: list[tuple[Recipe, Surrogate]],
                  views: list[FaceView]) -> tuple[np.ndarray, np.ndarray]:
        """(views, candidates, 128): E_id of each candidate rendered into each view, in one batch; and
        (views, candidates): the ITA° difference of its cheeks and nose there from the view's own."""
        chips, tone_off = [], np.zeros((len(views), len(candidates)), np.float32)
        for v, view in enumerate(views):
            own = canonical_shape(view.points, self._mesh.vertices, self._mesh.weights)
            mid_face = polygons_mask([view.points[list(loop), :2] for loop in MID_FACE], view.image.shape[:2]) > 0
            subject = median_lab(view.image[mid_face]) if mid_face.sum() >= MIN_TONE_PIXELS else None
            for k, (_, surrogate) in enumerate(candidates):
                image = view.image.copy()
                self.renderer.paint(image, view.points, own, surrogate, source=view.image)  # light from the view
                chips.append(face_chip(self.recognizer, image, view.points))
                if subject is not None:
                    tone_off[v, k] = ita_difference(ita_of(median_lab(image[mid_face])), ita_of(subject))
                if self.config.pause_s and (self.pause_when is None or self.pause_when()):
                    time.sleep(self.config.pause_s)  # the GIL and a core back to the frames
        out = self.recognizer.describe_chips(chips)  # type: ignore[attr-defined]
        return np.asarray(out, np.float32).reshape(len(views), len(candidates), -1), tone_off

