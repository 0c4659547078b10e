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
    stop = stop or threading.Event()
    stats, config = processor.stats, processor.config
    q_detect: queue.Queue = queue.Queue(config.queue_size)
    q_track: queue.Queue = queue.Queue(config.queue_size)
    q_cover: queue.Queue = queue.Queue(config.queue_size)
    q_sinks: list[queue.Queue] = [queue.Queue(config.queue_size) for _ in sinks]
    errors: list[BaseException] = []
    max_age = config.max_latency_ms / 1000
    started = time.monotonic()

    def reader() -> None:
        try:
            for item in source.frames(stop):
                n = stats.arrived(item.captured)
                _offer(q_detect, item, lambda: stats.drop("behind"))
                if (max_frames is not None and n >= max_frames) or \
                        (duration_s is not None and time.monotonic() - started >= duration_s):
                    break
        finally:
            stats.reconnects = getattr(source, "reconnects", 0)
            source.close()
            put_until_stopped(q_detect, END, stop)

    def stage(inbox: queue.Queue, outbox: queue.Queue, work: Callable[[Any], Any],
              captured: Callable[[Any], float]) -> Callable[[], None]:
        """A middle stage: frames too old to be worth finishing are dropped before the work."""
        def body() -> None:
            while (got := get_until_stopped(inbox, stop)) is not END:
                if time.monotonic() - captured(got) > max_age:
                    stats.drop("stale")
                    continue
                _offer(outbox, work(got), lambda: stats.drop("behind"))
            put_until_stopped(outbox, END, stop)
        return body

    def hide(item: Captured, boxes: np.ndarray) -> Captured:
        processor.fallback.apply(item.frame.image, FaceDetections(boxes, np.ones(len(boxes), np.float32)))
        return item

    tracker = processor.core.tracker.config
    hold = BackfillWindow(config.hold_frames, tracker, hide) if config.hold_frames else None

    def cover() -> None:
        def out(done: Captured) -> None:
            for sink, q in zip(sinks, q_sinks):
                _offer(q, done, lambda name=sink.name: stats.drop(f"sink:{name}"))

        while (tracked := get_until_stopped(q_cover, stop)) is not END:
            if hold is not None:  # a dropped frame's news (a cut, a new face) still concerns the held ones
                hold.note(tracked.tracked.born, tracked.tracked.cut)
            if time.monotonic() - tracked.item.captured > max_age:
                stats.drop("stale")
                continue
            done = processor.cover(tracked)
            for ready in ([done] if hold is None else hold.push(done)):
                out(ready)
        if hold is not None:
            stats.faces_backfilled = hold.faces_backfilled
            for ready in hold.flush():  # the source ended: all of them, unhurried
                for q in q_sinks:
                    put_until_stopped(q, ready, stop)
        for q in q_sinks:
            put_until_stopped(q, END, stop)

    def send(sink: LiveSink, q: queue.Queue) -> Callable[[], None]:
        def body() -> None:
            while (item := get_until_stopped(q, stop)) is not END:
                sink.send(item)
                stats.record_sent(sink.name, time.monotonic() - item.captured)
        return body

    def guarded(body: Callable[[], None]) -> Callable[[], None]:
        return guard(body, errors, stop)

    detect = stage(q_detect, q_track, processor.detect, lambda item: item.captured)
    track = stage(q_track, q_cover, processor.track, lambda detected: detected[0].captured)
    bodies = [reader, detect, track, cover] + [send(s, q) for s, q in zip(sinks, q_sinks)]
    names = ["live-source", "live-detect", "live-track", "live-cover"] + [f"live-sink-{s.name}" for s in sinks]
    threads = [threading.Thread(target=guarded(b), name=n, daemon=True) for b, n in zip(bodies, names)]
    processing, sending = threads[1:4], threads[4:]  # detect, track, cover; one per sink
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads[1:]):
            threads[-1].join(_POLL_S)
            if stop.is_set():
                break
    finally:
        stop.set()
        for t in processing:
            t.join(_PROCESSING_JOIN_S)
            if t.is_alive():
                log.error("%s still running %g s after stop", t.name, _PROCESSING_JOIN_S)
        for t in sending:
            t.join(_JOIN_S)
        # The source thread may sit in a blocking read until its read timeout; it closes the source itself.
        threads[0].join(_JOIN_S)
        stats.seconds = time.monotonic() - started
        for sink, t in zip(sinks, sending):
            if t.is_alive():
                log.warning("%s: still sending after stop; not closed", sink.name)
                continue
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - close every sink, report the first failure
                errors.append(exc)
    if errors:
        raise errors[0]
    return stats


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
) -> LiveStats:
    """De-identify a live source (``rtsp://…``, a webcam number or ``/dev/videoN``) into live outputs:
    ``push`` (an ``rtsp://`` URL on a media server), ``record`` (a file, in ``segment_s`` segments),
    ``virtual_camera``, ``preview``, and any extra ``sinks``. ``mode`` (or ``config``'s) as for files: the
    surrogate mode renders each person's surrogate once it is locked, the others hide every face; the
    fallback is ``live.fallback_mode``. ``face_path`` replaces the mode's per-face path. Blocks until the
    source ends or gives up, ``stop`` is set, or a limit is reached; returns the counters."""
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
        outputs: list[LiveSink] = list(sinks)
        preview_sink = PreviewSink(on_quit=stop.set) if preview else None
        targets: list[PacketTarget] = []
        if push:
            targets.append(RtspPush(push, transport=(source_config or LiveSourceConfig()).rtsp_transport))
        if record is not None:
            targets.append(SegmentRecorder(record, segment_s=segment_s))
        if targets:
            outputs.append(EncodedSink(targets, live, src.fps))
        if virtual_camera:
            outputs.append(VirtualCameraSink(float(src.fps)))
        if preview_sink is not None:
            outputs.append(preview_sink)
        if src.size is not None:
            # First-frame costs (model buffers, encoder, media server handshake) are paid before the camera
            # streams, so its first second does not pile up behind them: the first connection only told
            # us the picture size.
            width, height = src.size
            src.close()
            detector.detect(np.zeros((height, width, 3), np.uint8))
            for output in outputs:
                if isinstance(output, EncodedSink):
                    output.prepare(width, height)
            src.open()
        fallback = make_anonymizer(fallback_config(config.anonymizer, live))
        own_path = face_path is None
        path = face_path or _mode_path(config)
        processor = LiveProcessor(detector, FaceTracker(config.tracker), path, fallback, live, LiveStats(),
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


def _mode_path(config: PipelineConfig) -> FacePath:
    """The per-face path of the run's mode: each person's surrogate, or the mode's anonymiser."""
    if config.generator is not None:
        return SurrogatePath(config.generator, make_renderer(config.generator))
    return make_face_path(config.anonymizer)


def fallback_config(config: AnonymizerConfig, live: LiveConfig) -> AnonymizerConfig:
    """The anonymiser settings of the fallback: the run's region settings with the fallback mode."""
    return dataclasses.replace(config, mode=live.fallback_mode)
