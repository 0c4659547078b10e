"""The live runner: source → detect → track → cover → sinks, one thread each, bounded queues that drop the oldest.

A live source cannot wait for us, so no queue ever blocks its producer: when a queue is full its oldest
frame is dropped (and counted). Frames reach the sinks only from ``LiveProcessor.cover``, i.e. with
every face processed. Ctrl-C or ``stop`` ends every thread; the sinks are always closed, which
finalises recordings. ``relay`` builds the whole thing from names, as the command line does.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deidstream.config import (
    AnonymizerConfig,
    LiveConfig,
    LiveSourceConfig,
    PipelineConfig,
    live_generator_config,
    with_mode,
)
from deidstream.engine.anonymizers import make_anonymizer
from deidstream.engine.generator.face_render import make_renderer
from deidstream.native import blas_single_threaded, heap_frozen, opencv_single_threaded
from deidstream.pipelines.core import BackfillWindow
from deidstream.pipelines.live import FacePath, LiveProcessor, LiveStats, make_face_path
from deidstream.pipelines.live_surrogate import SurrogatePath
from deidstream.stream.live_sink import (
    EncodedSink,
    LiveSink,
    PacketTarget,
    PreviewSink,
    SegmentRecorder,
    VirtualCameraSink,
    check_record_path,
)
from deidstream.stream.live_source import Captured, LiveSource, open_live_source
from deidstream.stream.rtsp_push import RtspPush
from deidstream.stream.threads import END, get_until_stopped, guard, put_until_stopped
from deidstream.tracking.detector import FaceDetector, MediaPipeDetector
from deidstream.tracking.tracker import FaceTracker
from deidstream.types import FaceDetections

log = logging.getLogger(__name__)

_POLL_S = 0.05
_JOIN_S = 2.0
# Detection, tracking and covering run MediaPipe and the generator, which the caller closes after the
# relay: those threads are waited for (they stop after the item in hand), a sink or a blocked read is not.
_PROCESSING_JOIN_S = 60.0


def _offer(q: queue.Queue, item: Any, on_drop: Callable[[], None]) -> None:
    """Put without blocking: a full queue loses its oldest item instead."""
    while True:
        try:
            q.put_nowait(item)
            return
        except queue.Full:
            try:
                q.get_nowait()
                on_drop()
            except queue.Empty:
                pass


class _LiveRun:
    """The threads of one live run and the queues between them: source → detect → track → cover → sinks."""

    def __init__(self, source: LiveSource, processor: LiveProcessor, sinks: Sequence[LiveSink],
                 stop: threading.Event, max_frames: int | None, duration_s: float | None) -> None:
        self.source, self.processor, self.sinks, self.stop = source, processor, list(sinks), stop
        self.max_frames, self.duration_s = max_frames, duration_s
        self.stats, config = processor.stats, processor.config
        size = config.queue_size
        self.q_detect: queue.Queue = queue.Queue(size)
        self.q_track: queue.Queue = queue.Queue(size)
        self.q_cover: queue.Queue = queue.Queue(size)
        self.q_sinks: list[queue.Queue] = [queue.Queue(size) for _ in sinks]
        self.errors: list[BaseException] = []
        self.max_age = config.max_latency_ms / 1000
        self.started = time.monotonic()
        tracker = processor.core.tracker.config
        self.hold = BackfillWindow(config.hold_frames, tracker, self._hide) if config.hold_frames else None

    def _hide(self, item: Captured, boxes: np.ndarray) -> Captured:
        self.processor.fallback.apply(item.frame.image, FaceDetections(boxes, np.ones(len(boxes), np.float32)))
        return item

    def _stale(self, captured: float) -> bool:
        if time.monotonic() - captured > self.max_age:
            self.stats.drop("stale")
            return True
        return False

    def reader(self) -> None:
        stats = self.stats
        try:
            for item in self.source.frames(self.stop):
                n = stats.arrived(item.captured)
                _offer(self.q_detect, item, lambda: stats.drop("behind"))
                if (self.max_frames is not None and n >= self.max_frames) or \
                        (self.duration_s is not None and time.monotonic() - self.started >= self.duration_s):
                    break
        finally:
            stats.reconnects = getattr(self.source, "reconnects", 0)
            self.source.close()
            put_until_stopped(self.q_detect, END, self.stop)

    def stage(self, inbox: queue.Queue, outbox: queue.Queue, work: Callable[[Any], Any],
              captured: Callable[[Any], float]) -> Callable[[], None]:
        """A middle stage: frames too old to be worth finishing are dropped before the work."""
        def body() -> None:
            while (got := get_until_stopped(inbox, self.stop)) is not END:
                if not self._stale(captured(got)):
                    _offer(outbox, work(got), lambda: self.stats.drop("behind"))
            put_until_stopped(outbox, END, self.stop)
        return body

    def _out(self, done: Captured) -> None:
        for sink, q in zip(self.sinks, self.q_sinks):
            _offer(q, done, lambda name=sink.name: self.stats.drop(f"sink:{name}"))

    def cover(self) -> None:
        hold = self.hold
        while (tracked := get_until_stopped(self.q_cover, self.stop)) is not END:
            if hold is not None:  # a dropped frame's news (a cut, a new face) still concerns the held ones
                hold.note(tracked.tracked.born, tracked.tracked.cut)
            if self._stale(tracked.item.captured):
                continue
            done = self.processor.cover(tracked)
            for ready in ([done] if hold is None else hold.push(done)):
                self._out(ready)
        if hold is not None:
            self.stats.faces_backfilled = hold.faces_backfilled
            for ready in hold.flush():  # the source ended: all of them, unhurried
                for q in self.q_sinks:
                    put_until_stopped(q, ready, self.stop)
        for q in self.q_sinks:
            put_until_stopped(q, END, self.stop)

    def send(self, sink: LiveSink, q: queue.Queue) -> Callable[[], None]:
        def body() -> None:
            while (item := get_until_stopped(q, self.stop)) is not END:
                sink.send(item)
                self.stats.record_sent(sink.name, time.monotonic() - item.captured)
        return body

    def run(self) -> LiveStats:
        detect = self.stage(self.q_detect, self.q_track, self.processor.detect, lambda item: item.captured)
        track = self.stage(self.q_track, self.q_cover, self.processor.track, lambda detected: detected[0].captured)
        bodies = [self.reader, detect, track, self.cover] + [self.send(s, q) for s, q in zip(self.sinks, self.q_sinks)]
        names = ["live-source", "live-detect", "live-track", "live-cover"] + [f"live-sink-{s.name}" for s in self.sinks]
        threads = [threading.Thread(target=guard(b, self.errors, self.stop), name=n, daemon=True)
                   for b, n in zip(bodies, names)]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads[1:]):
                threads[-1].join(_POLL_S)
                if self.stop.is_set():
                    break
        finally:
            self.stop.set()
            self._finish(threads)
        if self.errors:
            raise self.errors[0]
        return self.stats

    def _finish(self, threads: list[threading.Thread]) -> None:
        """Wait for the processing threads (they stop after the item in hand), give the sinks a moment, close them."""
        processing, sending = threads[1:4], threads[4:]  # detect, track, cover; one per sink
        for t in processing:
            t.join(_PROCESSING_JOIN_S)
            if t.is_alive():
                log.error("%s still running %g s after stop", t.name, _PROCESSING_JOIN_S)
        for t in sending:
            t.join(_JOIN_S)
        # The source thread may sit in a blocking read until its read timeout; it closes the source itself.
        threads[0].join(_JOIN_S)
        self.stats.seconds = time.monotonic() - self.started
        for sink, t in zip(self.sinks, sending):
            if t.is_alive():
                log.warning("%s: still sending after stop; not closed", sink.name)
                continue
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - close every sink, report the first failure
                self.errors.append(exc)


def run_live(
    source: LiveSource,
    processor: LiveProcessor,
    sinks: Sequence[LiveSink],
    *,
    stop: threading.Event | None = None,
    max_frames: int | None = None,
    duration_s: float | None = None,
) -> LiveStats:
    """Relay ``source`` through ``processor`` into every sink until the source ends or gives up, ``stop``
    is set, ``max_frames`` frames were read or ``duration_s`` passed. Blocks; returns the counters.
    The first error of any thread is raised after everything is closed."""
    return _LiveRun(source, processor, sinks, stop or threading.Event(), max_frames, duration_s).run()


def relay(
    source: str | int | LiveSource,
    *,
    push: str | None = None,
    record: str | Path | None = None,
    segment_s: float | None = None,
    virtual_camera: bool = False,
    preview: bool = False,
    config: PipelineConfig | None = None,
    live: LiveConfig | None = None,
    source_config: LiveSourceConfig | None = None,
    overwrite: bool = False,
    stop: threading.Event | None = None,
    max_frames: int | None = None,
    duration_s: float | None = None,
    detector: FaceDetector | None = None,
    face_path: FacePath | None = None,
    sinks: Sequence[LiveSink] = (),
    on_start: Callable[[LiveSource], None] | None = None,
    mode: str | None = None,
    stats: LiveStats | None = None,
) -> LiveStats:
    """De-identify a live source (``rtsp://…``, a webcam number or ``/dev/videoN``) into live outputs:
    ``push`` (an ``rtsp://`` URL on a media server), ``record`` (a file, in ``segment_s`` segments),
    ``virtual_camera``, ``preview``, and any extra ``sinks``. ``mode`` (or ``config``'s) as for files: the
    surrogate mode renders each person's surrogate once it is locked, the others hide every face; the
    fallback is ``live.fallback_mode``. ``face_path`` replaces the mode's per-face path. Blocks until the
    source ends or gives up, ``stop`` is set, or a limit is reached; returns the counters (``stats``, when
    given: the caller can read them while it runs)."""
    if mode == "surrogate" and (config is None or config.generator is None):
        config = dataclasses.replace(config or PipelineConfig(), generator=live_generator_config())
    config = with_mode(config, mode)
    live = live or LiveConfig()
    stop = stop or threading.Event()
    if record is not None:
        check_record_path(Path(record), segment_s, overwrite=overwrite)
    if not (push or record or virtual_camera or preview or sinks):
        raise ValueError("relay needs at least one output")
    own_detector = detector is None
    detector = detector or MediaPipeDetector(config.detector)
    try:
        src = source if not isinstance(source, (str, int)) else open_live_source(source, source_config)
        src.open()
    except BaseException:
        if own_detector:
            detector.close()
        raise
    try:
        if on_start is not None:
            on_start(src)
        outputs = _outputs(src, sinks, push, record, segment_s, virtual_camera, preview, live, source_config, stop)
        _warm_up(src, detector, outputs)
        fallback = make_anonymizer(fallback_config(config.anonymizer, live))
        own_path = face_path is None
        path = face_path or _mode_path(config)
        processor = LiveProcessor(detector, FaceTracker(config.tracker), path, fallback, live, stats or LiveStats(),
                                  frame_interval_s=1 / float(src.fps))
    except BaseException:
        src.close()
        if own_detector:
            detector.close()
        raise
    try:
        with blas_single_threaded(), opencv_single_threaded(), heap_frozen():
            stats = run_live(src, processor, outputs, stop=stop, max_frames=max_frames, duration_s=duration_s)
    finally:
        if own_path:
            path.close()
        if own_detector:
            detector.close()
    log.info(stats.summary())
    return stats


def _outputs(src: LiveSource, sinks: Sequence[LiveSink], push: str | None, record: str | Path | None,
             segment_s: float | None, virtual_camera: bool, preview: bool, live: LiveConfig,
             source_config: LiveSourceConfig | None, stop: threading.Event) -> list[LiveSink]:
    """The sinks a relay sends to: the caller's, one encoder for the RTSP push and the recording, the
    virtual camera, the preview window (closing it stops the relay)."""
    outputs: list[LiveSink] = list(sinks)
    targets: list[PacketTarget] = []
    if push:
        targets.append(RtspPush(push, transport=(source_config or LiveSourceConfig()).rtsp_transport))
    if record is not None:
        targets.append(SegmentRecorder(record, segment_s=segment_s))
    if targets:
        outputs.append(EncodedSink(targets, live, src.fps))
    if virtual_camera:
        outputs.append(VirtualCameraSink(float(src.fps)))
    if preview:
        outputs.append(PreviewSink(on_quit=stop.set))
    return outputs


def _warm_up(src: LiveSource, detector: FaceDetector, outputs: list[LiveSink]) -> None:
    """First-frame costs (model buffers, encoder, media server handshake) are paid before the camera
    streams, so its first second does not pile up behind them: the first connection only told us the
    picture size."""
    if src.size is None:
        return
    width, height = src.size
    src.close()
    detector.detect(np.zeros((height, width, 3), np.uint8))
    for output in outputs:
        if isinstance(output, EncodedSink):
            output.prepare(width, height)
    src.open()


def _mode_path(config: PipelineConfig) -> FacePath:
    """The per-face path of the run's mode: each person's surrogate, or the mode's anonymiser."""
    if config.generator is not None:
        return SurrogatePath(config.generator, make_renderer(config.generator))
    return make_face_path(config.anonymizer)


def fallback_config(config: AnonymizerConfig, live: LiveConfig) -> AnonymizerConfig:
    """The anonymiser settings of the fallback: the run's region settings with the fallback mode."""
    return dataclasses.replace(config, mode=live.fallback_mode)
