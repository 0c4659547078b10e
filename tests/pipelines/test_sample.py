"""The shipped sample (``examples/sample.mp4``: one real face, hands over it, strong expressions, audio)
through the default mode, blur mode and a live relay. These run on every clone, with or without the
shared data: the face is found and changed, and frames, timestamps and audio are kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import SAMPLE
from live_peers import PeerMissing, camera_clip, rtsp_camera
from media import assert_same_video, facts

from deidstream.api import anonymize, relay
from deidstream.config import LiveSourceConfig, PipelineConfig, live_detector_config

EVERY = 12  # frames compared per run: every 12th of 472


def frames_every(path, every: int = EVERY, limit: int | None = None) -> dict[int, np.ndarray]:
    """Every ``every``-th decoded frame (RGB), by index."""
    out = {}
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if limit is not None and i >= limit:
                break
            if i % every == 0:
                out[i] = frame.to_ndarray(format="rgb24")
    return out


def face_boxes(detector, frames: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """The input's faces, as MediaPipe finds them, in the frames where it finds one."""
    found = {i: detector.detect(image) for i, image in frames.items()}
    return {i: d.xyxy[int(np.argmax(d.score))] for i, d in found.items() if len(d)}


def changed_in_face(before: np.ndarray, after: np.ndarray, box: np.ndarray) -> float:
    """Mean absolute grey-level change over the central part of the face box."""
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * 0.6, (y1 - y0) * 0.6
    ys = slice(max(0, int(cy - h / 2)), int(cy + h / 2))
    xs = slice(max(0, int(cx - w / 2)), int(cx + w / 2))
    grey = [cv2.cvtColor(np.ascontiguousarray(im[ys, xs]), cv2.COLOR_RGB2GRAY).astype(np.float32)
            for im in (before, after)]
    return float(np.abs(grey[0] - grey[1]).mean())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The default mode as a user runs it (the command, with its progress bar), blur mode by the API."""
    tmp = tmp_path_factory.mktemp("sample")
    command = [sys.executable, "-m", "deidstream", str(SAMPLE), str(tmp / "default.mp4"), "--identity-key",
               "the sample's test key", "--report", str(tmp / "default.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    default = json.loads((tmp / "default.json").read_text())
    blur = anonymize(SAMPLE, tmp / "blur.mp4", mode="blur").to_dict()
    return tmp, {"surrogate": default, "blur": blur}, done.stderr


def test_the_command_shows_one_bar_over_both_passes_and_no_third_party_chatter(runs):
    *_, stderr = runs
    states = [s.strip() for s in stderr.replace("\r", "\n").splitlines() if s.strip()]
    phases = [p for p in ("(analysing)", "(choosing surrogates)", "(rendering)") if any(p in s for s in states)]
    assert phases == ["(analysing)", "(choosing surrogates)", "(rendering)"], states[:5]
    assert any("944/944" in s for s in states), "each frame counts once per pass: 2 x 472"
    chatter = [s for s in states if "W0000" in s or ".cc:" in s or "TensorFlow Lite" in s]
    assert not chatter, chatter


@pytest.fixture(scope="module")
def originals(detector):
    frames = frames_every(SAMPLE)
    return frames, face_boxes(detector, frames)


@pytest.mark.parametrize("mode", ["surrogate", "blur"])
def test_frames_timestamps_and_audio_are_kept(runs, mode):
    tmp, reports, _ = runs
    source, output = facts(SAMPLE), facts(tmp / f"{'default' if mode == 'surrogate' else mode}.mp4")
    assert_same_video(source, output)
    assert output.audio_codec == source.audio_codec and source.audio_codec is not None
    assert abs(output.audio_duration - source.audio_duration) < 0.05
    assert reports[mode]["frames_written"] == reports[mode]["frames"] == source.frames


@pytest.mark.parametrize("mode", ["surrogate", "blur"])
def test_the_face_is_found_and_changed_in_every_sampled_frame(runs, originals, mode):
    tmp, reports, _ = runs
    report = reports[mode]
    assert report["mode"] == mode
    faces = sum(1 for n in report["faces_per_frame"] if n)
    assert faces >= 0.9 * report["frames"], "the sample shows her face in nearly every frame"
    frames, boxes = originals
    assert len(boxes) >= 0.8 * len(frames)
    out = frames_every(tmp / f"{'default' if mode == 'surrogate' else mode}.mp4")
    change = {i: changed_in_face(frames[i], out[i], box) for i, box in boxes.items()}
    unchanged = [i for i, c in change.items() if c < 6]
    assert not unchanged, f"faces left as they were in frames {unchanged}: {[round(change[i], 1) for i in unchanged]}"
    away = np.abs(frames[0][:60, :60].astype(float) - out[0][:60, :60]).mean()
    assert away < 4, "the picture away from the face is kept"


def test_the_default_mode_says_what_each_face_got(runs):
    _, reports, _ = runs
    outcomes = reports["surrogate"]["face_outcomes"]
    assert outcomes["rendered"] + outcomes["fallback"] == reports["surrogate"]["faces_covered"]
    assert len(reports["surrogate"]["people"]) == 1
    # and per frame, face by face, for `deidstream evaluate --report`
    boxes = reports["surrogate"]["face_boxes_per_frame"]
    assert [len(b) for b in boxes] == reports["surrogate"]["faces_per_frame"]
    got = [face[4] for frame in boxes for face in frame]
    assert (got.count("rendered"), got.count("fallback")) == (outcomes["rendered"], outcomes["fallback"])
    assert {face[4] for frame in reports["blur"]["face_boxes_per_frame"] for face in frame} == {"hidden"}


def test_a_live_relay_of_the_sample_hides_her_face(tmp_path, detector):
    """The sample streamed by a real RTSP camera (GStreamer's server), relayed into a recording."""
    try:
        clip = camera_clip(SAMPLE, tmp_path / "camera.mp4", seconds=4)
        with rtsp_camera(clip) as cam:
            stats = relay(cam.url, record=tmp_path / "out.mp4", mode="blur",
                          config=PipelineConfig(detector=live_detector_config()),
                          source_config=LiveSourceConfig(open_timeout_s=5, read_timeout_s=2, give_up_after_s=15),
                          max_frames=90, detector=detector)
    except PeerMissing as exc:
        pytest.skip(str(exc))
    assert stats.frames_in == 90 and stats.sent["stream"] == stats.frames_processed >= 30
    recorded = facts(tmp_path / "out.mp4")
    assert recorded.frames == stats.sent["stream"]
    assert all(b > a for a, b in zip(recorded.times, recorded.times[1:])), "timestamps increase"
    source = frames_every(clip, every=1, limit=120)
    out = frames_every(tmp_path / "out.mp4", every=1)
    # each recorded frame is one of the source's: find it by the picture away from the face (the top corners)
    checked = 0
    for k in range(0, len(out), 6):
        corner = out[k][:80, :80].astype(np.float32)
        i = min(source, key=lambda j: float(np.abs(source[j][:80, :80].astype(np.float32) - corner).mean()))
        faces = detector.detect(source[i])
        if len(faces):
            assert changed_in_face(source[i], out[k], faces.xyxy[0]) > 6, f"recorded frame {k}: face unchanged"
            checked += 1
    assert checked >= 8


def test_her_hands_stay_in_front_of_the_surrogate_and_only_her_hands(runs):
    """On the frames whose hands were outlined by hand (tests/data/hand_polygons.json), the hands' own
    pixels are the input's, and the face pixels around and between them are not."""
    tmp, reports, _ = runs
    labels = json.loads((Path(__file__).resolve().parents[1] / "data" / "hand_polygons.json").read_text())
    wanted = {int(k): v for k, v in labels["frames"].items()}
    original = frames_every(SAMPLE, every=1, limit=max(wanted) + 1)
    output = frames_every(tmp / "default.mp4", every=1, limit=max(wanted) + 1)
    for index, label in wanted.items():
        h, w = original[index].shape[:2]
        hand = np.zeros((h, w), np.uint8)
        for polygon in label["hands"]:
            cv2.fillPoly(hand, [np.array(polygon, np.int32)], 255)
        x0, y0, x1, y1 = (int(v) for v in label["face_box"])
        in_face = np.zeros_like(hand)
        in_face[max(y0, 0):y1, max(x0, 0):x1] = 255
        core = cv2.erode(hand, np.ones((7, 7), np.uint8)) & in_face
        around = cv2.dilate(hand, np.ones((25, 25), np.uint8)) == 0
        face_only = (cv2.erode(in_face, np.ones((61, 61), np.uint8)) > 0) & around
        diff = np.abs(original[index].astype(np.float32) - output[index]).mean(-1)
        assert core.any() and face_only.any()
        assert diff[core > 0].mean() < 8, f"frame {index}: the hand was painted over ({diff[core > 0].mean():.1f})"
        assert diff[face_only].mean() > 8, f"frame {index}: face pixels beside the hand were kept"
