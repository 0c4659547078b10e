"""Many cameras on Ray: one actor per camera, each running today's relay (RTSP in → RTSP out and/or a
segmented recording), restarted by Ray when its process dies; their counters gathered on the driver.

A camera that goes away is the relay's business (it reconnects, or gives up after ``give_up_after``): the
other cameras' actors never notice. A dead actor process is restarted (``RayJob.retries`` times) and its
relay started again; its recording goes on in files stamped with the restart's time (the segment being
written when it died is lost: its temporary file is removed). Ctrl-C (or ``stop``) stops every relay,
each finalising its recording.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deidstream.cluster.archive import RayJob, ray_session
from deidstream.config import LiveSourceConfig
from deidstream.config.cameras import CameraSpec
from deidstream.pipelines.live import LiveStats
from deidstream.pipelines.live_run import relay

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0
STOP_WAIT_S = 30.0  # how long stopping waits for each relay to finalise its recording


def restart_path(record: str, when: float) -> str:
    """Where a restarted relay records: the camera's name stamped with the restart's time (UTC).

    >>> restart_path("/rec/lobby.mp4", 0.0)
    '/rec/lobby.restart-19700101T000000.mp4'
    """
    path = Path(record)
    return str(path.with_name(f"{path.stem}.restart-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(when))}{path.suffix}"))


class CameraRelay:
    """A Ray actor (threaded: ``counters`` and ``stop`` answer while ``run`` relays)."""

    def __init__(self, camera: CameraSpec, overwrite: bool) -> None:
        import ray

        self.camera, self.overwrite = camera, overwrite
        self.stats = LiveStats()
        self.stopping = threading.Event()
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed

    def run(self) -> dict[str, object]:
        """Relay until the camera gives up or ``stop``; the final counters."""
        from deidstream.stream.sink import leftover_parts

        cam, record = self.camera, self.camera.record
        if record is not None and self.restarted:
            for leftover in leftover_parts(record):  # the dead process's unfinished segment: unreadable
                leftover.unlink(missing_ok=True)
            record = restart_path(record, time.time())
            log.warning("camera %s: restarted after its process died; recording into %s", cam.name, record)
        source = LiveSourceConfig(rtsp_transport=cam.transport, give_up_after_s=cam.give_up_after_s)
        relay(cam.source, push=cam.push, record=record, segment_s=cam.segment_s, mode=cam.mode, source_config=source,
              overwrite=self.overwrite, stop=self.stopping, stats=self.stats)
        return self.counters()

    def counters(self) -> dict[str, object]:
        return {**self.stats.to_dict(), "restarted": self.restarted, "process": os.getpid()}

    def stop(self) -> None:
        self.stopping.set()


def relay_cameras_on_ray(
    cameras: list[CameraSpec], *, job: RayJob | None = None, overwrite: bool = False,
    on_status: Callable[[dict[str, dict]], None] | None = None, stop: threading.Event | None = None,
    status_every_s: float = STATUS_EVERY_S,
) -> dict[str, dict]:
    """Relay every camera as a Ray actor until each ends (gave up) or ``stop`` is set; returns each camera's
    final counters, or ``{"error": ...}`` for one that failed for good. ``on_status`` gets every camera's
    counters every ``status_every_s`` (``{"state": "restarting"}`` for one that does not answer)."""
    job = job or RayJob(workers=len(cameras))
    with ray_session(job) as ray:
        actor = ray.remote(num_cpus=1, max_restarts=job.retries, max_task_retries=job.retries,
                           max_concurrency=4)(CameraRelay)
        actors = {cam.name: actor.remote(cam, overwrite) for cam in cameras}
        return _watch(ray, actors, on_status, stop or threading.Event(), status_every_s)


def _watch(ray: Any, actors: dict[str, Any], on_status: Callable[[dict[str, dict]], None] | None,
           stop: threading.Event, every_s: float) -> dict[str, dict]:
    runs = {actors[name].run.remote(): name for name in actors}
    results: dict[str, dict] = {}
    try:
        while runs and not stop.is_set():
            done, _ = ray.wait(list(runs), num_returns=1, timeout=every_s)
            for ref in done:
                name = runs.pop(ref)
                results[name] = _outcome(ray, name, ref)
            if on_status is not None and not done:
                on_status(_status(ray, {name: actors[name] for name in runs.values()}))
    finally:
        if runs:  # stopped (or interrupted): every relay finalises its recording
            for name in runs.values():
                actors[name].stop.remote()
            ray.wait(list(runs), num_returns=len(runs), timeout=STOP_WAIT_S)
            for ref, name in runs.items():
                results[name] = _outcome(ray, name, ref, timeout=0.1)
    return results


def _outcome(ray: Any, name: str, ref: Any, timeout: float | None = None) -> dict:
    try:
        return ray.get(ref, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - one camera's failure is reported, the others go on
        cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else exc
        log.error("camera %s: %s", name, cause)
        return {"error": f"{type(cause).__name__}: {cause}"}


def _status(ray: Any, actors: dict[str, Any], timeout_s: float = 1.0) -> dict[str, dict]:
    refs = {actor.counters.remote(): name for name, actor in actors.items()}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    status = {name: {"state": "restarting"} for name in actors}
    for ref in ready:
        try:
            status[refs[ref]] = {"state": "relaying", **ray.get(ref)}
        except Exception:  # noqa: BLE001 - an actor that died between the wait and the get
            continue
    return status
