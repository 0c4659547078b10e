"""A long file on Ray in segments: the input's frames, timing and audio, one surrogate per person across the
joins, faults that lose nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import ray_local
from conftest import SAMPLE, interruptible
from media import facts, read_rgb

from deidstream.cli import main
from deidstream.cluster import RayJob, anonymize_on_ray
from deidstream.config import GeneratorConfig, PipelineConfig
from deidstream.stream.segments import parts_dir
from deidstream.tracking.tracker import TRACK_IDS_PER_SEGMENT

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'deidstream[ray]')")
local_ray = ray_local.local_ray  # the shared fixtures, under their own names
task_pids = ray_local.task_pids

SEGMENTS = RayJob(segment_s=6.0)  # the sample's 19.7 s in three segments (it has a keyframe every 3 s)
JOINS = (144, 288)  # their first frames after the first



def _segments_run(report) -> set[int]:
    return {t // TRACK_IDS_PER_SEGMENT for t in report.tracks}


def test_a_long_file_in_three_segments_keeps_its_frames_timing_audio_and_one_surrogate(local_ray, tmp_path):
    from deidstream.tracking.eid import EidRecognizer

    out = tmp_path / "out.mp4"
    report = anonymize_on_ray(SAMPLE, out, config=PipelineConfig(generator=GeneratorConfig(key=b"joins")), job=SEGMENTS)
    assert _segments_run(report) == {0, 1, 2}
    assert facts(out) == facts(SAMPLE), "frames, timestamps, duration and audio of the input"
    assert not parts_dir(out).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    [person] = report.people
    assert person["locked"] and len(person["tracks"]) == 3, "her tracks of the three segments are one person"
    assert report.face_outcomes["fallback"] == 0 and report.face_outcomes["rendered"] == report.faces
    recognizer = EidRecognizer()
    frames, originals = read_rgb(out), read_rgb(SAMPLE)

    def descriptor(image: np.ndarray) -> np.ndarray:
        [face] = recognizer.detect(image)
        return recognizer.describe(image, [face])[0]

    for join in JOINS:
        before, after = descriptor(frames[join - 1]), descriptor(frames[join])
        assert np.linalg.norm(before - after) < 0.4, f"the same surrogate on both sides of frame {join}"
        assert np.linalg.norm(after - descriptor(originals[join])) > 0.6, "and not her"


def test_the_command_splits_one_file_on_ray(local_ray, tmp_path):
    out = tmp_path / "o.mp4"
    assert main([str(SAMPLE), str(out), "--ray", "--segment-s", "6", "--mode", "blur", "-q",
                 "--report", str(tmp_path / "r.json")]) == 0
    assert facts(out) == facts(SAMPLE)
    assert (tmp_path / "r.json").exists()


def test_a_killed_segment_worker_is_retried_and_the_file_is_whole(local_ray, task_pids, tmp_path):
    out = tmp_path / "out.mp4"
    result: dict[str, object] = {}
    job = threading.Thread(target=lambda: result.update(report=anonymize_on_ray(SAMPLE, out, mode="blur",
                                                                                 job=SEGMENTS)))
    job.start()
    killed = None
    deadline = time.monotonic() + 60.0
    while killed is None and time.monotonic() < deadline and job.is_alive():
        pids = task_pids("ray::cover_segment")
        if pids and list(parts_dir(out).glob(".*.part.mp4")):  # a part is being written: kill its worker
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.05)
    job.join(120.0)
    assert killed is not None, "no segment was seen running"
    assert not job.is_alive() and "report" in result, "the job finished"
    assert facts(out) == facts(SAMPLE) and _segments_run(result["report"]) == {0, 1, 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"], "no part or temporary file left"



def test_ctrl_c_on_a_segmented_file_leaves_no_part_and_no_output(tmp_path):
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "deidstream", str(SAMPLE), str(out), "--ray", "--workers", "2",
                             "--segment-s", "6", "-q"], stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + 120.0
    while not list(parts_dir(out).glob("*.mp4")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None and list(parts_dir(out).glob("*.mp4")), "segments were being written when interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert list(tmp_path.iterdir()) == [], "no output, no part, no temporary file"
