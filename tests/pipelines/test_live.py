"""Live parts one by one: the scheduler's budget and fallback, dropping, recording segments, the virtual
camera through its backend boundary, the preview, the timeline across reconnects, configuration."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from conftest import shared_file
from media import pattern

from deidstream.cli import main
from deidstream.config import AnonymizerConfig, LiveConfig, LiveSourceConfig, TrackerConfig, parse_duration
from deidstream.engine.anonymizers import make_anonymizer
from deidstream.engine.generator.compositor import COVERED_INSET_PX, RenderedFace
from deidstream.errors import ConfigError, OutputExistsError, SinkUnavailable, SourceUnavailable
from deidstream.pipelines.live import LiveProcessor, LiveStats, make_face_path
from deidstream.pipelines.live_run import run_live
from deidstream.stream.live_sink import EncodedSink, PreviewSink, SegmentRecorder, VirtualCameraSink, check_record_path
from deidstream.stream.live_source import LIVE_TIME_BASE, Backoff, Captured, WebcamSource, _Clock
from deidstream.tracking.tracker import FaceTracker
from deidstream.types import FaceDetections, Frame

MAGENTA = np.array([255, 0, 255], np.uint8)


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    frames = []
    with av.open(str(shared_file("videos/talking_head_1.mp4"))) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) == 40:
                break
    return frames


def inner_box(box: np.ndarray) -> tuple[int, int, int, int]:
    cx, cy, w, h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]
    return int(cx - 0.3 * w), int(cy - 0.3 * h), int(cx + 0.3 * w), int(cy + 0.3 * h)


def detail(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_32F).std())


def assert_face_hidden(original: np.ndarray, out: np.ndarray, detector) -> None:
    faces = detector.detect(original)
    assert len(faces) == 1
    x0, y0, x1, y1 = inner_box(faces.xyxy[0])
    before, after = original[y0:y1, x0:x1], out[y0:y1, x0:x1]
    painted = (after == MAGENTA).all(axis=-1).mean() > 0.9
    assert painted or detail(after) < 0.5 * detail(before), "a face went out unprocessed"


class Paint:
    """A fast 'expensive path': paints the face box magenta."""

    name = "paint"
    budgets_itself = False

    def __init__(self, delay_s: float = 0.0, result: bool = True, error: Exception | None = None,
                 prepare_error: Exception | None = None, ready: bool = True) -> None:
        self.delay_s, self.result, self.error, self.prepare_error = delay_s, result, error, prepare_error
        self.is_ready = ready
        self.calls = 0
        self.faces: list[RenderedFace] = []  # painted in the last frame
        self.frame: np.ndarray | None = None

    def ready(self, faces: FaceDetections, i: int) -> bool:
        return self.is_ready

    def prepare(self, image: np.ndarray, faces: FaceDetections) -> None:
        if self.prepare_error is not None:
            raise self.prepare_error
        return None

    def render_face(self, image: np.ndarray, faces: FaceDetections, i: int, deadline: float,
                    prepared: object) -> bool:
        self.calls += 1
        time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        x0, y0, x1, y1 = np.maximum(faces.xyxy[i].astype(int), 0)
        image[y0:y1, x0:x1] = MAGENTA
        if image is not self.frame:
            self.frame, self.faces = image, []
        self.faces.append(RenderedFace(image[y0:y1, x0:x1].copy(), np.ones((y1 - y0, x1 - x0), np.float32), x0, y0))
        return self.result

    def painted(self) -> list[RenderedFace]:
        return self.faces


class FixedBoxes:
    """A detector that finds the same boxes in every frame."""

    def __init__(self, boxes: np.ndarray) -> None:
        self.boxes = np.asarray(boxes, np.float32)

    def detect(self, image: np.ndarray) -> FaceDetections:
        return FaceDetections(self.boxes.copy(), np.full(len(self.boxes), 0.9, np.float32))

    def close(self) -> None:
        pass


class PaintFirst(Paint):
    """Paints the first face only; the other is left to the fallback."""

    def ready(self, faces: FaceDetections, i: int) -> bool:
        return i == 0


def processor(detector, face_path, budget_ms: float, stats: LiveStats | None = None) -> LiveProcessor:
    live = LiveConfig(budget_ms=budget_ms, max_latency_ms=max(500.0, budget_ms))
    return LiveProcessor(detector, FaceTracker(TrackerConfig()), face_path, make_anonymizer(AnonymizerConfig()),
                         live, stats or LiveStats(), frame_interval_s=1 / 30)


@pytest.mark.parametrize(
    ("face_path", "budget_ms", "rendered", "fallback", "errors", "waiting"),
    [
        (Paint(), 1000, 10, 0, 0, 0),  # fast path within budget: every face rendered
        (Paint(delay_s=0.06), 40, (0, 2), (8, 10), 0, 0),  # slower than the budget: tried at most once or twice
        (Paint(error=RuntimeError("generator crashed")), 1000, 0, 10, 10, 0),  # failures fall back, stream goes on
        (Paint(result=False), 1000, 0, 10, 0, 0),  # a face path may decline a face it tried
        (Paint(ready=False), 1000, 0, 10, 0, 10),  # or not be ready for it (no surrogate locked yet)
        (Paint(prepare_error=RuntimeError("no landmarks")), 1000, 0, 10, 10, 0),  # a failed analysis: all fall back
    ],
    ids=["fast", "over-budget", "raises", "declines", "not-ready", "prepare-raises"],
)
def test_every_face_is_processed_by_the_face_path_or_the_fallback(
        detector, clip_frames, face_path, budget_ms, rendered, fallback, errors, waiting):
    stats = LiveStats()
    proc = processor(detector, face_path, budget_ms, stats)
    for index, image in enumerate(clip_frames[:10]):
        item = Captured(Frame(index, image.copy(), index * 3000, LIVE_TIME_BASE, 3000), time.monotonic(), 1)
        out = proc.process(item)
        assert_face_hidden(image, out.frame.image, detector)
    as_range = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    assert as_range(rendered)[0] <= stats.faces_rendered <= as_range(rendered)[1]
    assert as_range(fallback)[0] <= stats.faces_fallback <= as_range(fallback)[1]
    assert stats.render_errors == errors
    assert stats.faces_waiting == waiting
    if waiting:
        assert face_path.calls == 0, "a face path that is not ready is not asked to render"
    assert stats.frames_processed == 10


def test_the_fallback_of_an_overlapping_face_leaves_a_rendered_face_whole(clip_frames):
    """A face the path renders keeps its pixels where another face's fallback region overlaps it
    (they show nobody real); the other face is hidden everywhere else."""
    rendered, other = np.array([60, 60, 220, 240]), np.array([170, 90, 330, 270])
    stats = LiveStats()
    proc = processor(FixedBoxes(np.stack([rendered, other])), PaintFirst(), 1000, stats)
    image = clip_frames[0]
    for index in range(3):  # the tracker confirms both boxes; the last frame is checked
        item = Captured(Frame(index, image.copy(), index * 3000, LIVE_TIME_BASE, 3000), time.monotonic(), 1)
        out = proc.process(item).frame.image
    assert stats.faces_rendered == stats.faces_fallback == 3
    inset = COVERED_INSET_PX + 2  # the tracker's boxes are the detector's within a pixel or two
    x0, y0, x1, y1 = rendered
    assert (out[y0 + inset:y1 - inset, x0 + inset:x1 - inset] == MAGENTA).all()
    ox0, oy0, ox1, oy1 = other
    beyond = out[oy0 + 40:oy1 - 40, x1 + 10:ox1 - 40]  # inside the other face's ellipse, off the rendered one
    assert beyond.size and not (beyond == MAGENTA).all(axis=-1).any()
    assert not np.array_equal(beyond, image[oy0 + 40:oy1 - 40, x1 + 10:ox1 - 40])


class PaintSmall(Paint):
    """Paints the narrower face only; the wider one is left to the fallback."""

    def ready(self, faces: FaceDetections, i: int) -> bool:
        widths = faces.xyxy[:, 2] - faces.xyxy[:, 0]
        return bool(widths[i] == widths.min())


@pytest.mark.parametrize(("nearer", "hidden"), [((60, 60, 240, 240), True), ((114, 114, 186, 186), False)],
                         ids=["three-times-as-wide", "about-as-wide"])
def test_a_face_behind_a_nearer_face_given_the_fallback_is_hidden_with_it(clip_frames, nearer, hidden):
    """A surrogate inside the blurred region of a face three times as wide (nearer the camera) is not put back
    over that blur; beside a box about as wide (a second box on the same face) it stays whole."""
    small = np.array([120, 120, 180, 180])
    stats = LiveStats()
    proc = processor(FixedBoxes(np.stack([small, np.array(nearer)])), PaintSmall(), 1000, stats)
    image = clip_frames[0]
    for index in range(3):
        item = Captured(Frame(index, image.copy(), index * 3000, LIVE_TIME_BASE, 3000), time.monotonic(), 1)
        out = proc.process(item).frame.image
    x0, y0, x1, y1 = small + np.array([6, 6, -6, -6])
    magenta = (out[y0:y1, x0:x1] == MAGENTA).all(axis=-1).mean()
    if hidden:
        assert magenta == 0.0 and stats.faces_rendered == 0 and stats.faces_fallback == 6
    else:
        assert magenta == 1.0 and stats.faces_rendered == 3 and stats.faces_fallback == 3


class ClipSource:
    """A live source over decoded frames, paced in real time at 30 fps."""

    name = "clip"
    fps = Fraction(30)
    size = None
    reconnects = 0

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.images = frames
        self.closed = False

    def open(self) -> None:
        pass

    def frames(self, stop: threading.Event):
        start = time.monotonic()
        for i, image in enumerate(self.images):
            due = start + i / 30
            if stop.wait(max(0.0, due - time.monotonic())):
                return
            yield Captured(Frame(i, image.copy(), i * 3000, LIVE_TIME_BASE, 3000), time.monotonic(), 1)

    def close(self) -> None:
        self.closed = True


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.items: list[Captured] = []
        self.closed = False

    def send(self, item: Captured) -> None:
        self.items.append(item)

    def close(self) -> None:
        self.closed = True


class SlowDetector:
    """The real detector, made slower than the frame rate."""

    def __init__(self, detector, delay_s: float) -> None:
        self.detector, self.delay_s = detector, delay_s

    def detect(self, image: np.ndarray) -> FaceDetections:
        time.sleep(self.delay_s)
        return self.detector.detect(image)

    def close(self) -> None:
        pass


def test_frames_are_dropped_not_sent_unprocessed_when_processing_falls_behind(detector, clip_frames):
    source, sink = ClipSource(clip_frames), Collect()
    proc = processor(SlowDetector(detector, 0.07), make_face_path(AnonymizerConfig()), 100)
    stats = run_live(source, proc, [sink])
    assert stats.frames_in == len(clip_frames)
    assert stats.frames_dropped > 0
    assert stats.frames_processed + stats.frames_dropped == stats.frames_in
    assert stats.sent["collect"] == stats.frames_processed == len(sink.items)
    assert source.closed and sink.closed
    for item in sink.items:
        assert_face_hidden(clip_frames[item.frame.index], item.frame.image, detector)
    indices = [item.frame.index for item in sink.items]
    assert indices == sorted(indices)  # in order, the newest kept when some had to go


def test_run_live_stops_on_request(detector, clip_frames):
    stop = threading.Event()
    source, sink = ClipSource(clip_frames * 10), Collect()
    proc = processor(detector, make_face_path(AnonymizerConfig()), 100)
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    t0 = time.monotonic()
    stats = run_live(source, proc, [sink], stop=stop)
    assert time.monotonic() - t0 < 5
    assert 0 < stats.frames_in < len(clip_frames) * 10
    assert sink.closed


def feed(sink: EncodedSink, seconds: float, fps: int = 30, size: tuple[int, int] = (96, 64)) -> int:
    n = int(seconds * fps)
    for i in range(n):
        frame = Frame(i, pattern(i, *size), i * 90000 // fps, LIVE_TIME_BASE, 90000 // fps)
        sink.send(Captured(frame, time.monotonic(), 1))
    return n


def read_times(path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def test_recording_is_cut_into_complete_segments(tmp_path):
    recorder = SegmentRecorder(tmp_path / "rec.mp4", segment_s=1.0)
    sink = EncodedSink([recorder], LiveConfig(gop_s=0.5), Fraction(30))
    sent = feed(sink, 3.5)
    sink.close()
    files = sorted(tmp_path.glob("rec_*.mp4"))
    assert [f.name for f in files] == ["rec_0000.mp4", "rec_0001.mp4", "rec_0002.mp4", "rec_0003.mp4"]
    assert recorder.published == files
    times = [read_times(f) for f in files]
    assert sum(len(t) for t in times) == sent
    for t in times[:-1]:
        assert t[0] == 0 and len(t) == 30  # each starts at 0 on a keyframe, about a segment long
        assert (np.diff(t) > 0).all()
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_a_crash_loses_at_most_the_segment_being_written(tmp_path):
    sink = EncodedSink([SegmentRecorder(tmp_path / "rec.mp4", segment_s=1.0)], LiveConfig(gop_s=0.5), Fraction(30))
    feed(sink, 1.5)  # and then no close(), as if the process died
    assert [f.name for f in tmp_path.glob("rec_*.mp4")] == ["rec_0000.mp4"]
    assert len(read_times(tmp_path / "rec_0000.mp4")) == 30
    assert len(list(tmp_path.glob(".rec.*.part.mp4"))) == 1  # the unfinished one, hidden
    sink.close()
    assert (tmp_path / "rec_0001.mp4").exists()


def test_recording_does_not_replace_files(tmp_path):
    (tmp_path / "rec_0000.mp4").write_bytes(b"x")
    with pytest.raises(OutputExistsError):
        check_record_path(tmp_path / "rec.mp4", 600.0, overwrite=False)
    check_record_path(tmp_path / "rec.mp4", 600.0, overwrite=True)
    check_record_path(tmp_path / "rec.mp4", None, overwrite=False)


class FakeCamera:
    """Stands in for pyvirtualcam.Camera at its boundary: the three methods the sink uses."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.calls: list[str] = []
        self.frames: list[np.ndarray] = []

    def send(self, frame: np.ndarray) -> None:
        assert frame.shape == (self.height, self.width, 3) and frame.dtype == np.uint8
        self.calls.append("send")
        self.frames.append(frame.copy())

    def sleep_until_next_frame(self) -> None:
        self.calls.append("sleep")

    def close(self) -> None:
        self.calls.append("close")


def test_virtual_camera_gets_each_frame_upright_then_waits_for_the_next():
    cameras: list[FakeCamera] = []

    def factory(w: int, h: int, fps: float) -> FakeCamera:
        cameras.append(FakeCamera(w, h, fps))
        return cameras[-1]

    sink = VirtualCameraSink(25.0, camera_factory=factory)
    images = [pattern(i, 64, 48) for i in range(3)]
    for i, image in enumerate(images):
        sink.send(Captured(Frame(i, image, i, LIVE_TIME_BASE, 1, rotation=90), time.monotonic(), 1))
    sink.close()
    (camera,) = cameras
    assert (camera.width, camera.height, camera.fps) == (48, 64, 25.0)  # opened at the displayed size
    assert camera.calls == ["send", "sleep"] * 3 + ["close"]
    for image, sent in zip(images, camera.frames):
        np.testing.assert_array_equal(sent, np.rot90(image, 1))


def test_virtual_camera_without_a_device_is_a_clear_error():
    pyvirtualcam = pytest.importorskip("pyvirtualcam", reason="pyvirtualcam not installed (the 'live' extra)")
    import glob

    if any("loopback" in open(p).read().lower() for p in glob.glob("/sys/class/video4linux/*/name")):
        pytest.skip("a v4l2loopback device exists here; this test is for machines without one")
    assert pyvirtualcam.Camera  # the real backend is used: no v4l2loopback device can exist on CI machines
    sink = VirtualCameraSink(30.0)
    with pytest.raises(SinkUnavailable, match="v4l2loopback"):
        sink.send(Captured(Frame(0, pattern(0, 64, 48), 0, LIVE_TIME_BASE, 1), time.monotonic(), 1))


def test_preview_needs_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SinkUnavailable, match="display"):
        PreviewSink()


def test_timeline_keeps_spacing_and_increases_across_reconnects():
    clock = _Clock(Fraction(30))
    first = [clock.stamp(t, 100.0 + t / 90000) for t in (0, 3000, 6000)]
    assert first == [0, 3000, 6000]
    clock.new_session()  # the camera came back 2 s later, its timestamps starting again near 0
    second = [clock.stamp(t, 102.0 + t / 90000) for t in (1000, 4000)]
    gap_s = (102.0 + 1000 / 90000) - (100.0 + 6000 / 90000)  # wall time between the two pictures
    assert second[0] == 6000 + round(gap_s * 90000)
    assert second[1] - second[0] == 3000
    assert clock.stamp(None, 102.1) > second[1]  # a picture without a timestamp still moves forward
    assert clock.stamp(3000, 102.2) > second[1]  # so does one that goes back


def test_backoff_grows_exponentially_up_to_its_cap_and_gives_up():
    backoff = Backoff(LiveSourceConfig(backoff_initial_s=0.5, backoff_factor=2, backoff_max_s=3, give_up_after_s=60))
    assert [backoff.next_wait() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert not backoff.expired()
    backoff.lost_at -= 61
    assert backoff.expired()


def test_missing_webcam_is_a_clear_error():
    with pytest.raises(SourceUnavailable, match="/dev/video63: no such video device"):
        WebcamSource(63).open()
    with pytest.raises(SourceUnavailable, match="not a video device path"):
        WebcamSource("/dev/sda")


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: LiveConfig(), None),
        (lambda: LiveConfig(budget_ms=0), "budget_ms"),
        (lambda: LiveConfig(budget_ms=200, max_latency_ms=100), "max_latency_ms"),
        (lambda: LiveConfig(queue_size=0), "queue_size"),
        (lambda: LiveConfig(fallback_mode="none"), "fallback mode"),
        (lambda: LiveSourceConfig(rtsp_transport="http"), "RTSP transport"),
        (lambda: LiveSourceConfig(backoff_initial_s=5, backoff_max_s=1), "backoff_max_s"),
        (lambda: LiveSourceConfig(width=4), "width"),
        (lambda: LiveConfig(hold_frames=-1), "hold_frames"),
        (lambda: LiveConfig(hold_frames=301), "hold_frames"),
        (lambda: parse_duration("10x"), "duration"),
        (lambda: parse_duration("-5m"), "positive"),
    ],
)
def test_live_configuration_is_checked(make, error):
    if error is None:
        make()
        return
    with pytest.raises(ConfigError, match=error):
        make()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--webcam", "63", "--virtual-camera"], "/dev/video63: no such video device"),
        (["/dev/video63", "out.mp4"], "/dev/video63: no such video device"),
        (["rtsp://127.0.0.1:9/cam", "out.mp4", "--mode", "solid", "--give-up-after", "1"], "127.0.0.1:9"),
    ],
)
def test_cli_live_errors_are_one_line_and_exit_1(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["rtsp://127.0.0.1:9/cam"],  # no output
        ["in.mp4", "out.mp4", "--record", "r.mp4"],  # live options on a file
        ["rtsp://127.0.0.1:9/cam", "--preview", "--segment", "10m"],  # segments without a recording
        ["rtsp://127.0.0.1:9/cam", "out.mp4", "--segment", "ten"],
    ],
)
def test_cli_live_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


@pytest.mark.parametrize(("argv", "live", "tau"), [
    ([], False, 0.7),  # files: standard
    ([], True, 0.62),  # live: low, its searches run beside the frames
    (["--privacy", "standard"], True, 0.7),
    (["--privacy", "high"], False, 0.8),
    (["--tau", "0.75", "--privacy", "high"], True, 0.75),
])
def test_the_privacy_distance_defaults_to_standard_for_files_and_low_live(argv, live, tau):
    from deidstream.cli import build_parser, generator_config

    args = build_parser().parse_args(["rtsp://cam/s" if live else "in.mp4", "out.mp4", *argv])
    assert generator_config(args, live=live).tau == tau


@pytest.mark.parametrize(("argv", "files", "live"), [([], 12, 0), (["--backfill", "20"], 20, 20),
                                                     (["--backfill", "0"], 0, 0)])
def test_backfill_defaults_to_12_frames_for_files_and_none_live(argv, files, live):
    """A live relay holds frames back only when asked: each held frame is a frame interval of latency."""
    from deidstream.cli import build_parser, config_from_args, live_config_from_args

    assert config_from_args(build_parser().parse_args(["in.mp4", "out.mp4", *argv])).tracker.backfill == files
    assert live_config_from_args(build_parser().parse_args(["rtsp://cam/s", "out.mp4", *argv])).hold_frames == live


class FoundFrom:
    """The real detector, blind before frame ``first`` of ``frames`` (a face the detectors find late).
    Frames are told apart by a sample of their pixels (a frame dropped on a slow machine shifts no count)."""

    def __init__(self, detector, frames: list[np.ndarray], first: int) -> None:
        self.detector, self.first = detector, first
        self.index = {self.key(f): i for i, f in enumerate(frames)}

    @staticmethod
    def key(image: np.ndarray) -> bytes:
        return image[::37, ::41].tobytes()

    def detect(self, image: np.ndarray) -> FaceDetections:
        if self.index[self.key(image)] < self.first:
            return FaceDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
        return self.detector.detect(image)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("cut_at", [None, 16])
def test_a_relay_holding_frames_hides_a_face_found_late_in_them_back_to_its_shot(detector, clip_frames, cut_at):
    """With ``hold_frames`` (``--backfill N`` live), a face first detected in frame 20 is also hidden
    in the 8 held frames before it, and no further back; nor before a cut (frames 0-15 another shot).
    Frames are sent in order, and all of them unless the machine is too slow for 30 fps."""
    frames = [pattern(i, *clip_frames[0].shape[1::-1]) if cut_at is not None and i < cut_at else f
              for i, f in enumerate(clip_frames)]
    assert len({FoundFrom.key(f) for f in frames}) == len(frames)
    live = LiveConfig(budget_ms=1000, max_latency_ms=2000, hold_frames=8)
    stats = LiveStats()
    proc = LiveProcessor(FoundFrom(detector, frames, 20), FaceTracker(TrackerConfig()),
                         make_face_path(AnonymizerConfig()), make_anonymizer(AnonymizerConfig()), live, stats,
                         frame_interval_s=1 / 30)
    sink = Collect()
    run_live(ClipSource(frames), proc, [sink])
    sent = [item.frame.index for item in sink.items]
    assert sent == sorted(sent) and len(sent) == stats.frames_processed >= len(frames) // 2
    assert len(sent) + stats.frames_dropped == len(frames), "a frame is sent or counted as dropped"
    (box,) = detector.detect(clip_frames[20]).xyxy
    x0, y0, x1, y1 = inner_box(box)
    # the 8 frames held when the face was found (12-19 unless some were dropped), those of its shot
    backfilled = [i for i in [i for i in sent if i < 20][-8:] if i >= (cut_at or 0)]
    assert backfilled == (list(range(12, 20)) if cut_at is None else list(range(16, 20))) or stats.frames_dropped
    assert backfilled, "some of the frames before the detection were sent"
    for item in sink.items:
        i = item.frame.index
        changed = not np.array_equal(item.frame.image[y0:y1, x0:x1], frames[i][y0:y1, x0:x1])
        assert changed == (i >= 20 or i in backfilled), f"frame {i}: hidden in the held frames of its shot, no others"
        if i in backfilled:
            assert detail(item.frame.image[y0:y1, x0:x1]) < 0.5 * detail(frames[i][y0:y1, x0:x1])
    assert stats.faces_backfilled == len(backfilled)
