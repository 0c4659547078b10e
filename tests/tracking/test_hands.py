"""Hands in front of a face keep their own pixels, and only theirs: on hand-labelled frames of the
sample the masks cover the hands and little of the face around and between the fingers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SAMPLE
from media import read_rgb

from deidstream.tracking.hands import HandOccluders, Occluder, hand_mask, settle_rims, turn
from deidstream.types import FaceDetections

LABELS = Path(__file__).resolve().parents[1] / "data" / "hand_polygons.json"
FIRST_HAND = 56  # the hand enters the sample's picture a few frames later


@pytest.fixture(scope="module")
def labels() -> dict:
    return json.loads(LABELS.read_text())


@pytest.fixture(scope="module")
def frames(labels) -> list[np.ndarray]:
    last = max([int(k) for k in labels["frames"]] + labels["no_hand_frames"])
    return read_rgb(SAMPLE, limit=last + 1)


def hand_pixels(label: dict, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    for polygon in label["hands"]:
        cv2.fillPoly(mask, [np.round(np.array(polygon) * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
    return mask > 0


def recall_and_leak(occluder: Occluder, label: dict, shape: tuple[int, ...]) -> tuple[float, float]:
    """Inside the labelled face box: the share of hand pixels the mask covers, and the share of the
    mask that is not hand (face a surrogate would leave bare)."""
    x0, y0, x1, y1 = (int(round(v)) for v in label["face_box"])
    y1, x1 = min(y1, shape[0]), min(x1, shape[1])
    mask = occluder.full(*shape[:2])[y0:y1, x0:x1] > 0
    hand = hand_pixels(label, shape)[y0:y1, x0:x1]
    return float((mask & hand).sum() / hand.sum()), float((mask & ~hand).sum() / max(mask.sum(), 1))


def one_face(detector, image: np.ndarray, track_id: int | None = 1) -> FaceDetections:
    found = detector.detect(image)
    found = found[int(np.argmax(found.width * found.height))]
    return FaceDetections(found.xyxy, found.score, track_id=None if track_id is None else np.array([track_id]))


@pytest.fixture(scope="module")
def tracked(frames, labels) -> dict[int, Occluder]:
    """The sample's frames in order (tracking mode follows the hand from frame to frame), one track. A detector
    of its own: the session's has run the full-range model on other tests' frames, and which frames get it
    (every few calls) moves the face boxes, the hand crops and so the masks (a whole run saw recall 0.77)."""
    from deidstream.tracking.detector import MediaPipeDetector

    wanted = {int(k) for k in labels["frames"]}
    out = {}
    with HandOccluders() as occluders, MediaPipeDetector() as detector:
        for i in range(FIRST_HAND, max(wanted) + 1):
            found = occluders.occluders(frames[i], one_face(detector, frames[i]))
            if i in wanted:
                out[i] = found[0]
    return out


def test_masks_cover_the_labelled_hands_and_keep_little_face(tracked, frames, labels):
    scores = {i: recall_and_leak(tracked[i], labels["frames"][str(i)], frames[i].shape) for i in tracked}
    recall, leak = np.mean(list(scores.values()), axis=0)
    scores = {i: (round(r, 2), round(lk, 2)) for i, (r, lk) in scores.items()}  # whole in a failure's message
    assert recall >= 0.8 and leak <= 0.08, scores
    # and no single frame far off (measured: recall 0.78 to 0.98, leak up to 0.14 where fingers meet the cheek)
    assert all(r >= 0.6 and lk <= 0.2 for r, lk in scores.values()), scores
    assert all(tracked[i].hands_found >= 1 for i in tracked)


def test_no_hand_near_the_face_gives_an_empty_mask(detector, frames, labels):
    with HandOccluders() as occluders:
        for i in labels["no_hand_frames"]:
            for track_id in (7, None):
                found = occluders.occluders(frames[i], one_face(detector, frames[i], track_id))[0]
                assert found.hands_found == 0 and not found.mask.any(), (i, track_id)
                assert found.mask.shape == (found.region[3] - found.region[1], found.region[2] - found.region[0])


def test_a_face_without_a_track_id_is_searched_afresh(frames, labels):
    label = labels["frames"]["66"]
    face = FaceDetections(np.array([label["face_box"]]), np.ones(1))
    with HandOccluders() as occluders:
        found = occluders.occluders(frames[66], face)[0]
        assert occluders.tracked == []
    recall, leak = recall_and_leak(found, label, frames[66].shape)
    assert found.hands_found == 1 and recall >= 0.8 and leak <= 0.08


def test_tracks_that_end_close_their_hands(frames):
    image = frames[100]
    boxes = np.array([[300, 110, 550, 360], [40, 40, 120, 120]], np.float32)
    with HandOccluders() as occluders:
        occluders.occluders(image, FaceDetections(boxes, np.ones(2), track_id=np.array([1, 2])))
        assert occluders.tracked == [1, 2]
        first = occluders._per_track[1]
        occluders.occluders(image, FaceDetections(boxes[1:], np.ones(1), track_id=np.array([2])))
        assert occluders.tracked == [2]
        with pytest.raises(ValueError):  # MediaPipe refuses a closed graph
            first.process(np.zeros((64, 64, 3), np.uint8))
        occluders.occluders(image, FaceDetections.empty())
        assert occluders.tracked == []


def test_a_face_looked_at_only_on_some_frames_keeps_its_hand_tracking_while_in_view(frames):
    image = frames[100]
    boxes = np.array([[300, 110, 550, 360], [40, 40, 120, 120]], np.float32)
    with HandOccluders() as occluders:
        occluders.occluders(image, FaceDetections(boxes, np.ones(2), track_id=np.array([1, 2])))
        kept = occluders._per_track[1]
        occluders.occluders(image, FaceDetections(boxes[1:], np.ones(1), track_id=np.array([2])), in_view=[1, 2])
        assert occluders.tracked == [1, 2] and occluders._per_track[1] is kept
        occluders.occluders(image, FaceDetections(boxes[1:], np.ones(1), track_id=np.array([2])), in_view=[2])
        assert occluders.tracked == [2]


def test_turned_or_unmeshed_faces_get_no_hands(frames, labels):
    """A profile is where the palm detector takes the face for a hand: with landmarks given, a face
    turned past max_turn, or one FaceMesh could not fit, gets no hands (and its hand tracking ends)."""
    box = np.array([labels["frames"]["66"]["face_box"]], np.float32)
    profile = np.zeros((468, 3), np.float32)
    profile[[234, 454, 1], 0] = 300, 400, 420  # nose beyond a cheek
    with HandOccluders() as occluders:
        assert occluders.occluders(frames[66], FaceDetections(box, np.ones(1), track_id=np.array([1])))[0].hands_found
        for points in ([None], [profile]):
            faces = FaceDetections(box, np.ones(1), track_id=np.array([1])).with_landmarks(points)
            found = occluders.occluders(frames[66], faces)[0]
            assert found.hands_found == 0 and not found.mask.any()
            assert occluders.tracked == []
    assert turn(profile) > 1.0


def spread_hand() -> np.ndarray:
    """21 landmarks of an upright open hand, fingers spread, wrist at (100, 180), in pixels."""
    pts = np.zeros((21, 3), np.float32)
    pts[0] = 100, 180, 0
    pts[1:5] = [(70, 160, 0), (50, 140, 0), (38, 120, 0), (28, 104, 0)]  # thumb
    for f, (x, lean) in enumerate([(80, -12), (100, 0), (120, 12), (137, 22)]):
        base = 1 + 4 * (f + 1)
        pts[base] = x, 120, 0
        for k in range(1, 4):
            pts[base + k] = x + lean * k / 2, 120 - 22 * k, 0
    return pts


def test_the_mask_follows_the_fingers_and_leaves_the_gaps():
    mask = hand_mask(spread_hand(), (200, 200), radius=0.08)
    assert mask[76, 100] == 255 and mask[150, 100] == 255  # middle finger, palm
    assert mask[60, 110] == 0 and mask[60, 90] == 0  # between the fingertips: a hull would cover them
    wider = hand_mask(spread_hand(), (200, 200), radius=0.12)
    assert (wider >= mask).all() and wider.sum() > mask.sum()


def test_masks_stay_inside_the_frame_and_on_skin_only_where_grabcut_finds_it():
    image = np.full((120, 160, 3), 90, np.uint8)
    with HandOccluders() as occluders:
        hand = spread_hand() * 0.5 + np.array([100, 30, 0], np.float32)  # partly past the right edge
        found = occluders.occluder(image, np.array([110, 20, 190, 100], np.float32), [hand])
    assert found.region == (110, 20, 160, 100) and found.mask.shape == (80, 50)
    assert found.full(120, 160).shape == (120, 160)
    # a flat image leaves GrabCut nothing to tell apart: the mask stays within the widest capsules
    sure, likely, limit, context = (hand_mask(hand, (120, 160), radius=r) > 0 for r in (0.03, 0.07, 0.15, 0.3))
    settled = settle_rims(image, sure, likely, limit, context)
    assert (settled >= sure).all() and not (settled & ~limit).any()
