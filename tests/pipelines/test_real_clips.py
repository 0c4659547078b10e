"""The whole pipeline on real shared clips: timing and audio kept, every found face hidden."""

from __future__ import annotations

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest
from conftest import shared_file
from media import assert_same_video, facts, make_clip, read_rgb

from deidstream.api import anonymize
from deidstream.cli import main
from deidstream.config import DetectorConfig
from deidstream.geometry.boxes import containment_matrix
from deidstream.tracking.detector import MediaPipeDetector, detect_upright
from deidstream.types import Frame


@pytest.mark.parametrize("clip", ["videos/stage_multi_person_cuts.mp4", "videos/face_then_no_face_hevc.mov"])
def test_real_clip_keeps_frames_timing_size_and_audio(tmp_path, clip):
    src = shared_file(clip)
    out = tmp_path / "out.mp4"
    assert main([str(src), str(out), "-q"]) == 0
    a, b = facts(src), facts(out)
    assert_same_video(a, b)
    assert b.audio_duration == pytest.approx(a.audio_duration, abs=1e-3)


def contained(box: np.ndarray, regions: list[list[int]], fraction: float = 0.9) -> bool:
    return bool(regions) and containment_matrix(box[None], np.array(regions, np.float32)).max() >= fraction


# (mode, how much of a found face must lie in a changed region, least mean change over its box).
# A surrogate's region is its render (the mesh plus a margin): a detector's box may reach a few
# pixels past the chin, and the hair and background inside the box stay; its identity change is
# asserted by E_id distance in test_surrogate.py.
MODES = [("blur", 0.9, 10.0), ("surrogate", 0.85, 4.0)]


@pytest.mark.parametrize("mode,inside,change", MODES)
def test_every_found_face_is_changed_and_nothing_else(tmp_path, mode, inside, change):
    """Lossless output: pixels outside hidden regions are bit-exact; each face a full detector
    finds in the input (every model, every frame) lies in a hidden region that changed."""
    src = shared_file("videos/single_face_short.mp4")
    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    assert main([str(src), str(out), "-q", "--mode", mode, "--lossless", "--report", str(report)]) == 0
    regions = json.loads(report.read_text())["hidden_regions_per_frame"]
    before, after = read_rgb(src), read_rgb(out)
    assert len(before) == len(after) == len(regions)
    found_faces = 0
    with MediaPipeDetector(DetectorConfig(full_range_every=1)) as det:
        for i, (a, b, hidden) in enumerate(zip(before, after, regions)):
            outside = np.ones(a.shape[:2], bool)
            for x0, y0, x1, y1 in hidden:
                outside[max(y0, 0):y1, max(x0, 0):x1] = False
            assert (a[outside] == b[outside]).all(), f"frame {i}: pixels outside the hidden regions changed"
            for face in det.detect(a).xyxy:
                found_faces += 1
                assert contained(face, hidden, inside), f"frame {i}: {face.tolist()} not inside a hidden region"
                x0, y0, x1, y1 = np.round(face).astype(int)
                diff = np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1].astype(int)).mean()
                assert diff > change, f"frame {i}: face region barely changed ({diff:.1f})"
    assert found_faces >= len(before) * 0.9


@pytest.mark.parametrize("clip", ["videos/stage_multi_person_cuts.mp4", "videos/two_faces_selfie_portrait.mp4"])
def test_a_face_found_in_one_frame_is_hidden_in_the_next(tmp_path, clip):
    """The tracker's coverage, in blur mode, whose regions are exactly the boxes it hides (a
    rendered surrogate follows the face's landmarks instead; the test above covers it)."""
    src = shared_file(clip)
    report = tmp_path / "r.json"
    assert main([str(src), str(tmp_path / "out.mp4"), "-q", "--mode", "blur", "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    dets, hidden = r["detection_boxes_per_frame"], r["hidden_regions_per_frame"]
    assert sum(map(len, dets)) > 0
    for t in range(1, len(dets)):
        for face in np.array(dets[t - 1], np.float32).reshape(-1, 4):
            assert contained(face, hidden[t], 0.8), f"frame {t}: face seen in frame {t - 1} left bare"
        for face in np.array(dets[t], np.float32).reshape(-1, 4):
            assert contained(face, hidden[t], 0.99)


def test_two_people_get_two_tracks_and_report_is_consistent(tmp_path):
    src = shared_file("videos/two_faces_selfie_portrait.mp4")
    report = tmp_path / "r.json"
    assert main([str(src), str(tmp_path / "out.mp4"), "-q", "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["frames"] == r["frames_written"] == len(r["faces_per_frame"]) == facts(src).frames
    long_tracks = [t for t in r["tracks"] if t["frames_detected"] > 10]
    assert len(long_tracks) >= 2
    for t in r["tracks"]:
        assert t["frames_covered"] == t["frames_detected"] + t["frames_coasted"]
        assert t["last_frame"] - t["first_frame"] + 1 >= t["frames_covered"]
    assert sum(r["faces_per_frame"]) == sum(t["frames_covered"] for t in r["tracks"])


def test_detector_finds_both_people():
    photo = cv2.cvtColor(cv2.imread(str(shared_file("images/two_people.jpg"))), cv2.COLOR_BGR2RGB)
    with MediaPipeDetector() as det:
        people = det.detect(photo)
    assert len(people) == 2
    assert people.keypoints.shape == (2, 6, 2)


@pytest.mark.parametrize("rotation", [90, 270])
def test_faces_are_found_upright_in_rotated_video(tmp_path, rotation):
    photo = cv2.cvtColor(cv2.imread(str(shared_file("images/two_people.jpg"))), cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (480, round(240 * photo.shape[0] / photo.shape[1]) * 2))
    stored = np.ascontiguousarray(np.rot90(photo, -rotation // 90))  # the player turns it back upright
    src = make_clip(tmp_path / "rot.mp4", frames=12, size=(stored.shape[1], stored.shape[0]), images=[stored],
                    rotation=rotation, audio=None, options={"crf": "10"})
    out = tmp_path / "out.mp4"
    report = anonymize(src, out)
    assert facts(out).rotation == rotation
    assert min(report.detections_per_frame) == 2
    with MediaPipeDetector(DetectorConfig(full_range_every=1)) as det:
        for i, (a, b) in enumerate(zip(read_rgb(src), read_rgb(out))):
            faces = detect_upright(det, Frame(i, a, pts=i, time_base=Fraction(1, 24), rotation=rotation))
            assert len(faces) == 2
            for x0, y0, x1, y1 in np.round(faces.xyxy).astype(int):
                assert np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1].astype(int)).mean() > 10


# stage_multi_person_cuts: after the cut at frame 211 a man in the audience (top left, this box)
# is first found several frames late: no MediaPipe model scores him at 211-216 at the default
# settings, dlib's HOG detector does at 211-212.
AUDIENCE_MAN = np.array([33, 73, 96, 136], np.float32)
CUT, SPAN = 211, (195, 235)


@pytest.mark.parametrize("mode", ["blur", "surrogate"])
def test_a_face_found_late_is_hidden_from_the_start_of_its_shot(tmp_path, mode):
    src = make_clip(tmp_path / "stage.mp4", images=read_rgb(shared_file("videos/stage_multi_person_cuts.mp4"))[
        SPAN[0]:SPAN[1]], frames=SPAN[1] - SPAN[0], size=(640, 360), rate=30, audio=None, options={"crf": "10"})
    report = tmp_path / "r.json"
    assert main([str(src), str(tmp_path / "out.mp4"), "-q", "--mode", mode, "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    cut = CUT - SPAN[0]
    found = [i for i, dets in enumerate(r["detection_boxes_per_frame"]) if contained(AUDIENCE_MAN, dets, 0.5)]
    assert found and cut + 3 <= found[0] < cut + 12, f"the man is first detected at {found[:1]}, not late"
    hidden = r["hidden_regions_per_frame"]
    bare = [i for i in range(cut, found[0] + 1) if not contained(AUDIENCE_MAN, hidden[i], 0.8)]
    assert not bare, f"frames {bare}: the man is bare before his first detection"
    assert not any(contained(AUDIENCE_MAN, hidden[i], 0.5) for i in range(cut - 3, cut)), \
        "the back-fill reached into the shot before the cut"
