"""A one-glance picture of a camera trajectory: top-down path with frusta, height, pitch and yaw."""

from __future__ import annotations

import math
import os
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sana_wm.camera.pose import validate_c2w
from sana_wm.errors import InputError
from sana_wm.utils.atomic import atomic_output
from sana_wm.viz.overlay import forward_yaw_pitch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGURE_SIZE_IN = (12.0, 6.0)
DPI = 100
DEFAULT_FOV_DEG = 60.0


def plot_trajectory(
    c2w_F44: np.ndarray,
    path_png: str | os.PathLike[str],
    *,
    intrinsics: np.ndarray | None = None,
    every: int | None = None,
    title: str | None = None,
) -> None:
    """Draw a trajectory summary and write it as a 1200x600 PNG (atomically).

    Left: the path seen from above, world X to the right and world Z (the first camera's forward) up,
    which is the view of someone looking down along +Y (OpenCV: +Y is down). The path is coloured by
    frame index; a view cone every ``every`` frames shows heading and horizontal field of view
    (from ``intrinsics`` ``[fx, fy, cx, cy]`` assuming the principal point is centred, else 60°).
    Right: camera height (-Y, metres) and pitch / yaw of the forward axis (degrees; positive = up /
    right; yaw unwrapped) against frame index.

    Args:
        c2w_F44: ``(F, 4, 4)`` camera-to-world poses, OpenCV axes, metres.
        path_png: output ``.png`` path.
        intrinsics: ``(F, 4)`` or ``(4,)`` pixel intrinsics, optional.
        every: cone spacing in frames; default about 12 cones along the path.
        title: figure title.
    """
    path = Path(path_png)
    if path.suffix.lower() != ".png":
        raise InputError(f"--plot: expected a .png path, got '{path}'")
    _check_writable_dir(path.parent)
    fig = _figure(c2w_F44, intrinsics, every, title)
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    except OSError as err:
        raise InputError(f"--plot: cannot write '{path}' ({err.strerror or err})") from err


def render_trajectory(
    c2w_F44: np.ndarray,
    *,
    intrinsics: np.ndarray | None = None,
    every: int | None = None,
    title: str | None = None,
) -> np.ndarray:
    """The picture :func:`plot_trajectory` writes, as RGB uint8 pixels ``(600, 1200, 3)`` (no file)."""
    fig = _figure(c2w_F44, intrinsics, every, title)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _figure(
    c2w_F44: np.ndarray, intrinsics: np.ndarray | None, every: int | None, title: str | None
) -> Figure:
    validate_c2w(c2w_F44, name="c2w")
    c2w = np.asarray(c2w_F44, dtype=np.float64)
    num_frames = c2w.shape[0]
    half_fov = _half_fov(intrinsics, num_frames)
    every = max(1, num_frames // 12) if every is None else every
    if not isinstance(every, int) or every < 1:
        raise InputError(f"every: must be a positive integer, got {every!r}")

    # Imported here: matplotlib takes about half a second to import and only the pictures need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, width_ratios=(1.15, 1.0))
    height_ax = fig.add_subplot(grid[0, 1])
    _draw_top_down(fig, fig.add_subplot(grid[:, 0]), c2w, half_fov, every)
    _draw_height(height_ax, c2w)
    _draw_angles(fig.add_subplot(grid[1, 1], sharex=height_ax), c2w)
    if title:
        # NFKC: full-width punctuation of an action string (，) in the plain forms the default font has.
        fig.suptitle(unicodedata.normalize("NFKC", title))
    return fig


def _draw_top_down(fig: Figure, ax: Axes, c2w: np.ndarray, half_fov: np.ndarray, every: int) -> None:
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Wedge

    num_frames = c2w.shape[0]
    x, z = c2w[:, 0, 3], c2w[:, 2, 3]
    extent = max(float(np.ptp(x)), float(np.ptp(z)))
    cone_len = 0.08 * extent if extent > 1e-3 else 0.05
    cmap = colormaps["viridis"]
    last = max(num_frames - 1, 1)
    for i in range(0, num_frames, every):
        # A view cone like a map app's heading beam, apex on the camera. Plot angles run counter-clockwise
        # from +x, and a heading h (from +z toward +x) points at plot angle 90° - h.
        heading = math.degrees(math.atan2(c2w[i, 0, 2], c2w[i, 2, 2]))
        spread = math.degrees(half_fov[i])
        colour = cmap(i / last)
        cone = Wedge((x[i], z[i]), cone_len, 90 - heading - spread, 90 - heading + spread, zorder=1)
        cone.set(facecolor=(*colour[:3], 0.3), edgecolor=(*colour[:3], 0.9), linewidth=0.8)
        ax.add_patch(cone)
        ax.plot(x[i], z[i], "o", ms=3.5, color=colour, mec="black", mew=0.5, zorder=4)
    if num_frames > 1:
        points = np.column_stack([x, z])
        lines = LineCollection(
            np.stack([points[:-1], points[1:]], axis=1), cmap=cmap, linewidths=2.5, zorder=3
        )
        lines.set_array(np.arange(num_frames - 1, dtype=float))
        lines.set_clim(0, last)
        ax.add_collection(lines)
        fig.colorbar(lines, ax=ax, label="frame", shrink=0.85, pad=0.01)
    ax.plot(x[0], z[0], "o", ms=9, color="tab:green", mec="black", label="start", zorder=5)
    ax.plot(x[-1], z[-1], "s", ms=9, color="tab:red", mec="black", label="end", zorder=5)
    # Square limits around the path so a still or straight path does not collapse to a line.
    half = max(float(np.ptp(x)), float(np.ptp(z))) / 2 + max(1.5 * cone_len, 0.05)
    cx, cz = (x.min() + x.max()) / 2, (z.min() + z.max()) / 2
    ax.set_xlim(cx - half, cx + half)
    ax.set_ylim(cz - half, cz + half)
    ax.set_aspect("equal", adjustable="box")
    ax.set(xlabel="x (m, right)", ylabel="z (m, forward)", title="top-down path")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)


def _draw_height(ax: Axes, c2w: np.ndarray) -> None:
    height = -c2w[:, 1, 3]
    marker = "o" if len(height) == 1 else None  # a one-point line would be invisible
    ax.plot(np.arange(len(height)), height, color="tab:blue", lw=1.8, marker=marker)
    if np.ptp(height) < 0.1:
        mid = float(height.mean())
        ax.set_ylim(mid - 0.1, mid + 0.1)
    ax.set(ylabel="height -y (m)", title="camera height")
    ax.grid(True, alpha=0.3)


def _draw_angles(ax: Axes, c2w: np.ndarray) -> None:
    yaw, pitch = forward_yaw_pitch(c2w[:, :3, :3])
    yaw_deg, pitch_deg = np.degrees(np.unwrap(yaw)), np.degrees(pitch)
    frames = np.arange(len(yaw))
    marker = "o" if len(yaw) == 1 else None
    ax.plot(frames, pitch_deg, color="tab:orange", lw=1.8, marker=marker, label="pitch (+ up)")
    ax.plot(frames, yaw_deg, color="tab:purple", lw=1.8, marker=marker, label="yaw (+ right)")
    ax.axhline(0.0, color="black", lw=0.6, alpha=0.5)
    angles = np.concatenate([pitch_deg, yaw_deg])
    if np.ptp(angles) < 2.0:
        mid = float(angles.mean())
        ax.set_ylim(mid - 5.0, mid + 5.0)
    if len(yaw) == 1:
        ax.set_xlim(-0.5, 0.5)
    ax.set(xlabel="frame", ylabel="degrees", title="pitch and yaw")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)


def _half_fov(intrinsics: np.ndarray | None, num_frames: int) -> np.ndarray:
    if intrinsics is None:
        return np.full(num_frames, math.radians(DEFAULT_FOV_DEG) / 2)
    k = np.asarray(intrinsics, dtype=np.float64)
    if k.shape == (4,):
        k = np.broadcast_to(k, (num_frames, 4))
    if k.shape != (num_frames, 4) or not np.isfinite(k).all() or (k[:, 0] <= 0).any() or (k[:, 2] <= 0).any():
        raise InputError(f"intrinsics: expected positive [fx, fy, cx, cy] of shape ({num_frames}, 4) or (4,)")
    return np.arctan2(k[:, 2], k[:, 0])


def _check_writable_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--plot: cannot create folder '{directory}' ({err.strerror})") from err
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"--plot: folder '{directory}' is not writable")


def path_length_m(c2w_F44: np.ndarray) -> float:
    """Metres travelled along the poses' positions."""
    return float(np.linalg.norm(np.diff(c2w_F44[:, :3, 3], axis=0), axis=1).sum())


def save_trajectory(
    c2w_F44: np.ndarray,
    npy_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
) -> None:
    """The poses as a float32 ``.npy`` and (with ``png_path``) their picture, each written atomically."""

    with atomic_output(npy_path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(c2w_F44, dtype=np.float32))
    if png_path is not None:
        plot_trajectory(c2w_F44, png_path, title=title)
