"""The Python API in three lines, folder input, and the report file."""

from __future__ import annotations

import json

from media import facts, make_clip
from threadpoolctl import threadpool_info

from deidstream import anonymize
from deidstream.api import with_job_key
from deidstream.cli import main
from deidstream.config import GeneratorConfig, PipelineConfig, with_mode


def test_three_line_api(tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    report = anonymize(src, tmp_path / "out.mp4", mode="pixelate")
    assert report.frames == report.frames_written == facts(src).frames
    assert "pixelate" in report.summary()


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_blas_runs_one_thread_during_a_run_and_is_restored_after(tmp_path):
    """OpenBLAS's spinning threads cost a quarter of the CPU of a run on two cores: a run
    limits BLAS to one thread and gives the caller's setting back afterwards."""
    before = _blas_threads()
    during: list[set[int]] = []
    anonymize(make_clip(tmp_path / "in.mp4", frames=4), tmp_path / "out.mp4", mode="blur",
              progress=lambda progress: during.append(_blas_threads()))
    assert during and all(seen == {1} for seen in during)
    assert _blas_threads() == before


def test_folder_input_anonymises_every_video(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "a.mp4")
    make_clip(folder / "b.mkv", codec="libvpx-vp9", audio="libopus")
    make_clip(folder / "a.mov", codec="mpeg4")  # same stem as a.mp4
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    assert main([str(folder), str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.mov.mp4", "a.mp4", "b.mp4"]
    for name, src in [("a.mp4", "a.mp4"), ("b.mp4", "b.mkv"), ("a.mov.mp4", "a.mov")]:
        assert facts(out / name).frames == facts(folder / src).frames


def test_a_folder_job_has_one_identity_key_the_users_or_one_drawn_for_it():
    drawn = with_job_key(PipelineConfig(generator=GeneratorConfig()))
    assert drawn.generator.key is not None and len(drawn.generator.key) == 32, "one key, passed to every file"
    assert with_job_key(PipelineConfig(generator=GeneratorConfig())).generator.key != drawn.generator.key
    mine = PipelineConfig(generator=GeneratorConfig(key=b"mine"))
    assert with_job_key(mine) is mine
    blur = with_mode(None, "blur")
    assert with_job_key(blur) is blur, "blur draws no key"


def test_folder_with_a_broken_file_does_the_rest_and_fails(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "good.mp4")
    (folder / "broken.mp4").write_bytes(b"\x00" * 1000)
    out = tmp_path / "out"
    assert main([str(folder), str(out), "-q"]) == 1
    assert "broken.mp4" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4"]


def test_summary_and_report(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=30)
    assert main([str(src), str(tmp_path / "out.mp4"), "--report", str(tmp_path / "r.json")]) == 0
    err = capsys.readouterr().err
    assert "30 frames" in err and "fps" in err and "tracks" in err
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["frames"] == 30 and len(r["faces_per_frame"]) == 30 and len(r["hidden_regions_per_frame"]) == 30
    # the default mode's stages: analysis pass, lock, render pass
    assert set(r["stage_ms_per_frame"]) == {"decode", "detect", "track", "landmarks", "embed", "lock", "render",
                                            "encode"}
