"""Procedural worlds rendered along known camera paths (ground truth for demos, training and evaluation)."""

from sana_wm.worlds.ground import render_checker_ground

__all__ = ["render_checker_ground"]
