"""Shared helpers of the training tests: the debug recipe with edits, and pausing / killing a run that runs
in a subprocess."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from sana_wm.train.config import RunConfig, apply_overrides, load_recipe

REPO = Path(__file__).resolve().parents[2]
DEBUG_RECIPE = REPO / "recipes" / "debug.py"


def debug_config(tmp_path: Path, *overrides: str) -> RunConfig:
    """The debug recipe writing to ``tmp_path/run`` with ``overrides`` applied."""
    return apply_overrides(load_recipe(str(DEBUG_RECIPE)), [f"out_dir={tmp_path / 'run'}", *overrides])


def wait_until_paused(proc: subprocess.Popen, markers: list[Path], timeout: float = 600.0) -> None:
    """Wait until every marker file exists (the run has paused where the test wants it and waits there),
    failing if ``proc`` ends first. ``timeout`` only guards against a hang: no wall-clock moment decides."""
    deadline = time.monotonic() + timeout
    while not all(marker.exists() for marker in markers):
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it paused:\n{proc.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, "the run did not pause"
        time.sleep(0.01)


def kill_when_paused(proc: subprocess.Popen, marker: Path, timeout: float = 600.0) -> None:
    """SIGKILL ``proc`` once it has paused at ``marker`` (see :func:`wait_until_paused`), and check it died
    of the kill."""
    try:
        wait_until_paused(proc, [marker], timeout)
    finally:
        proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
