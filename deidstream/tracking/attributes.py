"""Apparent sex and age of a face from its dlib descriptor (E_id), for matching a surrogate to its subject
and for ``deidstream evaluate`` to say whether a viewer would still see the same kind of person.

Two linear models on the 128-d descriptor (bias last): a logistic regression for P(female) and a ridge
regression for age in years. The shipped weights (``models/attributes.npz``) were fitted only on hand
labels of synthetic SFHQ faces (MIT); ``models/attributes.json`` beside them says how, and how well they do
on real faces they never saw. ``python -m deidstream.modelbuild.attributes`` rebuilds both.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.special import expit

from deidstream.config import AGE_BAND_YEARS

log = logging.getLogger(__name__)
MODEL_DIR = Path(__file__).resolve().parent / "models"
MODEL_FILE = MODEL_DIR / "attributes.npz"
PROVENANCE_FILE = MODEL_DIR / "attributes.json"
DIM = 128
# Age bands of the hand labels and the ages (years) the ridge regression is fitted to.
BAND_CENTRES = AGE_BAND_YEARS
BANDS = tuple(BAND_CENTRES)
# a predicted age falls into the band whose centre is nearest: the cuts are the midpoints
BAND_CUTS = np.array([(a + b) / 2 for a, b in zip(list(BAND_CENTRES.values()), list(BAND_CENTRES.values())[1:])])


def _with_bias(descriptors: np.ndarray) -> np.ndarray:
    x = np.asarray(descriptors, np.float64).reshape(-1, DIM)
    return np.hstack([x, np.ones((len(x), 1))])


@dataclass(frozen=True, slots=True)
class AttributeModel:
    """``sex_weights`` (129,): logistic weights for P(female); ``age_weights`` (129,): ridge weights for
    age in years; both act on a raw dlib descriptor with a 1 appended (the face model's format)."""

    sex_weights: np.ndarray
    age_weights: np.ndarray

    def female(self, descriptors: np.ndarray) -> np.ndarray:
        """(n,) P(female) of (n, 128) descriptors."""
        return expit(_with_bias(descriptors) @ self.sex_weights).astype(np.float32)

    def age(self, descriptors: np.ndarray) -> np.ndarray:
        """(n,) apparent age in years, clipped to 0-100."""
        return np.clip(_with_bias(descriptors) @ self.age_weights, 0.0, 100.0).astype(np.float32)

    def age_band(self, descriptors: np.ndarray) -> np.ndarray:
        """(n,) band letters (c child, t teen, y young adult, m middle-aged, o older) of the predicted ages."""
        return np.array(BANDS)[np.searchsorted(BAND_CUTS, self.age(descriptors))]

    def predict(self, descriptors: np.ndarray) -> np.ndarray:
        """(n, 2): P(female), age in years (the face model's ``donor_attributes`` columns)."""
        return np.stack([self.female(descriptors), self.age(descriptors)], axis=1).astype(np.float32)

    @property
    def weights(self) -> np.ndarray:
        """(2, 129): sex then age weights, as the face model stores them (``attribute_weights``)."""
        return np.stack([self.sex_weights, self.age_weights]).astype(np.float32)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, sex_weights=self.sex_weights.astype(np.float32), age_weights=self.age_weights.astype(np.float32))

    @classmethod
    def read(cls, path: Path) -> AttributeModel:
        with np.load(path) as z:
            sex, age = z["sex_weights"].astype(np.float64), z["age_weights"].astype(np.float64)
        if sex.shape != (DIM + 1,) or age.shape != (DIM + 1,):
            raise ValueError(f"{path}: expected two ({DIM + 1},) weight vectors, got {sex.shape} and {age.shape}")
        return cls(sex, age)

    @staticmethod
    def load() -> AttributeModel:
        """The shipped model (read once per process)."""
        return _shipped()


@functools.cache
def _shipped() -> AttributeModel:
    return AttributeModel.read(MODEL_FILE)


def provenance() -> dict:
    """Where the shipped weights came from and how well they do (``models/attributes.json``)."""
    return json.loads(PROVENANCE_FILE.read_text())


STILL_SIDES = (160, 320)  # stills are scaled so their short side is at least, and long side at most, these


def read_still(path: Path) -> np.ndarray | None:
    """An RGB still, scaled into ``STILL_SIDES`` (HOG finds faces of 40 px and up; a 600 px
    portrait costs 5x the time of a 300 px one and describes the same: dlib cuts 150 px chips)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    f = max(STILL_SIDES[0] / min(h, w), 1.0) if min(h, w) < STILL_SIDES[0] else min(STILL_SIDES[1] / max(h, w), 1.0)
    if f != 1.0:
        rgb = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
    return rgb


def describe_largest(recognizer: object, image: np.ndarray) -> np.ndarray | None:
    """The (128,) descriptor of the largest face ``recognizer`` finds in ``image``, or None."""
    faces = recognizer.detect(image)  # type: ignore[attr-defined]
    if not faces:
        return None
    face = max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
    return recognizer.describe(image, [face])[0]  # type: ignore[attr-defined]


def describe_stills(recognizer: object, paths: Iterable[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(k, 128) descriptors of the largest face of each still and the (n,) mask of stills where one was found."""
    found, descriptors = [], []
    for path in paths:
        image = read_still(path)
        d = None if image is None else describe_largest(recognizer, image)
        found.append(d is not None)
        if d is not None:
            descriptors.append(d)
    log.info("described %d of %d stills", len(descriptors), len(found))
    return np.array(descriptors, np.float32).reshape(-1, DIM), np.array(found, bool)
