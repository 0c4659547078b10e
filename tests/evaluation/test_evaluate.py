"""deidstream evaluate: identical, anonymised, partly anonymised and misaligned pairs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import SAMPLE, shared_file
from media import make_clip

from deidstream.api import anonymize
from deidstream.cli import main
from deidstream.errors import InvalidInputError
from deidstream.evaluation.command import evaluate
from deidstream.evaluation.judge import DlibRecognizer
from deidstream.evaluation.outcomes import FaceOutcomes, outcome_summary

FRAMES = 8


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    img = cv2.cvtColor(cv2.imread(str(shared_file("images/two_people.jpg"))), cv2.COLOR_BGR2RGB)
    return cv2.resize(img, (640, round(320 * img.shape[0] / img.shape[1]) * 2), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def people_clip(tmp_path_factory, photo):
    path = tmp_path_factory.mktemp("eval") / "people.mp4"
    return make_clip(path, frames=FRAMES, size=(photo.shape[1], photo.shape[0]), images=[photo], audio="aac",
                     options={"crf": "12"})


def test_identical_videos(people_clip):
    ev = evaluate(people_clip, people_clip, every=2)
    s = ev.summary
    assert s["faces"] == 2 * (FRAMES // 2)
    assert s["mean_id_distance"] == 0.0
    assert s["reidentified_fraction"] == 1.0
    assert s["leak_rate"] == 1.0
    assert s["face_detectability"] == 1.0
    assert s["unaltered_faces"] == s["faces"]
    assert s["identities"] == 2
    assert ev.comparison.mismatches == []


def test_pixelated_faces_are_private_and_hard_to_detect(people_clip, tmp_path):
    out = tmp_path / "pix.mp4"
    anonymize(people_clip, out, mode="pixelate")
    s = evaluate(people_clip, out, every=2).summary
    assert s["face_detectability"] <= 0.25
    assert s["reidentified_fraction"] <= 0.25
    assert s["mean_id_distance"] > 0.6
    assert s["unaltered_faces"] == 0


def test_a_face_left_unchanged_is_reported_uncovered(people_clip, photo, tmp_path):
    faces = DlibRecognizer().detect(photo)
    assert len(faces) == 2
    x0, y0, x1, y1 = (int(v) for v in faces[0].box)
    half = photo.copy()
    small = cv2.resize(half[y0:y1, x0:x1], (4, 4), interpolation=cv2.INTER_AREA)
    half[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    out = make_clip(tmp_path / "half.mp4", frames=FRAMES, size=(photo.shape[1], photo.shape[0]), images=[half],
                    options={"crf": "12"})
    ev = evaluate(people_clip, out, every=2)
    s = ev.summary
    assert s["unaltered_faces"] == FRAMES // 2
    assert s["frames_with_unaltered_face"] == s["frames_with_faces"] == FRAMES // 2
    assert s["leak_rate"] == 1.0


def test_mismatched_frame_counts_are_reported_not_fatal(people_clip, photo, tmp_path):
    shorter = make_clip(tmp_path / "short.mp4", frames=FRAMES - 3, size=(photo.shape[1], photo.shape[0]),
                        images=[photo], audio=None, options={"crf": "12"})
    ev = evaluate(people_clip, shorter, every=1)
    text = "; ".join(ev.comparison.mismatches)
    assert f"frame count {FRAMES} -> {FRAMES - 3}" in text
    assert "3 original frames have no output frame" in text
    assert "audio streams" in text
    assert ev.summary["frames_sampled"] == FRAMES - 3


def test_command_writes_json_without_embeddings_and_plots(people_clip, tmp_path, capsys):
    out = tmp_path / "blur.mp4"
    anonymize(people_clip, out)
    code = main(["evaluate", str(people_clip), str(out), "--every", "4", "--no-attack",
                 "--json", str(tmp_path / "e.json"), "--plots", str(tmp_path / "plots")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean ID distance" in printed and "dlib HOG" in printed
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["summary"]["faces"] == 4 and data["independent_detector"].startswith("dlib HOG")
    assert 128 not in {len(v) for v in _lists(data)}  # no 128-d face descriptor is written
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "id_distance_histogram.png", "id_distance_per_frame.png", "worst_faces.png"]


def test_command_missing_file(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]) == 1
    assert "a.mp4" in capsys.readouterr().err


def _lists(node):
    if isinstance(node, list):
        yield node
        for item in node:
            yield from _lists(item)
    elif isinstance(node, dict):
        for item in node.values():
            yield from _lists(item)


def test_recognizer_accepts_strided_images(photo):
    rec = DlibRecognizer()
    view = photo[:, 1:-1]  # not contiguous, like a decoded frame with padded rows
    faces = rec.detect(view)
    assert len(faces) == 2
    assert np.allclose(rec.describe(view, faces), rec.describe(np.ascontiguousarray(view), faces))


def _frame(path, index: int) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{path} has no frame {index}")


def test_real_faces_are_confirmed():
    rec = DlibRecognizer()
    for index in (0, 150, 300):
        image = _frame(SAMPLE, index)
        faces = rec.detect(image)
        assert len(faces) == 1
        assert len(rec.confirmed(image, faces)) == 1


def test_both_people_of_a_photo_are_confirmed(photo):
    rec = DlibRecognizer()
    assert len(rec.confirmed(photo, rec.detect(photo))) == 2


def test_a_texture_hog_takes_for_a_face_is_not_counted():
    """The defocused plant behind portrait_s18's woman is a face to HOG: any anonymiser leaves it as it is,
    so counted, it reads as an unaltered face and a re-identified one."""
    frame = _frame(shared_file("videos/portrait_s18.mp4"), 105)
    rec = DlibRecognizer()
    found = rec.detect(frame)
    plant = [f for f in found if abs(f.box[0] - 141) < 12 and abs(f.box[1] - 294) < 12]
    assert plant, [f.box for f in found]
    kept = rec.confirmed(frame, found)
    assert len(kept) == len(found) - len(plant) >= 1
    assert all(f.box[2] - f.box[0] > 100 for f in kept)  # the woman


def test_the_run_report_says_what_each_evaluated_face_got(people_clip, tmp_path, capsys):
    """Blur mode hides both faces: every face the judge finds is "hidden", none has a surrogate."""
    out, report = tmp_path / "blur.mp4", tmp_path / "r.json"
    report.write_text(json.dumps(anonymize(people_clip, out, mode="blur").to_dict()))
    code = main(["evaluate", str(people_clip), str(out), "--every", "4", "--no-attack", "--report", str(report),
                 "--json", str(tmp_path / "e.json")])
    assert code == 0
    assert "surrogate on faces >= 64 px (run report)   0.0%" in capsys.readouterr().out
    data = json.loads((tmp_path / "e.json").read_text())
    assert {f["outcome"] for f in data["faces"]} == {"hidden"}
    assert data["summary"]["outcomes"]["hidden"] == data["summary"]["faces"] == 4


def test_a_judged_face_takes_the_outcome_of_the_box_that_holds_it():
    frames = [[[100, 100, 200, 220, "rendered"], [300, 100, 380, 200, "fallback"]], []]
    outcomes = FaceOutcomes(frames)
    assert outcomes.at(0, np.array([115, 130, 190, 210])) == "rendered"  # dlib's tighter box inside
    assert outcomes.at(0, np.array([310, 120, 370, 180])) == "fallback"
    assert outcomes.at(0, np.array([500, 100, 560, 160])) == "missed"  # no covered box there: a face missed
    assert outcomes.at(1, np.array([115, 130, 190, 210])) == "missed"
    assert outcomes.at(7, np.array([115, 130, 190, 210])) == "missed"  # past the report's frames


def test_coverage_counts_wide_faces_and_leaves_out_kept_ones():
    def face(width: int, outcome: str) -> SimpleNamespace:
        return SimpleNamespace(box=[0, 0, width, width], outcome=outcome)

    faces = [face(80, "rendered")] * 6 + [face(80, "fallback"), face(80, "missed"), face(80, "kept"),
                                          face(40, "fallback")]
    s = outcome_summary(faces)
    assert s["outcomes_64px"] == {"rendered": 6, "fallback": 1, "kept": 1, "hidden": 0, "missed": 1}
    assert s["outcomes"]["fallback"] == 2
    assert s["surrogate_coverage_64px"] == 0.75  # 6 of the 8 wide faces not on the keep list
    assert outcome_summary([face(80, None)]) == {}


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not a readable run report"),
    (json.dumps({"frames": 3}), "no face_boxes_per_frame"),
    (json.dumps({"face_boxes_per_frame": [[[1, 2, 3, 4, "painted"]]]}), "frame 0: expected"),
])
def test_a_bad_run_report_is_named_with_its_problem(tmp_path, content, problem):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=problem) as caught:
        FaceOutcomes.load(path)
    assert "r.json" in str(caught.value)
