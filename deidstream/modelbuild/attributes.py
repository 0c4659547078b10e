"""Apparent sex and age from dlib face descriptors: small linear models fitted on labelled
faces (UTKFace file names carry age and sex), used to label the synthetic donors so a
surrogate can be matched to its subject. Only the fitted weights and the donors' labels
are kept; no labelled face or its descriptor is shipped."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from deidstream.modelbuild.collect import image_files, read_rgb

log = logging.getLogger(__name__)
UTK_NAME = re.compile(r"^(\d+)_([01])_(\d)_")


@dataclass(frozen=True, slots=True)
class AttributeModel:
    """``sex`` (129,) logistic weights for P(female) (bias last); ``age`` (129,) ridge weights."""

    sex: np.ndarray
    age: np.ndarray

    def predict(self, descriptors: np.ndarray) -> np.ndarray:
        """(n, 2): P(female), age in years."""
        x = np.hstack([descriptors, np.ones((len(descriptors), 1), np.float32)])
        return np.stack([expit(x @ self.sex), np.clip(x @ self.age, 0.0, 100.0)], axis=1).astype(np.float32)


def describe_largest(recognizer: object, image: np.ndarray) -> np.ndarray | None:
    faces = recognizer.detect(image)  # type: ignore[attr-defined]
    if not faces:
        return None
    face = max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
    return recognizer.describe(image, [face])[0]  # type: ignore[attr-defined]


def fit_attributes(recognizer: object, utk_folder: Path, *, limit: int = 0) -> tuple[AttributeModel, dict]:
    descriptors, female, age = [], [], []
    for path in image_files(utk_folder)[: limit or None]:
        m = UTK_NAME.match(path.name)
        image = read_rgb(path)
        if m is None or image is None:
            continue
        d = describe_largest(recognizer, image)
        if d is None:
            continue
        descriptors.append(d)
        age.append(float(m.group(1)))
        female.append(float(m.group(2)))
    x = np.hstack([np.array(descriptors), np.ones((len(descriptors), 1))])
    y_sex, y_age = np.array(female), np.array(age)
    n = len(x)
    held = np.arange(n) % 5 == 0  # every 5th face held out to report accuracy
    sex_w = _logistic(x[~held], y_sex[~held], l2=1e-2)
    age_w = np.linalg.solve(x[~held].T @ x[~held] + 1.0 * np.eye(x.shape[1]), x[~held].T @ y_age[~held])
    accuracy = float(((expit(x[held] @ sex_w) > 0.5) == (y_sex[held] > 0.5)).mean())
    age_mae = float(np.abs(x[held] @ age_w - y_age[held]).mean())
    sex_w = _logistic(x, y_sex, l2=1e-2)
    age_w = np.linalg.solve(x.T @ x + 1.0 * np.eye(x.shape[1]), x.T @ y_age)
    facts = {"labelled_faces": n, "sex_accuracy_held_out": round(accuracy, 3), "age_mae_held_out": round(age_mae, 1)}
    log.info("attributes: %s", facts)
    return AttributeModel(sex_w.astype(np.float32), age_w.astype(np.float32)), facts


def _logistic(x: np.ndarray, y: np.ndarray, *, l2: float) -> np.ndarray:
    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        p = expit(x @ w)
        eps = 1e-9
        value = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)) + l2 * w[:-1] @ w[:-1]
        grad = x.T @ (p - y) / len(y)
        grad[:-1] += 2 * l2 * w[:-1]
        return float(value), grad

    return minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
