"""What a viewer sees, on real footage: the shipped sample against itself, a blurred copy and a copy
whose face turned blue. A wrong measure shows up as a number far from what these copies must give."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
from conftest import SAMPLE, SHARED
from media import make_clip

from deidstream.cli import main
from deidstream.engine.generator.compose import MOUSTACHE, NOSE
from deidstream.evaluation import viewer
from deidstream.evaluation.command import evaluate
from deidstream.evaluation.judge import DlibRecognizer
from deidstream.geometry.boxes import expand, pixel_bounds

STEP = 40  # one sample frame in 40: 12 frames of blinks, smiles and hands


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """Gallery descriptors go to a temporary cache, not the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEIDSTREAM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def frames():
    with av.open(str(SAMPLE)) as c:
        return [f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i % STEP == 0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("viewer")


def clip(folder, name, images):
    h, w = images[0].shape[:2]
    return make_clip(folder / f"{name}.mp4", frames=len(images), size=(w, h), images=images, audio=None,
                     options={"crf": "12"})


@pytest.fixture(scope="module")
def original(folder, frames):
    return clip(folder, "original", frames)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """Five other real people where the shared data is present, else an empty folder (the input's own
    people are then the whole gallery)."""
    johns = SHARED / "identities/johns_5x11"
    return johns if johns.is_dir() else tmp_path_factory.mktemp("empty_gallery")


def test_a_clip_against_itself_looks_the_same(original, frames, gallery):
    ev = evaluate(original, original, every=1, upsample=0, gallery=gallery)  # her face is 220 px: no upsampling
    s = ev.summary
    assert s["faces"] >= len(frames) - 2 and s["identities"] <= 2  # a hand over her face may split her in two
    assert s["sex_agreement"] == 1.0
    assert s["mean_abs_delta_ita"] == 0.0 and s["ita_within_10"] == 1.0 and s["p90_skin_delta_e"] == 0.0
    assert s["skin_share_ratio"] == 1.0 and s["skin_share_original"] > 0.8  # her cheeks are skin-coloured
    assert s["sharpness_ratio"] == 1.0
    assert s["patchy_faces"] == 0.0 and s["off_colour_output"] == s["off_colour_original"] <= 0.05
    assert s["openness_faces"] >= len(frames) - 4
    assert s["eye_openness_correlation"] > 0.999 and s["mouth_openness_correlation"] > 0.999
    assert s["eye_openness_error"] == 0.0 and s["mouth_openness_error"] == 0.0
    assert s["rank1_rate"] == 1.0 and all(f.reidentified_by_attack for f in ev.faces)
    assert ev.attack["input_people"] == s["identities"]
    assert all(f.female_original > 0.5 for f in ev.faces[:3])  # a woman


def test_a_blurred_copy_is_less_sharp(folder, original, frames):
    blurred = clip(folder, "blurred", [cv2.GaussianBlur(f, (0, 0), 4) for f in frames])
    ev = evaluate(original, blurred, every=1, upsample=0)
    s = ev.summary
    assert s["sharpness_ratio"] < 0.5
    assert s["skin_share_ratio"] > 0.8 and s["mean_abs_delta_ita"] < 10  # still the same skin
    assert s["median_skin_delta_e"] < 3
    assert s["rank1_rate"] is None and ev.attack == {"skipped": "no gallery given"}


def test_a_blue_face_is_not_skin(folder, original, frames):
    rec = DlibRecognizer(upsample=0)
    blue = []
    for f in frames:
        out = f.copy()
        for face in rec.detect(f):
            x0, y0, x1, y1 = pixel_bounds(expand(face.box, 0.2)[0], f.shape[1], f.shape[0])
            out[y0:y1, x0:x1] = f[y0:y1, x0:x1, ::-1]  # red and blue swapped: skin turns blue
        blue.append(out)
    s = evaluate(original, clip(folder, "blue", blue), every=1, upsample=0).summary
    assert s["skin_share_ratio"] < 0.2
    assert s["mean_abs_delta_ita"] > 30 and s["ita_within_10"] == 0.0
    assert s["median_skin_delta_e"] > 20  # measured 25.6: skin turned blue at the same lightness


def test_command_prints_and_writes_the_viewer_measures(tmp_path, gallery, capsys):
    code = main(["evaluate", str(SAMPLE), str(SAMPLE), "--every", "120", "--upsample", "0", "--gallery", str(gallery),
                 "--json", str(tmp_path / "e.json"), "--plots", str(tmp_path / "plots")])
    assert code == 0
    printed = capsys.readouterr().out
    for label in ("apparent sex agrees", "skin tone |dITA|", "sharpness (output / original", "eye openness follows",
                  "rank-1 identification"):
        assert label in printed
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["summary"]["faces"] == 4 and data["summary"]["rank1_rate"] == 1.0
    assert data["attack"]["gallery"] == str(gallery.resolve())
    face = data["faces"][0]
    assert face["sex_agrees"] is True and face["delta_ita"] == 0.0 and face["sharpness_ratio"] == 1.0
    text = json.dumps(data)
    assert "descriptor\": [" not in text and max(len(v) for v in _lists(data)) < 128  # no descriptors
    assert (tmp_path / "plots" / "worst_faces.png").is_file()


def test_command_without_a_gallery_says_the_attack_was_skipped(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here
    assert main(["evaluate", str(SAMPLE), str(SAMPLE), "--every", "240", "--upsample", "0"]) == 0
    assert "skipped (no gallery" in capsys.readouterr().out and "--gallery DIR" in caplog.text


def _lists(node):
    if isinstance(node, list):
        yield node
        for item in node:
            yield from _lists(item)
    elif isinstance(node, dict):
        for item in node.values():
            yield from _lists(item)



def _box_and_mesh(frame):
    """The judge's box of the frame's face and the face mesh placed in it, as ``evaluate`` reads them."""
    box = DlibRecognizer(upsample=0).detect(frame)[0].box
    openness = viewer.Openness()
    try:
        _, _, mesh = openness.measure(frame, np.asarray([box]))[0]
    finally:
        openness.close()
    return box, mesh


def test_skin_tone_is_read_on_skin_not_on_a_moustache(frames):
    """A moustache or a different nose changes a face but not its skin tone; a tan does."""
    frame = frames[0]
    box, mesh = _box_and_mesh(frame)
    moustache = frame.copy()
    cv2.fillPoly(moustache, [np.round(mesh[list(MOUSTACHE), :2]).astype(np.int32)], (45, 32, 25))
    m = viewer.face_measures(frame, moustache, box, mesh)
    assert m["ita_band"] is False and m["skin_delta_e"] < 0.5
    assert viewer.ita_difference(m["ita_output"], m["ita_original"]) < 0.5
    tanned = (frame.astype(np.float32) * np.float32([0.82, 0.68, 0.52])).astype(np.uint8)
    t = viewer.face_measures(frame, tanned, box, mesh)
    assert viewer.ita_difference(t["ita_output"], t["ita_original"]) > 15 and t["skin_delta_e"] > 10
    b = viewer.face_measures(frame, moustache, box, None)  # no mesh: the band below the eyes stands in
    assert b["ita_band"] is True and b["skin_delta_e"] is None


def test_a_red_streak_down_the_nose_is_a_colour_patch_and_a_colour_grade_is_not(frames):
    """A surrogate that keeps a donor's warm-lit red nose or a grey moustache band on a face whose skin is one
    colour shows patches no part of the subject's face has; the same face warmer or cooler all over does not."""
    frame = frames[0]
    box, mesh = _box_and_mesh(frame)
    lab = cv2.cvtColor(frame.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    nose = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(nose, [np.round(mesh[list(NOSE[0]), :2]).astype(np.int32)], 1)
    red = lab.copy()
    red[nose > 0, 1] += 18  # the nose's own lightness and lines, a red donor's colour
    streaked = np.clip(cv2.cvtColor(red, cv2.COLOR_LAB2RGB) * 255, 0, 255).round().astype(np.uint8)
    same, streak, graded = (viewer.face_measures(frame, out, box, mesh) for out in (
        frame, streaked, np.clip(frame.astype(np.float32) * np.float32([1.0, 0.93, 0.85]), 0, 255).astype(np.uint8)))
    assert same["off_colour_output"] == same["off_colour_original"] <= 0.05
    assert viewer.patchy(streak["off_colour_original"], streak["off_colour_output"])  # measured 0.224 against 0.003
    assert not viewer.patchy(graded["off_colour_original"], graded["off_colour_output"])  # measured 0.009
    assert viewer.face_measures(frame, streaked, box, None)["off_colour_output"] is None  # no mesh, no reading
