"""What the Ray tests share (imported by name into each module): a local Ray instance per module, and the worker
processes running a task."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance of 2 CPUs, started by the test; jobs join it instead of starting their own."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'deidstream[ray]')")
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def task_pids():
    """``task_pids(title)``: the processes Ray has named ``title`` (``ray::<function>`` while they run it)."""

    def pids(title: str) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "cmdline").read_bytes().startswith(title.encode()):
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    return pids
