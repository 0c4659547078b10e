"""A file in segments: planned at keyframes, each decoded alone, the parts joined without re-encoding."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import SAMPLE
from media import assert_same_video, facts, make_clip

from deidstream.config import EncoderConfig
from deidstream.stream.segments import join_parts, part_path, parts_dir, plan_segments, remove_parts
from deidstream.stream.sink import FileSink
from deidstream.stream.source import FileSource


def _keyframes(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        packets = sorted((p.pts, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.pts is not None)
    return [i for i, (_, key) in enumerate(packets) if key]


def _vfr_clip(tmp_path: Path) -> Path:
    """4 s, a keyframe every 12 frames, variable frame rate, audio, starting late (pts 7)."""
    gaps = np.random.default_rng(0).choice([1, 2, 3], size=96)
    pts = (7 + np.concatenate([[0], np.cumsum(gaps)[:-1]])).tolist()
    return make_clip(tmp_path / "vfr.mp4", frames=96, rate=24, pts=pts, time_base=Fraction(1, 48),
                     options={"g": "12", "keyint_min": "12", "bf": "2"})


def test_segments_start_on_keyframes_and_cover_every_frame_once(tmp_path):
    clip = _vfr_clip(tmp_path)
    segments = plan_segments(clip, 1.0)
    assert len(segments) > 2
    keys = _keyframes(clip)
    assert all(s.first_frame in keys for s in segments), "each segment starts on a keyframe"
    assert [s.first_frame for s in segments[1:]] == [s.first_frame + s.frames for s in segments[:-1]]
    assert sum(s.frames for s in segments) == 96 and segments[-1].end_pts is None


def test_a_short_file_is_one_segment():
    assert len(plan_segments(SAMPLE, 60.0)) == 1
    with pytest.raises(ValueError, match="segment_s"):
        plan_segments(SAMPLE, 0)


def test_decoding_segment_by_segment_gives_the_whole_files_frames(tmp_path):
    clip = _vfr_clip(tmp_path)
    with FileSource(clip) as source:
        whole = [(f.index, f.pts, f.duration, f.image) for f in source.items() if hasattr(f, "image")]
    pieces = []
    for segment in plan_segments(clip, 1.0):
        with FileSource(clip, segment) as source:
            pieces += [(f.index, f.pts, f.duration, f.image) for f in source.items()]  # no audio in a segment
    assert [p[:3] for p in pieces] == [w[:3] for w in whole], "same indices, timestamps and durations"
    assert all(np.array_equal(p[3], w[3]) for p, w in zip(pieces, whole)), "same pixels"


def _encode_parts(clip: Path, target: Path) -> list[Path]:
    parts_dir(target).mkdir()
    parts = []
    for segment in plan_segments(clip, 1.0):
        with FileSource(clip, segment) as source:
            with FileSink(part_path(target, segment), source.info, [], EncoderConfig()) as sink:
                for frame in source.items():
                    sink.write(frame)
        parts.append(part_path(target, segment))
    return parts


def test_parts_join_into_the_inputs_frames_timing_and_audio(tmp_path):
    clip = _vfr_clip(tmp_path)
    target = tmp_path / "out.mp4"
    parts = _encode_parts(clip, target)
    assert len(parts) > 2
    assert join_parts(parts, clip, target, EncoderConfig()) == 96
    assert_same_video(facts(clip), facts(target))
    assert facts(target).audio_codec == "aac" and facts(target).audio_duration == pytest.approx(
        facts(clip).audio_duration, abs=0.03)
    remove_parts(target)
    assert not parts_dir(target).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "vfr.mp4"]


def test_a_join_that_fails_leaves_no_output(tmp_path):
    clip = _vfr_clip(tmp_path)
    target = tmp_path / "out.mp4"
    parts = _encode_parts(clip, target)
    parts[1].write_bytes(b"not a video")
    with pytest.raises(av.error.FFmpegError):
        join_parts(parts, clip, target, EncoderConfig())
    assert not target.exists() and not list(tmp_path.glob(".out.*.part.mp4"))


def test_a_late_start_keeps_its_timestamps_exactly(tmp_path):
    """The edit list that says where the first frame starts is written in the video's own ticks."""
    clip = make_clip(tmp_path / "late.mp4", frames=30, rate=30, pts=list(range(70139, 70139 + 30 * 512, 512)),
                     time_base=Fraction(1, 15360), audio=None)
    target = tmp_path / "out.mp4"
    with FileSource(clip) as source, FileSink(target, source.info, [], EncoderConfig()) as sink:
        for frame in source.items():
            sink.write(frame)
    assert facts(target).times == facts(clip).times


def test_a_rotated_file_keeps_its_rotation_through_the_join(tmp_path):
    clip = make_clip(tmp_path / "turned.mp4", frames=48, rate=24, rotation=90, options={"g": "12"})
    target = tmp_path / "out.mp4"
    parts = _encode_parts(clip, target)
    assert len(parts) > 1 and join_parts(parts, clip, target, EncoderConfig()) == 48
    assert facts(target).rotation == facts(clip).rotation == 90
