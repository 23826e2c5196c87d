"""The evaluation's pictures: metric curves over the frame index and side-by-side comparison videos."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sana_wm.utils.atomic import atomic_output
from sana_wm.utils.video_io import VideoWriter
from sana_wm.viz.overlay import apply_overlay

LABELS = {"model": "model", "repeat_first": "repeat first frame", "camera_blind": "camera-blind model"}
PANEL_TITLES = ("generated", "ground truth", "overlay 50/50")
FIGURE_SIZE_IN = (11.0, 7.0)
DPI = 100


def plot_per_frame(
    curves: Mapping[str, Mapping[str, Sequence[float]]], path_png: str | os.PathLike[str], *, title: str = ""
) -> None:
    """PSNR (top) and SSIM (bottom) against the frame index, one line per method (mean over clips) with
    the min-max band over clips; written atomically as a 1100 x 700 PNG.

    ``curves[method]`` holds ``psnr_db``, ``ssim`` and their ``_min`` / ``_max`` lists, one value per frame.
    Frame 0, the given first frame, is left out: the repeat-first baseline copies it exactly (capped PSNR).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, sharex=True)
    for ax, name, unit in ((axes[0], "psnr_db", "PSNR (dB)"), (axes[1], "ssim", "SSIM")):
        for method, values in curves.items():
            mean = np.asarray(values[name])[1:]
            frames = np.arange(1, len(mean) + 1)
            (line,) = ax.plot(frames, mean, label=LABELS.get(method, method), linewidth=1.8)
            ax.fill_between(
                frames,
                values[f"{name}_min"][1:],
                values[f"{name}_max"][1:],
                color=line.get_color(),
                alpha=0.12,
            )
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right")
    axes[1].set_xlabel("frame index (frame 0 is the given image; bands: min-max over clips)")
    if title:
        fig.suptitle(title)
    with atomic_output(path_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)


def side_by_side_frames(
    generated_FHW3: np.ndarray,
    gt_FHW3: np.ndarray,
    c2w_F44: np.ndarray,
    key_labels: Sequence[str],
) -> Iterator[np.ndarray]:
    """Frames ``(H, 3W, 3)``: generated with the action HUD of ``c2w`` | ground truth | the two blended
    50/50 (where they disagree the overlay shows double edges), each panel titled in its top-left corner."""
    hud = apply_overlay(iter(generated_FHW3), c2w_F44, key_labels=key_labels)
    for gen_HW3, gt_HW3 in zip(hud, gt_FHW3, strict=True):
        blend = ((gen_HW3.astype(np.uint16) + gt_HW3 + 1) // 2).astype(np.uint8)
        yield _titled(np.concatenate([gen_HW3, gt_HW3, blend], axis=1), gt_HW3.shape[1])


def write_side_by_side(
    path_mp4: str | os.PathLike[str],
    generated_FHW3: np.ndarray,
    gt_FHW3: np.ndarray,
    c2w_F44: np.ndarray,
    fps: float,
    key_labels: Sequence[str],
) -> Path:
    """Write :func:`side_by_side_frames` as an H.264 mp4 (atomically); returns the path."""
    with VideoWriter(path_mp4, fps=fps) as writer:
        writer.write_many(side_by_side_frames(generated_FHW3, gt_FHW3, c2w_F44, key_labels))
    return Path(path_mp4)


def _titled(frame_HW3: np.ndarray, panel_width: int) -> np.ndarray:
    image = Image.fromarray(frame_HW3)
    draw = ImageDraw.Draw(image)
    size = max(8, frame_HW3.shape[0] // 24)
    font = ImageFont.load_default(size=size)
    for i, text in enumerate(PANEL_TITLES):
        x, y = i * panel_width + size // 2, size // 3
        draw.text(
            (x, y),
            text,
            fill=(255, 255, 255),
            font=font,
            stroke_width=max(1, size // 8),
            stroke_fill=(0, 0, 0),
        )
    return np.asarray(image)
