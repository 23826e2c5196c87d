from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sana_wm.errors import InputError
from sana_wm.viz.trajectory_plot import DPI, FIGURE_SIZE_IN, plot_trajectory


def _turning_path(num_frames: int = 60) -> np.ndarray:
    """Walk forward 0.05 m/frame while turning right 1.5°/frame and rising 1 cm/frame."""
    c2w = np.repeat(np.eye(4, dtype=np.float32)[None], num_frames, axis=0)
    pos = np.zeros(3)
    for i in range(num_frames):
        yaw = math.radians(1.5 * i)
        c, s = math.cos(yaw), math.sin(yaw)
        c2w[i, :3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
        c2w[i, :3, 3] = pos
        pos = pos + 0.05 * np.array([s, 0.0, c]) + [0.0, -0.01, 0.0]
    return c2w


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=np.float32)


def test_plot_writes_a_non_blank_png_of_the_documented_size(tmp_path: Path) -> None:
    out = tmp_path / "plots" / "traj.png"
    plot_trajectory(_turning_path(), out, title="turn right")
    pixels = _load(out)
    assert pixels.shape == (round(FIGURE_SIZE_IN[1] * DPI), round(FIGURE_SIZE_IN[0] * DPI), 3)
    assert pixels.std() > 25.0
    # Coloured marks (path, cones, markers) and not just black-on-white axes.
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    assert (saturation > 60).mean() > 0.01
    assert sorted(p.name for p in out.parent.iterdir()) == ["traj.png"]


def test_intrinsics_change_the_cones(tmp_path: Path) -> None:
    c2w = _turning_path(24)
    plot_trajectory(c2w, tmp_path / "default.png", every=4)
    plot_trajectory(
        c2w, tmp_path / "narrow.png", every=4, intrinsics=np.array([2000.0, 2000.0, 640.0, 352.0])
    )
    plot_trajectory(
        c2w,
        tmp_path / "same.png",
        every=4,
        intrinsics=np.tile([640 / math.tan(math.radians(30)), 1, 640, 352], (24, 1)),
    )
    default, narrow, same = (_load(tmp_path / f"{n}.png") for n in ("default", "narrow", "same"))
    assert np.abs(default - narrow).mean() > 0.05
    assert np.abs(default - same).max() <= 1.0  # 60° given explicitly draws the default picture


def test_single_pose_still_plots(tmp_path: Path) -> None:
    out = tmp_path / "one.png"
    plot_trajectory(np.eye(4, dtype=np.float32)[None], out)
    assert _load(out).std() > 25.0


def test_unwritable_destination_names_plot(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(InputError, match="^--plot: cannot create folder"):
        plot_trajectory(_turning_path(5), blocker / "traj.png")
    with pytest.raises(InputError, match="^--plot: expected a .png path"):
        plot_trajectory(_turning_path(5), tmp_path / "traj.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_folder"]
