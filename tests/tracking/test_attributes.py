"""The shipped apparent-sex and age model: fitted on synthetic faces only, right on real ones."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
from conftest import SAMPLE, shared_file

from deidstream.tracking.attributes import MODEL_FILE, PROVENANCE_FILE, AttributeModel, provenance
from deidstream.tracking.eid import EidRecognizer

# apparent sex of the one person in each shared clip, by eye
FEMALE = ["portrait_s18.mp4", "portrait_s29.mp4", "portrait_s32.mp4", "talking_d6.mp4", "talking_d10.mp4",
          "talking_head_4.mp4", "talking_head_5.mp4", "talking_head_speech.mp4"]
MALE = ["talking_d9.mp4", "talking_d13.mp4", "talking_d20.mp4", "talking_head_1.mp4", "talking_head_2.mp4"]


@pytest.fixture(scope="module")
def recognizer():
    return EidRecognizer()


def descriptors(recognizer, path, frames=6, every=15):
    """Descriptors of the largest face on ``frames`` frames, one every ``every``."""
    out = []
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i % every:
                continue
            image = frame.to_ndarray(format="rgb24")
            faces = recognizer.detect(image)
            if faces:
                face = max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
                out.append(recognizer.describe(image, [face])[0])
            if len(out) >= frames:
                break
    return np.array(out).reshape(-1, 128)


def test_the_shipped_model_and_its_provenance():
    model = AttributeModel.load()
    assert AttributeModel.load() is model  # read once
    assert model.sex_weights.shape == model.age_weights.shape == (129,)
    assert model.weights.shape == (2, 129)
    facts = provenance()
    assert facts == json.loads(PROVENANCE_FILE.read_text()) and MODEL_FILE.is_file()
    training = json.dumps(facts["training_data"]).lower()
    assert "synthetic_sfhq" in training and "utk" not in training and "lfw" not in training
    assert facts["cross_validated"]["sex_accuracy"] >= 0.85
    assert facts["validation"]["utkface_1500"]["sex_accuracy_adults"] >= 0.85


def test_the_sample_woman_is_seen_as_a_woman(recognizer):
    d = descriptors(recognizer, SAMPLE, frames=8, every=50)
    assert len(d) >= 6
    model = AttributeModel.load()
    female = model.female(d)
    assert np.median(female) > 0.5 and (female > 0.5).mean() >= 0.75
    assert 18 <= float(np.median(model.age(d))) <= 45  # a young adult
    assert set(model.age_band(d)) <= {"t", "y", "m"}


@pytest.mark.parametrize("clip", FEMALE + MALE)
def test_apparent_sex_of_real_people(recognizer, clip):
    d = descriptors(recognizer, shared_file(f"videos/{clip}"), frames=4, every=20)
    assert len(d) >= 2, f"{clip}: no face found"
    female = float(np.median(AttributeModel.load().female(d)))
    assert (female > 0.5) == (clip in FEMALE), f"{clip}: P(female) {female:.2f}"


def test_predictions_follow_the_weights():
    model = AttributeModel(np.r_[np.ones(128), -1.0], np.r_[np.zeros(128), 30.0])
    d = np.zeros((3, 128))
    d[1, :] = 0.1
    assert np.allclose(model.female(d), 1 / (1 + np.exp(-np.array([-1.0, 11.8, -1.0]))), atol=1e-5)
    assert np.allclose(model.age(d), 30.0) and list(model.age_band(d)) == ["y"] * 3
    assert np.allclose(model.predict(d)[:, 0], model.female(d))
    older = AttributeModel(model.sex_weights, np.r_[np.zeros(128), 70.0])
    assert list(older.age_band(d[:1])) == ["o"]
