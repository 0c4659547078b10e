"""Joining a Ray cluster: an address that answers nothing is a clear error, at once."""

from __future__ import annotations

import shutil
import time

import pytest
from conftest import shared_file

from deidstream.cli import main

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'deidstream[ray]')")


def test_a_cluster_address_that_answers_nothing_is_an_error_at_once(tmp_path, capsys):
    assert not ray.is_initialized(), "a Ray instance of another test would take the job"
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(shared_file("videos/single_face_short.mp4"), folder / "a.mp4")
    started = time.monotonic()
    code = main([str(folder), str(tmp_path / "out"), "--ray", "127.0.0.1:1", "--mode", "blur", "-q"])
    assert code == 1 and time.monotonic() - started < 30.0, "Ray would retry the address for minutes"
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in capsys.readouterr().err
