"""Validation of the annotator on procedural clips with exact poses: motion kinds x FOVs x texture levels.

A validation set is rendered by :func:`render_validation_set` (official layout, ground-truth c2w in metres
and intrinsics, so ``sana-wm annotate`` treats them as ground truth) and annotated by
:func:`sana_wm.annotate.annotate`; :func:`accuracy_rows` reads each clip's ``gt_check``.

Cases (:func:`cases`): every motion kind of :data:`MOTIONS` at each texture level of :data:`TEXTURES`, the
FOV cycling through :data:`HFOVS_DEG`; clip ``i`` of a split is drawn from
``numpy.random.default_rng([split seed, i])`` alone (speeds, world). Splits use disjoint seeds: ``dev``
(:data:`DEV_SEED`) for development, ``eval`` (:data:`EVAL_SEED`) only for the reported table.

Metric scale from the camera-height prior: the annotator runs with one prior height for every clip; each
clip's true camera height (median over frames of the camera-to-ground distance) is stored with it, and the
prior's estimate is rescaled to that height (the factor is proportional to the prior), which is the
accuracy of the estimator when the prior is right.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sana_wm.camera import action_to_c2w
from sana_wm.data.layout import shard_paths, write_camera_sidecar, write_json, write_zip
from sana_wm.utils.video_io import VideoWriter
from sana_wm.worlds.paths import ROTATION_SPEED_RANGE_DEG, TRANSLATION_SPEED_RANGE, random_smooth_path
from sana_wm.worlds.random_world import sample_world
from sana_wm.worlds.raycast import render_batches
from sana_wm.worlds.scene import World

DEV_SEED, EVAL_SEED = 2_000_000, 3_000_000
HFOVS_DEG = (40.0, 60.0, 90.0, 110.0)
TEXTURES = {"full": 1.0, "low": 0.3}
# name -> action string (v1 mapping: w/s forward/back, a/d strafe, j/l yaw, i/k pitch) with {n} frames,
# or "smooth" for a smooth free-form path.
MOTIONS = {
    "forward": "w-{n}",
    "forward_turn": "w-{q},jw-{h},w-{q}",
    "strafe": "d-{n}",
    "walk_pitch": "w-{q},iw-{q},kw-{q},w-{r}",
    "backward_turn": "s-{q},ls-{h},s-{q}",
    "smooth": "smooth",
    "turn_in_place": "l-{n}",
}


@dataclass(frozen=True)
class Case:
    index: int
    motion: str
    hfov_deg: float
    texture: str


def cases(num_frames: int = 81) -> list[Case]:
    """The validation matrix (see the module docstring); ``num_frames`` does not change it."""
    out = []
    for t, texture in enumerate(TEXTURES):  # every motion at full texture first
        for m, motion in enumerate(MOTIONS):
            hfov = HFOVS_DEG[(2 * m + t) % len(HFOVS_DEG)]
            out.append(Case(len(out), motion, hfov, texture))
    return out


def case_path(case: Case, rng: np.random.Generator, num_frames: int, height: int, width: int) -> np.ndarray:
    """Ground-truth c2w (F, 4, 4) of a case, metres, OpenCV axes, frame 0 the identity."""
    spec = MOTIONS[case.motion]
    if spec == "smooth":
        c2w = random_smooth_path(rng, num_frames, height, width).c2w_F44
        if np.linalg.norm(c2w[-1, :3, 3]) < 0.5:  # the smooth family sometimes stands still: keep it moving
            c2w = random_smooth_path(rng, num_frames, height, width).c2w_F44
        return c2w.astype(np.float64)
    steps = num_frames - 1
    q, h = steps // 4, steps - 2 * (steps // 4)
    if case.motion == "walk_pitch":
        action = f"w-{q},iw-{q},kw-{q},w-{steps - 3 * q}"
    else:
        action = spec.format(n=steps, q=q, h=h)
    speed = float(rng.uniform(*TRANSLATION_SPEED_RANGE))
    turn = float(rng.uniform(*ROTATION_SPEED_RANGE_DEG))
    return action_to_c2w(action, mapping="v1", translation_speed=speed, rotation_speed_deg=turn)[:num_frames]


def with_texture(world: World, contrast: float) -> World:
    """The world with every material's two colours pulled together (``contrast`` 1: unchanged)."""
    m = world.materials
    colour1 = m.colour0 + contrast * (m.colour1 - m.colour0)
    return replace(world, materials=replace(m, colour1=colour1.astype(np.float32)))


def render_validation_set(
    out_dir: str | Path,
    split: str,
    *,
    num_frames: int = 81,
    height: int = 352,
    width: int = 640,
    limit: int | None = None,
    chosen: list[Case] | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> list[Path]:
    """Render the split's cases (the first ``limit``, or ``chosen``), one shard per case
    (``out_dir/raw/validation_<index>.zip``; complete shards are kept, so an interrupted render resumes)."""
    chosen = chosen if chosen is not None else cases(num_frames)[:limit]
    return [render_case(out_dir, split, case, num_frames, height, width, device, progress) for case in chosen]


def render_case(
    out_dir: str | Path,
    split: str,
    case: Case,
    num_frames: int,
    height: int,
    width: int,
    device: str = "cpu",
    progress: bool = False,
) -> Path:
    """One case rendered into its own shard (kept if it exists): mp4, JSON, exact cameras."""
    seed = {"dev": DEV_SEED, "eval": EVAL_SEED}[split]
    raw_zip = Path(out_dir) / "raw" / f"validation_{case.index:05d}.zip"
    if raw_zip.is_file():
        return raw_zip
    rng = np.random.default_rng([seed, case.index])
    c2w = case_path(case, rng, num_frames, height, width)
    world = with_texture(sample_world(rng, c2w), TEXTURES[case.texture])
    focal = (width / 2.0) / math.tan(math.radians(case.hfov_deg) / 2.0)
    K = np.tile([focal, focal, width / 2.0, height / 2.0], (num_frames, 1))
    key = f"val_{split}_{case.index:03d}_{case.motion}_{int(case.hfov_deg)}_{case.texture}"
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / f"{key}.mp4"
        with VideoWriter(video, fps=16.0, crf=18) as writer:
            for batch in render_batches(world, c2w, K, height, width, device=device):
                writer.write_many(batch.rgb_FHW3.cpu().numpy())
        info = {
            "prompt": "",
            "width": width,
            "height": height,
            "fps": 16.0,
            "validation_split": split,
            "motion": case.motion,
            "hfov_deg": case.hfov_deg,
            "texture": case.texture,
            "camera_height_median_m": float(np.median(world.ground_y - c2w[:, 1, 3])),
            "path_length_m": float(np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1).sum()),
        }
        camera_npz, scale_json = shard_paths(raw_zip)
        write_camera_sidecar(camera_npz, [key], [c2w], [K])
        write_json(scale_json, {key: {"median": 1.0}})
        write_zip(raw_zip, [(f"{key}.json", json.dumps(info).encode()), (f"{key}.mp4", video)])
    if progress:
        print(f"rendered {key}", flush=True)
    return raw_zip


def accuracy_rows(
    report: dict[str, Any], dataset_dir: str | Path, prior_height_m: float
) -> list[dict[str, Any]]:
    """One row per validation clip: case, decision, errors against ground truth (None where SfM failed)."""
    import zipfile

    infos = {}
    for raw_zip in sorted((Path(dataset_dir) / "raw").glob("*.zip")):
        with zipfile.ZipFile(raw_zip) as archive:
            for name in archive.namelist():
                if name.endswith(".json"):
                    infos[name[: -len(".json")]] = json.loads(archive.read(name))
    rows = []
    for clip in report["clips"]:
        key = clip["key"].rsplit("_", 1)[0]
        info = infos.get(key, {})
        check = clip.get("gt_check")
        row = {
            "key": key,
            "motion": info.get("motion"),
            "hfov_deg": info.get("hfov_deg"),
            "texture": info.get("texture"),
            "path_length_m": info.get("path_length_m"),
            "kept": clip["kept"],
            "reasons": clip["reasons"],
            "registered_pct": None,
            "rot_err_deg": None,
            "ate_pct_path": None,
            "focal_err_pct": None,
            "scale_err_pct_height_prior": None,
            "seconds": sum(clip.get("timings_s", {}).values()),
        }
        if check is not None:
            errors = check["registered"]
            row.update(
                registered_pct=100.0 * clip["camera_qc"]["registered_fraction"],
                rot_err_deg=errors["rot_err_deg"],
                ate_pct_path=errors["ate_pct_path"],
                focal_err_pct=check["focal_err_pct"],
            )
            prior = clip.get("metric_scale_tried", {}).get("prior:camera_height")
            true_height = info.get("camera_height_median_m")
            if prior is not None and true_height:
                estimate = prior * true_height / prior_height_m
                row["scale_err_pct_height_prior"] = 100.0 * (estimate / check["true_scale"] - 1.0)
        rows.append(row)
    return rows


TARGETS = {"registered_pct": 95.0, "rot_err_deg": 1.0, "ate_pct_path": 2.0, "focal_err_pct": 3.0}


def meets_targets(row: dict[str, Any]) -> bool:
    """Registered >= 95 %, rotation error <= 1 deg, ATE <= 2 % of the path, focal within 3 % (and the
    height-prior scale within 5 % where it applied)."""
    if row["rot_err_deg"] is None:
        return False
    ok = (
        row["registered_pct"] >= TARGETS["registered_pct"]
        and row["rot_err_deg"] <= TARGETS["rot_err_deg"]
        and (
            row["ate_pct_path"] is None
            or not math.isfinite(row["ate_pct_path"])
            or row["ate_pct_path"] <= 2.0
        )
        and abs(row["focal_err_pct"]) <= TARGETS["focal_err_pct"]
    )
    scale = row["scale_err_pct_height_prior"]
    return bool(ok and (scale is None or abs(scale) <= 5.0))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The per-clip table in Markdown."""

    def number(value: Any, fmt: str) -> str:
        return (
            "—"
            if value is None or (isinstance(value, float) and not math.isfinite(value))
            else format(value, fmt)
        )

    lines = [
        "| motion | HFOV | texture | path (m) | registered | rot err (°) | ATE (% path) | focal err | "
        "scale err (height prior) | kept | all targets | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['motion']} | {number(r['hfov_deg'], '.0f')}° | {r['texture']} | "
            f"{number(r['path_length_m'], '.2f')} | {number(r['registered_pct'], '.0f')} % | "
            f"{number(r['rot_err_deg'], '.2f')} | {number(r['ate_pct_path'], '.2f')} | "
            f"{number(r['focal_err_pct'], '+.1f')} % | {number(r['scale_err_pct_height_prior'], '+.1f')} % | "
            f"{'yes' if r['kept'] else 'no: ' + '; '.join(x.split(' (')[0] for x in r['reasons'])} | "
            f"{'yes' if meets_targets(r) else 'no'} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"
