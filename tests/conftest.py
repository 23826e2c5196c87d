"""Fixtures shared across test folders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_demo_model.py"


@pytest.fixture(scope="session")
def tiny_demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete demo-model folder from ``scripts/train_demo_model.py --tiny --device cpu`` (~10 s)."""
    spec = importlib.util.spec_from_file_location("train_demo_model", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("demo") / "out"
    # Wall time is not asserted: speed is measured by benchmarks, not by unit tests on a shared CPU.
    assert module.main(["--out", str(out), "--tiny", "--device", "cpu"]) == 0
    return out
