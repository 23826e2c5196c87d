"""Shared helpers of the training tests: the debug recipe with edits."""

from __future__ import annotations

from pathlib import Path

from sana_wm.train.config import RunConfig, apply_overrides, load_recipe

REPO = Path(__file__).resolve().parents[2]
DEBUG_RECIPE = REPO / "recipes" / "debug.py"


def debug_config(tmp_path: Path, *overrides: str) -> RunConfig:
    """The debug recipe writing to ``tmp_path/run`` with ``overrides`` applied."""
    return apply_overrides(load_recipe(str(DEBUG_RECIPE)), [f"out_dir={tmp_path / 'run'}", *overrides])
