"""Folders on Ray: the same outputs as one process, one key for the job, faults that lose nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray_local
from conftest import SAMPLE, interruptible, shared_file
from media import facts, read_rgb

from deidstream.api import anonymize_directory
from deidstream.cli import main
from deidstream.cluster import RayJob, anonymize_directory_on_ray
from deidstream.config import GeneratorConfig, PipelineConfig

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'deidstream[ray]')")
local_ray = ray_local.local_ray  # the shared fixtures, under their own names
task_pids = ray_local.task_pids

TASK_TITLE = "ray::_anonymize_file"  # what Ray names a worker process while it runs a file



def _folder(tmp_path: Path, **clips: str) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, relative in clips.items():
        shutil.copyfile(shared_file(relative), folder / f"{name}.mp4")
    return folder


def _same_frames(a: Path, b: Path) -> bool:
    frames_a, frames_b = read_rgb(a), read_rgb(b)
    return len(frames_a) == len(frames_b) and all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b))


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.part.*"))



def test_a_folder_on_ray_gives_the_same_files_as_one_process(local_ray, tmp_path):
    folder = _folder(tmp_path, short="videos/single_face_short.mp4", silent="videos/single_face_no_audio.mp4")
    config = PipelineConfig(generator=GeneratorConfig(key=b"cluster test"))
    alone = anonymize_directory(folder, tmp_path / "alone", config=config)
    spread = anonymize_directory_on_ray(folder, tmp_path / "ray", config=config)
    assert [Path(r.output).name for r in spread] == [Path(r.output).name for r in alone] == ["short.mp4", "silent.mp4"]
    for name in ("short.mp4", "silent.mp4"):
        assert _same_frames(tmp_path / "alone" / name, tmp_path / "ray" / name), f"{name}: frames differ"
        assert facts(tmp_path / "alone" / name) == facts(tmp_path / "ray" / name), f"{name}: timing or audio"
    assert [len(r.people) for r in spread] == [len(r.people) for r in alone]
    assert [r.face_boxes for r in spread] == [r.face_boxes for r in alone], "the same faces got the same"


def test_without_a_key_the_job_draws_one_so_a_person_keeps_one_surrogate_across_files(local_ray, tmp_path):
    folder = _folder(tmp_path, a="videos/single_face_short.mp4", b="videos/single_face_short.mp4")
    reports = anonymize_directory_on_ray(folder, tmp_path / "out", mode="surrogate")
    assert all(r.face_outcomes["rendered"] > 0 for r in reports), "surrogates, not the fallback, to compare"
    assert _same_frames(tmp_path / "out" / "a.mp4", tmp_path / "out" / "b.mp4"), "two workers, two surrogates"
    assert not _same_frames(folder / "a.mp4", tmp_path / "out" / "a.mp4")


def test_a_file_that_fails_is_reported_and_the_others_finish(local_ray, tmp_path, capsys):
    folder = _folder(tmp_path, good="videos/single_face_short.mp4")
    (folder / "broken.mp4").write_bytes(shared_file("videos/talking_head_5.mp4").read_bytes()[:5000])
    code = main([str(folder), str(tmp_path / "out"), "--ray", "--mode", "blur", "-q"])
    assert code == 1
    assert "broken.mp4: not a readable video file" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mp4"], "no output, no leftover"
    assert len(read_rgb(tmp_path / "out" / "good.mp4")) == 72


def test_a_killed_worker_is_retried_and_its_file_is_whole(local_ray, task_pids, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(SAMPLE, folder / "clip.mp4")
    out = tmp_path / "out"
    result: dict[str, object] = {}
    job = threading.Thread(target=lambda: result.update(reports=anonymize_directory_on_ray(folder, out, mode="blur")))
    job.start()
    killed = None
    deadline = time.monotonic() + 60.0
    while killed is None and time.monotonic() < deadline and job.is_alive():
        pids = task_pids(TASK_TITLE)
        if pids and _parts(out):  # the worker is writing the file: kill it mid-way
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.05)
    job.join(120.0)
    assert killed is not None, "the task was never seen running"
    assert not job.is_alive() and "reports" in result, "the job finished"
    assert facts(out / "clip.mp4") == facts(SAMPLE), "the retried file is whole: frames, timing, audio"
    assert _parts(out) == [], "the killed attempt's temporary file is gone"


def test_a_file_whose_worker_dies_every_time_is_reported_and_left_absent(local_ray, task_pids, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(SAMPLE, folder / "clip.mp4")
    out = tmp_path / "out"
    failures: list[tuple[Path, Exception]] = []
    job = threading.Thread(target=lambda: anonymize_directory_on_ray(
        folder, out, mode="blur", job=RayJob(retries=0), on_error=lambda p, e: failures.append((p, e))))
    job.start()
    deadline = time.monotonic() + 60.0
    killed = False
    while not killed and time.monotonic() < deadline and job.is_alive():
        pids = task_pids(TASK_TITLE)
        if pids and _parts(out):
            os.kill(pids[0], signal.SIGKILL)
            killed = True
        time.sleep(0.05)
    job.join(60.0)
    assert killed and not job.is_alive()
    assert [(p.name, str(e)) for p, e in failures] == [("clip.mp4", f"{folder / 'clip.mp4'}: the worker running it "
                                                                     "died (1 attempt)")]
    assert list(out.iterdir()) == [], "no output and no temporary file"


def test_ctrl_c_cancels_the_job_and_leaves_no_partial_file(task_pids, tmp_path):
    folder = _folder(tmp_path, a="videos/talking_head_1.mp4", b="videos/stage_multi_person_cuts.mp4")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "deidstream", str(folder), str(out), "--ray", "--workers", "2",
                             "-q"], stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + 90.0
    while not (out.exists() and _parts(out)) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None and _parts(out), "the job was writing when interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert _parts(out) == [] and not any(out.iterdir()), "nothing partial, nothing half-done published"
    time.sleep(1.0)
    assert task_pids(TASK_TITLE) == [], "no task left running"


def test_ray_flags_that_do_not_fit_are_usage_errors(tmp_path, capsys):
    clip = str(shared_file("videos/single_face_short.mp4"))
    folder = tmp_path / "in"
    folder.mkdir()
    for args, message in (([str(folder), str(tmp_path / "out"), "--workers", "2"], "give it with --ray"),
                          ([str(folder), str(tmp_path / "out"), "--ray", "auto", "--workers", "2"],
                           "--workers sizes a local Ray instance"),
                          ([clip, str(tmp_path / "o.mp4"), "--segment-s", "5"], "goes with --ray"),
                          ([clip, str(tmp_path / "o.mp4"), "--ray", "--save-book", str(tmp_path / "b.npz")],
                           "not with --ray")):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
