"""Evaluation against ground truth on held-out procedural worlds: the model and two baselines, same clips.

Clip ``i`` is :func:`sana_wm.worlds.make_clip` of ``ClipSettings(seed=world_seed)``: world, camera path and
caption drawn from ``numpy.random.default_rng([world_seed, i])`` alone. The default ``world_seed`` is
:data:`EVAL_SEED_BASE` (1 000 000): training data must be rendered with seeds below it, so every evaluated
world and trajectory is unseen (clip keys ``world_1000000_<i>``). Per clip:

1. the ground truth is rendered along the path (``height`` x ``width``, the clip's intrinsics);
2. three videos of the same length are compared with it frame by frame:

   - ``model``: generated from the ground-truth first frame, the caption, the ground-truth path and
     intrinsics, noise seed ``seed + i``;
   - ``repeat_first``: the ground-truth first frame repeated (a video that never moves);
   - ``camera_blind``: the same model, seed and intrinsics with every pose replaced by the first one
     (a static camera: identity poses relative to frame 0, which is what the model is given), so it sees
     the image and the caption but not the path;

3. PSNR, SSIM and camera following (:mod:`sana_wm.eval.metrics`). Frame 0 is the given image, so clip
   means are over frames ``1 .. F - 1``; the summary averages clip means over clips.

Outputs in ``out_dir``: :data:`REPORT_JSON` (every number), :data:`PLOT_PNG` (PSNR and SSIM against the
frame index) and, for the first ``num_videos`` clips, ``videos/<key>.mp4`` (generated with the action HUD |
ground truth | 50/50 overlay).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sana_wm.errors import InputError
from sana_wm.eval.metrics import (
    FLOW_STRIDE,
    PSNR_CAP_DB,
    camera_following,
    optical_flow,
    psnr_per_frame,
    ssim_per_frame,
)
from sana_wm.eval.report import plot_per_frame, write_side_by_side
from sana_wm.utils.atomic import atomic_output
from sana_wm.worlds import ClipSettings, make_clip, render
from sana_wm.worlds.clips import Clip

if TYPE_CHECKING:
    from sana_wm.inference.pipeline import Pipeline
    from sana_wm.inference.request import SamplingSettings

log = logging.getLogger(__name__)

EVAL_SEED_BASE = 1_000_000
METHODS = ("model", "repeat_first", "camera_blind")
BASELINES = ("repeat_first", "camera_blind")
TARGET_MARGIN_DB = {"repeat_first": 2.0, "camera_blind": 1.0}
FORMAT = "sana-wm-eval-world/1"
REPORT_JSON, PLOT_PNG, VIDEO_DIR = "eval.json", "psnr_per_frame.png", "videos"

GenerateFn = Callable[[np.ndarray, str, np.ndarray, np.ndarray, int], np.ndarray]
"""``(first_HW3 uint8, prompt, c2w_F44, intrinsics_F4, seed) -> (F, H, W, 3) uint8``: one video per pose,
at the first frame's size; intrinsics ``[fx, fy, cx, cy]`` in pixels of that frame, poses OpenCV c2w."""

DEFINITIONS = {
    "model": "generated from the ground-truth first frame, caption, camera path and intrinsics",
    "repeat_first": "the ground-truth first frame repeated",
    "camera_blind": "the model with the same seed, image, caption and intrinsics, every pose = the first",
    "psnr_db": "mean over frames 1..F-1 of the per-frame PSNR (data range 255; identical frames = "
    f"{PSNR_CAP_DB} dB), then over clips",
    "ssim": "mean over frames 1..F-1 of the per-frame SSIM (Gaussian 11 px, sigma 1.5), then over clips",
    "psnr_db_last": "PSNR of the last frame, mean over clips",
    "camera_following": f"mean over frame pairs (t, t+{FLOW_STRIDE}) of 2<g,r>/(|g|^2+|r|^2) of the "
    "Farneback flows of the video (g) and the ground truth (r); 1 = same motion, 0 = still, -1 = opposite",
    "flow_ratio": "RMS flow of the video / RMS flow of the ground truth (1 = as much motion, 0 = still)",
    "margin_db": "model psnr_db minus the baseline's psnr_db",
    "frames": "frame 0 is the given first frame; per-frame lists include it, means do not",
    "camera_accuracy": "with --camera_accuracy: poses of the model's video and of the ground-truth render "
    "re-estimated by the annotator's SfM, against the commanded path after a similarity alignment "
    "(sana_wm.eval.camera_accuracy): rotation error (deg), translation error (m), CamMC",
}

_SCALARS = ("psnr_db", "ssim", "psnr_db_last", "camera_following", "flow_ratio")


@dataclass(frozen=True)
class EvalSettings:
    """Which clips are evaluated and how. ``num_frames`` is 8k+1 (what the model generates); ``seed`` is
    the noise seed of clip 0 (clip ``i`` uses ``seed + i``); ``device`` runs the ray-caster, PSNR and SSIM
    (not the model: ``generate`` brings its own)."""

    num_clips: int = 8
    num_frames: int = 121
    height: int = 352
    width: int = 640
    world_seed: int = EVAL_SEED_BASE
    first_clip: int = 0
    trajectory: str = "mixed"
    mapping: str = "mixed"
    shadows: bool = True
    seed: int = 0
    fps: float = 16.0
    num_videos: int = 3
    device: str = "cpu"
    camera_accuracy: bool = False


def check_eval_settings(settings: EvalSettings) -> None:
    """Raise :class:`InputError` (naming the CLI flag) for settings the evaluation cannot run with."""
    s = settings
    if s.num_clips < 1:
        raise InputError(f"--num_clips: must be >= 1, got {s.num_clips}")
    if s.num_frames < 2 * FLOW_STRIDE + 1 or (s.num_frames - 1) % 8:
        raise InputError(f"--frames: must be 8k+1 and at least {2 * FLOW_STRIDE + 1}, got {s.num_frames}")
    if s.height < 32 or s.width < 32 or s.height % 32 or s.width % 32:
        raise InputError(f"--size: height and width must be multiples of 32, got {s.height}x{s.width}")
    if s.world_seed < 0 or s.first_clip < 0:
        raise InputError(f"--world_seed/--first_clip: must be >= 0, got {s.world_seed}, {s.first_clip}")
    if not 0 <= s.num_videos <= s.num_clips:
        raise InputError(f"--num_videos: must be 0 to --num_clips ({s.num_clips}), got {s.num_videos}")
    if not (math.isfinite(s.fps) and s.fps > 0):
        raise InputError(f"--fps: must be a positive number, got {s.fps}")
    if s.trajectory not in ("actions", "smooth", "mixed"):
        raise InputError(f"--trajectory: unknown kind {s.trajectory!r}; choose actions, smooth or mixed")


def pipeline_generate_fn(
    pipeline: Pipeline, sampling: SamplingSettings, *, progress: bool = False
) -> GenerateFn:
    """A :data:`GenerateFn` running stage 1 of ``pipeline`` with ``sampling`` at the first frame's size (no
    resize or crop); the clip's frame count and seed replace ``sampling``'s."""
    from PIL import Image

    from sana_wm.inference import CameraPath, GenerationRequest, generate

    def run(
        first_HW3: np.ndarray, prompt: str, c2w_F44: np.ndarray, intrinsics_F4: np.ndarray, seed: int
    ) -> np.ndarray:
        request = GenerationRequest(
            image=Image.fromarray(np.asarray(first_HW3, dtype=np.uint8)),
            prompt=prompt,
            camera=CameraPath(c2w_F44=c2w_F44, intrinsics=intrinsics_F4),
            sampling=dataclasses.replace(
                sampling,
                num_frames=len(c2w_F44),
                seed=seed,
                height=first_HW3.shape[0],
                width=first_HW3.shape[1],
            ),
        )
        return generate(pipeline, request, progress=progress).frames.numpy()

    return run


def stream_generate_fn(pipeline: Pipeline, settings: Any) -> GenerateFn:
    """A :data:`GenerateFn` running ``pipeline`` (chunk-causal) through the streaming pipeline
    (:class:`~sana_wm.inference.streaming.StreamSession`) with ``settings`` (a ``StreamSettings``) at the
    first frame's size: chunk by chunk with its cache, as ``sana-wm stream`` does. The clip's frame count must
    be 24k + 1, its intrinsics constant (the first row is used), and its seed replaces ``settings``'."""
    from PIL import Image

    from sana_wm.inference.streaming import StreamSession

    def run(
        first_HW3: np.ndarray, prompt: str, c2w_F44: np.ndarray, intrinsics_F4: np.ndarray, seed: int
    ) -> np.ndarray:
        size = {"height": first_HW3.shape[0], "width": first_HW3.shape[1]}
        session = StreamSession.create(
            pipeline,
            Image.fromarray(np.asarray(first_HW3, dtype=np.uint8)),
            prompt,
            c2w_F44,
            np.asarray(intrinsics_F4, np.float64)[0],
            len(c2w_F44),
            dataclasses.replace(settings, seed=seed, **size),
        )
        return np.concatenate([chunk.frames for chunk in session])

    return run


def static_path(c2w_F44: np.ndarray) -> np.ndarray:
    """The camera-blind baseline's poses: the first pose held for every frame, ``(F, 4, 4)`` float32."""
    return np.repeat(np.asarray(c2w_F44, dtype=np.float32)[:1], len(c2w_F44), axis=0)


def clip_metrics(
    video_FHW3: np.ndarray, gt_FHW3: np.ndarray, gt_flow: np.ndarray, device: str = "cpu"
) -> dict[str, Any]:
    """Per-frame PSNR / SSIM, per-pair flow agreement and their clip means (frames 1 .. F-1)."""
    psnr_F = psnr_per_frame(video_FHW3, gt_FHW3, device=device)
    ssim_F = ssim_per_frame(video_FHW3, gt_FHW3, device=device)
    follow = camera_following(video_FHW3, gt_FHW3, gt_flow=gt_flow)
    return {
        "psnr_db": float(psnr_F[1:].mean()),
        "ssim": float(ssim_F[1:].mean()),
        "psnr_db_last": float(psnr_F[-1]),
        "camera_following": follow.score,
        "flow_ratio": follow.flow_ratio,
        "psnr_db_per_frame": psnr_F.tolist(),
        "ssim_per_frame": ssim_F.tolist(),
        "flow_agreement_per_pair": follow.agreement_P.tolist(),
    }


def render_ground_truth(clip: Clip, settings: EvalSettings) -> np.ndarray:
    """The clip rendered along its path at the evaluation size: ``(F, H, W, 3)`` uint8."""
    path = clip.path
    rgb = render(
        clip.world,
        path.c2w_F44,
        path.intrinsics_F4,
        settings.height,
        settings.width,
        shadows=settings.shadows,
        device=settings.device,
    ).rgb_FHW3
    return rgb.cpu().numpy()


def method_videos(generate: GenerateFn, clip: Clip, gt_FHW3: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The videos of :data:`METHODS` for one clip, each checked to match the ground truth's shape."""
    path = clip.path
    first_HW3 = gt_FHW3[0]
    videos = {
        "model": generate(first_HW3, clip.prompt, path.c2w_F44, path.intrinsics_F4, seed),
        "repeat_first": np.repeat(gt_FHW3[:1], len(gt_FHW3), axis=0),
        "camera_blind": generate(first_HW3, clip.prompt, static_path(path.c2w_F44), path.intrinsics_F4, seed),
    }
    for method, video in videos.items():
        if not isinstance(video, np.ndarray) or video.shape != gt_FHW3.shape or video.dtype != np.uint8:
            got = f"{video.dtype} {video.shape}" if isinstance(video, np.ndarray) else type(video).__name__
            raise ValueError(f"{method}: generated {got}, expected uint8 {gt_FHW3.shape}")
    return videos


def evaluate_worlds(
    generate: GenerateFn,
    settings: EvalSettings,
    out_dir: str | os.PathLike[str],
    *,
    info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate ``generate`` and the baselines on ``settings.num_clips`` held-out clips; write the outputs.

    Args:
        generate: the model under test (:func:`pipeline_generate_fn` wraps a :class:`Pipeline`).
        settings: clips, sizes and seeds.
        out_dir: output folder (created); existing outputs of the same names are replaced.
        info: extra JSON-able facts stored under ``"info"`` (model, sampling settings).

    Returns:
        The report written to ``out_dir / REPORT_JSON`` (non-finite numbers as None).
    """
    from sana_wm.viz.overlay import HUD_KEY_LABELS

    check_eval_settings(settings)
    if settings.world_seed < EVAL_SEED_BASE:
        log.warning("--world_seed %d: below %d, may overlap training", settings.world_seed, EVAL_SEED_BASE)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {out} exists and is not a folder")
    clip_settings = ClipSettings(
        num_frames=settings.num_frames,
        height=settings.height,
        width=settings.width,
        seed=settings.world_seed,
        fps=settings.fps,
        trajectory=settings.trajectory,
        mapping=settings.mapping,
        shadows=settings.shadows,
    )
    clips, videos = [], []
    timings = dict.fromkeys(("render", "generate", "metrics", "videos", "camera"), 0.0)
    cameras = []
    for n, index in enumerate(range(settings.first_clip, settings.first_clip + settings.num_clips)):
        clip = make_clip(clip_settings, index)
        seed = settings.seed + index
        with _timed(timings, "render"):
            gt_FHW3 = render_ground_truth(clip, settings)
        with _timed(timings, "generate"):
            generated = method_videos(generate, clip, gt_FHW3, seed)
        with _timed(timings, "metrics"):
            gt_flow = optical_flow(gt_FHW3)
            methods = {m: clip_metrics(generated[m], gt_FHW3, gt_flow, settings.device) for m in METHODS}
        if n < settings.num_videos:
            with _timed(timings, "videos"):
                video_path = out / VIDEO_DIR / f"{clip.key}.mp4"
                labels = HUD_KEY_LABELS[clip.path.mapping or "v1"]
                write_side_by_side(
                    video_path, generated["model"], gt_FHW3, clip.path.c2w_F44, settings.fps, labels
                )
                videos.append(video_path.relative_to(out).as_posix())
        clips.append(_clip_record(clip, seed, methods))
        if settings.camera_accuracy:
            from sana_wm.eval.camera_accuracy import camera_accuracy

            with _timed(timings, "camera"):
                cameras.append(camera_accuracy(generated["model"], gt_FHW3, clip.path.c2w_F44))
            clips[-1]["camera_accuracy"] = cameras[-1]
        log.info(
            "%s (%s): PSNR model %.2f dB, camera-blind %.2f dB, repeat-first %.2f dB; camera following %.3f",
            clip.key,
            clip.path.kind,
            *(methods[m]["psnr_db"] for m in ("model", "camera_blind", "repeat_first")),
            methods["model"]["camera_following"],
        )

    report = {
        "format": FORMAT,
        "settings": dataclasses.asdict(settings),
        "info": dict(info or {}),
        "definitions": DEFINITIONS,
        "summary": summarise(clips),
        "per_frame": per_frame_means(clips),
        "by_trajectory": {
            kind: summarise([c for c in clips if c["trajectory"] == kind])
            for kind in sorted({c["trajectory"] for c in clips})
        },
        "clips": clips,
        **({"camera_accuracy": _camera_summary(cameras)} if settings.camera_accuracy else {}),
        "files": {"report": REPORT_JSON, "plot": PLOT_PNG, "videos": videos},
        "timings_s": timings,
    }
    plot_per_frame(report["per_frame"], out / PLOT_PNG, title=_plot_title(report["summary"]))
    report = _finite_or_none(report)
    with atomic_output(out / REPORT_JSON) as tmp:
        tmp.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return report


def _camera_summary(cameras: list[dict[str, Any]]) -> dict[str, Any]:
    from sana_wm.eval.camera_accuracy import summarise_camera

    return summarise_camera(cameras)


def _clip_record(clip: Clip, seed: int, methods: dict[str, Any]) -> dict[str, Any]:
    path = clip.path
    return {
        "key": clip.key,
        "index": clip.index,
        "seed": seed,
        "prompt": clip.prompt,
        "trajectory": path.kind,
        "action": path.action,
        "mapping": path.mapping,
        "hfov_deg": path.hfov_deg,
        "methods": methods,
    }


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] += time.perf_counter() - start


def summarise(clips: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method, the mean over clips of each clip scalar; margins of the model over each baseline."""
    summary: dict[str, Any] = {"num_clips": len(clips)}
    for method in METHODS:
        summary[method] = {name: _nanmean([c["methods"][method][name] for c in clips]) for name in _SCALARS}
    model_psnr = summary["model"]["psnr_db"]
    summary["margin_db"] = {b: model_psnr - summary[b]["psnr_db"] for b in BASELINES}
    summary["target_margin_db"] = dict(TARGET_MARGIN_DB)
    summary["target_met"] = {b: bool(summary["margin_db"][b] >= TARGET_MARGIN_DB[b]) for b in BASELINES}
    return summary


def per_frame_means(clips: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Per method, per frame index: mean, min and max over clips of PSNR and SSIM."""
    curves: dict[str, dict[str, list[float]]] = {}
    for method in METHODS:
        curves[method] = {}
        for name in ("psnr_db", "ssim"):
            values_CF = np.array([c["methods"][method][f"{name}_per_frame"] for c in clips], dtype=np.float64)
            curves[method][name] = values_CF.mean(axis=0).tolist()
            curves[method][f"{name}_min"] = values_CF.min(axis=0).tolist()
            curves[method][f"{name}_max"] = values_CF.max(axis=0).tolist()
    return curves


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _plot_title(summary: Mapping[str, Any]) -> str:
    margins = summary["margin_db"]
    return (
        f"{summary['num_clips']} held-out clips: model {summary['model']['psnr_db']:.2f} dB, "
        f"{margins['repeat_first']:+.2f} dB vs repeat-first, "
        f"{margins['camera_blind']:+.2f} dB vs camera-blind"
    )


def _finite_or_none(value: Any) -> Any:
    """JSON has no inf / nan: such floats become None (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value
