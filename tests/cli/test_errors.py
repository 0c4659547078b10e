"""Bad input gets a clear error naming the file; nothing is lost or left half-written."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import interruptible
from media import facts, make_clip

from deidstream.cli import main


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main([*map(str, args), "-q"])
    return code, capsys.readouterr().err


def test_missing_input(tmp_path, capsys):
    code, err = run_cli(capsys, tmp_path / "nope.mp4", tmp_path / "out.mp4")
    assert code == 1
    assert "nope.mp4" in err and "no such file" in err
    assert not (tmp_path / "out.mp4").exists()


def test_not_a_video(tmp_path, capsys):
    src = tmp_path / "notes.mp4"
    src.write_text("this is not a video\n" * 50)
    code, err = run_cli(capsys, src, tmp_path / "out.mp4")
    assert code == 1
    assert "notes.mp4" in err and "not a readable video" in err
    assert os.listdir(tmp_path) == ["notes.mp4"]


def test_no_video_stream(tmp_path, capsys):
    src = tmp_path / "sound.m4a"
    with av.open(str(src), "w") as out:
        a = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = 0
        out.mux(a.encode(frame))
        out.mux(a.encode(None))
    code, err = run_cli(capsys, src, tmp_path / "out.mp4")
    assert code == 1
    assert "sound.m4a" in err and "no video stream" in err
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.mp4").exists()


def test_zero_frames(tmp_path, capsys):
    good = make_clip(tmp_path / "good.mkv", audio=None)
    src = tmp_path / "garbage.mkv"
    with av.open(str(good)) as inp, av.open(str(src), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0], opaque=True)
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                junk = av.Packet(bytes(packet.size))  # right sizes and times, no decodable data
                junk.pts, junk.dts, junk.time_base, junk.stream = packet.pts, packet.dts, packet.time_base, stream
                out.mux(junk)
    code, err = run_cli(capsys, src, tmp_path / "out.mp4")
    assert code == 1
    assert "garbage.mkv" in err and "no decodable video frames" in err
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.mp4").exists()


def test_empty_video_track(tmp_path, capsys):
    src = tmp_path / "empty.mp4"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()  # a header, then no frames
    code, err = run_cli(capsys, src, tmp_path / "out.mp4")
    assert code == 1
    assert "empty.mp4" in err
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.mp4").exists()


def test_file_cut_before_any_video(tmp_path, capsys):
    whole = make_clip(tmp_path / "whole.mkv", audio=None)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[:40])
    code, err = run_cli(capsys, cut, tmp_path / "out.mp4")
    assert code == 1
    assert "cut.mkv" in err
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_truncated_file_keeps_what_decodes(tmp_path, capsys):
    whole = make_clip(tmp_path / "whole.ts", frames=48, audio=None, options={"g": "4"})
    data = whole.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2])
    code, err = run_cli(capsys, cut, tmp_path / "out.mp4")
    assert code == 0
    n = facts(tmp_path / "out.mp4").frames
    assert 10 < n < 48
    assert n == facts(cut).frames


def test_corrupt_bytes_are_skipped_with_a_warning(tmp_path, capsys):
    whole = make_clip(tmp_path / "whole.ts", frames=48, audio=None, options={"g": "4"})
    data = bytearray(whole.read_bytes())
    rng = np.random.default_rng(0)
    start = len(data) // 3
    data[start:start + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.ts"
    bad.write_bytes(bytes(data))
    code, err = run_cli(capsys, bad, tmp_path / "out.mp4")
    assert code == 0
    assert 0 < facts(tmp_path / "out.mp4").frames <= 48


def test_output_equal_to_input_is_refused(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4")
    before = digest(src)
    code, err = run_cli(capsys, src, src, "--overwrite")
    assert code == 1
    assert "in.mp4" in err and "output is the input" in err
    assert digest(src) == before
    assert leftovers(tmp_path) == []


def test_output_that_is_a_link_to_the_input_is_refused(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4")
    before = digest(src)
    os.link(src, tmp_path / "hard.mp4")
    os.symlink(src, tmp_path / "soft.mp4")
    for name in ("hard.mp4", "soft.mp4"):
        code, err = run_cli(capsys, src, tmp_path / name, "--overwrite")
        assert code == 1 and "output is the input" in err
    assert digest(src) == before


def test_existing_output_needs_overwrite(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4")
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    code, err = run_cli(capsys, src, out)
    assert code == 1
    assert "out.mp4" in err and "already exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"precious"
    code, _ = run_cli(capsys, src, out, "--overwrite")
    assert code == 0
    assert facts(out).frames == facts(src).frames


def test_missing_output_directory(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4")
    code, err = run_cli(capsys, src, tmp_path / "no" / "such" / "out.mp4")
    assert code == 1
    assert "does not exist" in err and "no/such" in err


def test_output_container_without_h264(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4")
    code, err = run_cli(capsys, src, tmp_path / "out.webm")
    assert code == 1
    assert "out.webm" in err and "cannot hold H.264" in err
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.webm").exists()


def test_no_audio_input_gives_no_audio_output(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", audio=None)
    code, _ = run_cli(capsys, src, tmp_path / "out.mp4")
    assert code == 0
    assert facts(tmp_path / "out.mp4").audio_codec is None


def test_ctrl_c_leaves_no_partial_file(tmp_path):
    src = make_clip(tmp_path / "long.mp4", frames=600, size=(320, 240), audio=None,
                    options={"preset": "ultrafast"})
    outdir = tmp_path / "out"
    outdir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "deidstream", str(src), str(outdir / "out.mp4"), "-q"],
                            stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + 60
    while not leftovers(outdir) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert leftovers(outdir), "the run never started writing"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err
    assert list(outdir.iterdir()) == []


def test_output_file_has_normal_permissions(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4")
    old = os.umask(0o022)
    try:
        code, _ = run_cli(capsys, src, tmp_path / "out.mp4")
    finally:
        os.umask(old)
    assert code == 0
    assert (tmp_path / "out.mp4").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("bad,code", [(["--mode", "smudge"], 2), (["--threshold", "1.5"], 1), (["--crf", "99"], 1),
                                      (["--chooser", "oracle"], 2)])
def test_bad_options_are_refused(tmp_path, capsys, bad, code):
    src = make_clip(tmp_path / "in.mp4")
    try:
        got = main([str(src), str(tmp_path / "out.mp4"), "-q", *bad])
    except SystemExit as exc:  # argparse refuses an unknown choice itself
        got = exc.code
    assert got == code
    assert not (tmp_path / "out.mp4").exists()
