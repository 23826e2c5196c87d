"""Visualisation: the action HUD drawn over videos and the top-down trajectory picture."""

from sana_wm.viz.overlay import apply_overlay, controls_from_c2w, draw_hud, hud_layout
from sana_wm.viz.trajectory_plot import plot_trajectory

__all__ = ["apply_overlay", "controls_from_c2w", "draw_hud", "hud_layout", "plot_trajectory"]
