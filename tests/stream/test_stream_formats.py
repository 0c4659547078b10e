"""Output keeps the input's frames, timestamps, size, duration, rotation and audio, for many inputs."""

from __future__ import annotations

from fractions import Fraction

import pytest
from media import assert_same_video, facts, make_clip

from deidstream.cli import main

CASES = [
    # name, container, codec, pix_fmt, audio, size, extra
    ("h264_mp4", "mp4", "libx264", "yuv420p", "aac", (160, 120), {}),
    ("mpeg4_mov", "mov", "mpeg4", "yuv420p", "aac", (160, 120), {}),
    ("vp9_mkv", "mkv", "libvpx-vp9", "yuv420p", "libopus", (160, 120), {}),
    ("vp9_webm", "webm", "libvpx-vp9", "yuv420p", "libopus", (160, 120), {}),
    ("mpeg4_avi", "avi", "mpeg4", "yuv420p", "pcm_s16le", (160, 120), {}),
    ("av1_mkv", "mkv", "libsvtav1", "yuv420p", None, (160, 128), {}),
    ("gif", "gif", "gif", "rgb8", None, (96, 64), {}),
    ("odd_size", "mp4", "libx264", "yuv444p", "aac", (161, 119), {}),
]


@pytest.mark.parametrize("name,ext,codec,pix_fmt,audio,size,extra", CASES, ids=[c[0] for c in CASES])
def test_output_keeps_timing_size_and_audio(tmp_path, name, ext, codec, pix_fmt, audio, size, extra):
    src = make_clip(tmp_path / f"in.{ext}", codec=codec, pix_fmt=pix_fmt, audio=audio, size=size, **extra)
    out = tmp_path / "out.mp4"
    assert main([str(src), str(out), "-q"]) == 0
    a, b = facts(src), facts(out)
    assert_same_video(a, b)
    if audio:
        assert b.audio_duration == pytest.approx(a.audio_duration, abs=0.03)
    else:
        assert b.audio_codec is None


def test_variable_frame_rate_timestamps_are_kept(tmp_path):
    pts = [0, 1, 3, 4, 9, 10, 11, 20, 21, 23, 40, 41]
    src = make_clip(tmp_path / "vfr.mp4", frames=len(pts), pts=pts, time_base=Fraction(1, 30), rate=30)
    out = tmp_path / "out.mp4"
    assert main([str(src), str(out), "-q"]) == 0
    assert facts(out).times == [Fraction(p, 30) for p in pts]


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_rotation_metadata_is_kept(tmp_path, rotation):
    src = make_clip(tmp_path / "rot.mp4", rotation=rotation, audio=None)
    out = tmp_path / "out.mp4"
    assert main([str(src), str(out), "-q"]) == 0
    assert facts(out).rotation == facts(src).rotation == rotation % 360


def test_audio_is_copied_not_reencoded(tmp_path):
    src = make_clip(tmp_path / "in.mp4", audio="aac")
    out = tmp_path / "out.mp4"
    assert main([str(src), str(out), "-q"]) == 0
    import av

    with av.open(str(src)) as a, av.open(str(out)) as b:
        pa = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        pb = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    assert pa == pb


def test_mkv_output_container(tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    out = tmp_path / "out.mkv"
    assert main([str(src), str(out), "-q"]) == 0
    assert facts(out).frames == facts(src).frames


def test_audio_the_container_refuses_is_reencoded_as_aac(tmp_path):
    src = make_clip(tmp_path / "in.avi", codec="mpeg4", audio="pcm_mulaw")
    out = tmp_path / "out.mp4"
    assert main([str(src), str(out), "-q"]) == 0
    a, b = facts(src), facts(out)
    assert (a.audio_codec, b.audio_codec) == ("pcm_mulaw", "aac")
    assert b.audio_duration == pytest.approx(a.audio_duration, abs=0.025)  # one AAC frame of padding at most
    assert b.times == a.times


@pytest.mark.parametrize("clip", ["two_faces_selfie_portrait.mp4", "stage_multi_person_cuts.mp4"])
def test_encoder_frames_keep_the_decoded_colours(clip):
    """yuv420_frame (OpenCV) gives what PyAV's own conversion gives, and what the decoder had."""
    import av
    import numpy as np
    from conftest import shared_file

    from deidstream.stream.yuv import yuv420_frame

    with av.open(str(shared_file(f"videos/{clip}"))) as container:
        decoded = next(container.decode(video=0))
    rgb = decoded.to_ndarray(format="rgb24")
    ours = yuv420_frame(rgb).to_ndarray().astype(int)
    pyav = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray().astype(int)
    source = decoded.to_ndarray(format="yuv420p").astype(int)
    h = rgb.shape[0]
    assert np.abs(ours - pyav).mean() < 0.1 and np.abs(ours[:h] - pyav[:h]).max() <= 2  # luma to rounding
    assert np.abs(ours - source)[:h].mean() < 1.5 and np.abs(ours - source)[h:].mean() < 0.5
    with pytest.raises(ValueError, match="even frame size"):
        yuv420_frame(rgb[:-1])
