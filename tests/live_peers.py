"""Real peers on loopback for live tests and the live benchmark.

- ``rtsp_camera``: GStreamer's RTSP server (``rtsp_camera.py`` under the system Python, which has
  python3-gi) serving an H.264 mp4 in real time, as a camera would;
- ``rtsp_receiver``: ffmpeg listening for an RTSP publish (``-rtsp_flags listen``) and writing what it
  receives to a file, as a media server would.

Both are subprocesses that are always killed on exit; every wait has a timeout. When a tool is missing,
``require_*`` skips the test with the reason (``.ci/run`` installs them).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"
CAMERA_SCRIPT = HERE / "rtsp_camera.py"
START_TIMEOUT_S = 15.0


class PeerMissing(RuntimeError):
    """A tool a live peer needs is not installed."""


def gst_rtsp_missing() -> str | None:
    """Why the GStreamer RTSP camera cannot run here, or None when it can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "assert Gst.ElementFactory.find('rtph264pay') and Gst.ElementFactory.find('qtdemux') "
             "and Gst.ElementFactory.find('h264parse')")
    try:
        result = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "probing GStreamer timed out"
    if result.returncode:
        return ("GStreamer RTSP server not usable by the system Python (apt-get install python3-gi "
                "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
                "gstreamer1.0-plugins-bad)")
    return None


def ffmpeg_missing() -> str | None:
    return None if shutil.which("ffmpeg") else "ffmpeg not installed (apt-get install ffmpeg)"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (from /proc, without connecting to it)."""
    hex_port = f":{port:04X}"
    with contextlib.suppress(OSError), open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(hex_port) and fields[3] == "0A":
                return True
    return False


def _stop(proc: subprocess.Popen, sig: int = signal.SIGKILL, timeout_s: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def camera_clip(src: Path, dst: Path, *, gop: int = 15, fps: int = 30, size: tuple[int, int] | None = None,
                loops: int = 0, seconds: float | None = None) -> Path:
    """Re-encode ``src`` the way a camera streams: H.264 without B-frames, a keyframe every ``gop`` frames,
    no audio; optionally scaled to ``size``, played ``loops`` extra times, cut to its first ``seconds``."""
    reason = ffmpeg_missing()
    if reason:
        raise PeerMissing(reason)
    scale = ["-vf", f"scale={size[0]}:{size[1]}"] if size else []
    scale += ["-t", str(seconds)] if seconds else []
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-stream_loop", str(loops), "-i",
                    str(src), "-an", *scale, "-r", str(fps), "-c:v", "libx264", "-preset", "veryfast", "-bf", "0",
                    "-g", str(gop), "-pix_fmt", "yuv420p", "-y", str(dst)], check=True, timeout=300)
    return dst


@dataclass
class Camera:
    """A running RTSP camera; ``kill`` and ``start`` simulate it dropping off the network and coming back."""

    clip: Path
    port: int
    mount: str = "/cam"
    tls: Path | None = None  # PEM with certificate and key: the camera serves rtsps://
    client_ca: Path | None = None  # with tls: only clients with a certificate from this CA are let in
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'rtsps' if self.tls else 'rtsp'}://127.0.0.1:{self.port}{self.mount}"

    def start(self) -> None:
        tls = ["--tls", str(self.tls)] if self.tls else []
        tls += ["--client-ca", str(self.client_ca)] if self.client_ca else []
        proc = subprocess.Popen([SYSTEM_PYTHON, str(CAMERA_SCRIPT), str(self.clip), "--port", str(self.port),
                                 "--mount", self.mount, *tls], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                line = proc.stdout.readline()
                if line.startswith("READY"):
                    self.proc = proc
                    return
            if proc.poll() is not None:
                break
        err = proc.stderr.read() if proc.poll() is not None else ""
        _stop(proc)
        if "TLS support is not available" in err:
            raise PeerMissing("GLib has no TLS backend for the rtsps camera (apt-get install glib-networking)")
        raise RuntimeError(f"RTSP camera did not start on port {self.port}: {err.strip()[-500:]}")

    def kill(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and send nothing, like a stalled camera."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


@contextlib.contextmanager
def rtsp_camera(clip: Path, *, tries: int = 3, tls: Path | None = None,
                client_ca: Path | None = None) -> Iterator[Camera]:
    """An RTSP camera serving ``clip`` on a free loopback port (over TLS with ``tls``, see
    ``self_signed``; admitting only clients certified by ``client_ca``), killed on exit."""
    reason = gst_rtsp_missing()
    if reason:
        raise PeerMissing(reason)
    camera = None
    for attempt in range(tries):
        camera = Camera(clip, free_port(), tls=tls, client_ca=client_ca)
        try:
            camera.start()
            break
        except PeerMissing:
            raise
        except RuntimeError:
            if attempt == tries - 1:
                raise
    assert camera is not None
    try:
        yield camera
    finally:
        if camera.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(camera.proc.pid, signal.SIGCONT)
        camera.kill()


def self_signed(folder: Path, name: str = "camera") -> tuple[Path, Path]:
    """A fresh self-signed certificate for 127.0.0.1 (openssl), as cameras ship with: the server's
    PEM (certificate and key) and the certificate alone (what a client trusts)."""
    if not shutil.which("openssl"):
        raise PeerMissing("openssl not installed (apt-get install openssl)")
    key, cert, pem = folder / f"{name}_key.pem", folder / f"{name}_cert.pem", folder / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem, cert


@dataclass
class Receiver:
    """ffmpeg waiting for one RTSP publish at ``url``, copying the stream into ``path``."""

    url: str
    path: Path
    proc: subprocess.Popen

    def wait(self, timeout_s: float = 20.0) -> int:
        """Wait for ffmpeg to finish the file after the publisher hung up (SIGINT, then kill, if it does not)."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _stop(self.proc, signal.SIGINT)
            return self.proc.returncode


@contextlib.contextmanager
def rtsp_receiver(path: Path, *, wait_s: float = 60.0, port: int | None = None) -> Iterator[Receiver]:
    """ffmpeg as the media server receiving our publish (on ``port``, default a free one); killed
    on exit if still running."""
    reason = ffmpeg_missing()
    if reason:
        raise PeerMissing(reason)
    port = port or free_port()
    url = f"rtsp://127.0.0.1:{port}/out"
    proc = subprocess.Popen(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_flags", "listen",
                             "-rtsp_transport", "tcp", "-timeout", str(int(wait_s)), "-i", url, "-c", "copy", "-y",
                             str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read() if proc.poll() is not None else ""
            _stop(proc)
            raise RuntimeError(f"ffmpeg did not listen on port {port}: {err.strip()[-500:]}")
        time.sleep(0.05)
    try:
        yield Receiver(url, path, proc)
    finally:
        _stop(proc)
