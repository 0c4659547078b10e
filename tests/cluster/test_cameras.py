"""Many cameras on Ray: a cameras file, one actor per camera, one camera going away never stops the others,
a dead actor is restarted."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import av
import pytest
import ray_local
from conftest import shared_file
from live_peers import PeerMissing, camera_clip, rtsp_camera

from deidstream.cli import main
from deidstream.cluster.cameras import relay_cameras_on_ray
from deidstream.config.cameras import CameraSpec, load_cameras
from deidstream.errors import ConfigError

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'deidstream[ray]')")
local_ray = ray_local.local_ray  # the shared fixtures, under their own names


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.toml"
    path.write_text(text)
    return path


def test_a_cameras_file_gives_each_camera_its_outputs(tmp_path):
    path = _write(tmp_path, '[defaults]\nmode = "pixelate"\nsegment = "10m"\n\n'
                            '[[camera]]\nname = "lobby"\nsource = "rtsp://10.0.0.5/s"\nrecord = "lobby.mp4"\n\n'
                            '[[camera]]\nname = "door"\nsource = "rtsp://10.0.0.6/s"\npush = "rtsp://m:8554/door"\n'
                            'mode = "surrogate"\ntransport = "udp"\ngive_up_after = "1h"\n')
    assert load_cameras(path) == [
        CameraSpec("lobby", "rtsp://10.0.0.5/s", None, str(tmp_path / "lobby.mp4"), 600.0, "pixelate"),
        CameraSpec("door", "rtsp://10.0.0.6/s", "rtsp://m:8554/door", None, 600.0, "surrogate", "udp", 3600.0)]


@pytest.mark.parametrize("text, message", [
    ('[[camera]]\nname = "a"\nsource = "rtsp://x/s"\n', "camera 'a': needs an output"),
    ('[[camera]]\nname = "a"\nsource = "rtsp://x/s"\nrecord = "a.mp4"\nfps = 5\n', "unknown key 'fps'"),
    ('[[camera]]\nname = "a"\nsource = "rtsp://x/s"\nrecord = "a.mp4"\nmode = "swap"\n', "unknown mode 'swap'"),
    ('[[camera]]\nname = "a"\nsource = "rtsp://x/s"\nrecord = "a.mp4"\n'
     '[[camera]]\nname = "a"\nsource = "rtsp://y/s"\nrecord = "b.mp4"\n', "two cameras have the name 'a'"),
    ('[[camera]]\nname = "a"\nsource = "rtsp://x/s"\nrecord = "a.mp4"\n'
     '[[camera]]\nname = "b"\nsource = "rtsp://y/s"\nrecord = "a.mp4"\n', "two cameras have the recording"),
    ('[[camera]]\nsource = "rtsp://x/s"\nrecord = "a.mp4"\n', "camera 1: needs a name"),
    ('[[camera]]\nname = "a"\nsource = "rtsp://x/s"\nrecord = "a.mp4"\nsegment = "soon"\n', "a duration"),
    ("[cameras]\n", "unknown table 'cameras'"),
    ("", "lists no camera"),
    ("[[camera]\n", "not a TOML cameras file"),
])
def test_a_bad_cameras_file_is_a_clear_error_naming_it(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_cameras(path)
    assert str(path) in str(info.value)


def test_the_relay_command_names_a_missing_cameras_file(tmp_path, capsys):
    assert main(["relay", "--cameras", str(tmp_path / "none.toml")]) == 1
    assert "none.toml: cannot read the cameras file" in capsys.readouterr().err



@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A camera's stream of a shared clip, small and long enough (40 s) not to end during a test."""
    try:
        return camera_clip(shared_file("videos/talking_head_1.mp4"), tmp_path_factory.mktemp("camera") / "cam.mp4",
                           size=(256, 256), loops=8)
    except PeerMissing as exc:
        pytest.skip(str(exc))


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


class _Job:
    """The cameras relayed on a thread; every status the driver gathers is kept."""

    def __init__(self, cameras: list[CameraSpec]) -> None:
        self.statuses: list[dict[str, dict]] = []
        self.stop = threading.Event()
        self.result: dict[str, object] = {}
        self.thread = threading.Thread(target=lambda: self.result.update(done=relay_cameras_on_ray(
            cameras, stop=self.stop, on_status=self.statuses.append, status_every_s=0.5)), daemon=True)
        self.thread.start()

    def frames(self, name: str) -> int:
        return int(self.statuses[-1].get(name, {}).get("frames_in", 0)) if self.statuses else 0

    def wait(self, condition, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline and self.thread.is_alive(), f"timed out: {self.statuses[-1:]}"
            time.sleep(0.2)

    def finish(self) -> dict[str, dict]:
        self.stop.set()
        self.thread.join(90.0)
        assert not self.thread.is_alive()
        return self.result["done"]  # type: ignore[return-value]


def test_two_cameras_relay_and_one_going_away_leaves_the_other_running(local_ray, clip, tmp_path):
    try:
        with rtsp_camera(clip) as a, rtsp_camera(clip) as b:
            path = _write(tmp_path, f'[defaults]\nmode = "blur"\ngive_up_after = "120s"\n\n'
                                    f'[[camera]]\nname = "a"\nsource = "{a.url}"\nrecord = "a.mp4"\n\n'
                                    f'[[camera]]\nname = "b"\nsource = "{b.url}"\nrecord = "b.mp4"\n')
            job = _Job(load_cameras(path))
            job.wait(lambda: job.frames("a") > 30 and job.frames("b") > 30)
            a.kill()
            time.sleep(2.0)
            a_then, b_then = job.frames("a"), job.frames("b")
            job.wait(lambda: job.frames("b") > b_then + 60)
            assert job.frames("a") <= a_then + 5, "camera a is gone"
            results = job.finish()
    except PeerMissing as exc:
        pytest.skip(str(exc))
    assert "error" not in results["a"] and "error" not in results["b"], results
    assert results["b"]["frames_in"] > results["a"]["frames_in"] + 60  # type: ignore[operator]
    assert _frames(tmp_path / "b.mp4") > _frames(tmp_path / "a.mp4") > 30, "both recordings finalised"


def test_a_camera_whose_process_dies_is_restarted(local_ray, clip, tmp_path):
    try:
        with rtsp_camera(clip) as a, rtsp_camera(clip) as b:
            path = _write(tmp_path, f'[[camera]]\nname = "a"\nsource = "{a.url}"\nrecord = "a.mp4"\n\n'
                                    f'[[camera]]\nname = "b"\nsource = "{b.url}"\nrecord = "b.mp4"\n'
                                    'segment = "2s"\n')
            job = _Job(load_cameras(path))
            job.wait(lambda: job.frames("a") > 30 and job.frames("b") > 90)
            os.kill(int(job.statuses[-1]["b"]["process"]), signal.SIGKILL)
            job.wait(lambda: job.statuses[-1]["b"].get("restarted") is True and job.frames("b") > 30)
            assert job.statuses[-1]["a"]["restarted"] is False
            results = job.finish()
    except PeerMissing as exc:
        pytest.skip(str(exc))
    assert results["b"]["restarted"] is True and "error" not in results["a"], results
    before = sorted(tmp_path.glob("b_[0-9]*.mp4"))
    after = sorted(tmp_path.glob("b.restart-*.mp4"))
    assert before and after, "the segments finished before the crash stay; the restarted relay records anew"
    assert not list(tmp_path.glob(".b*.part.mp4")), "the dead process's unfinished segment is removed"
    assert _frames(tmp_path / "a.mp4") > 30
