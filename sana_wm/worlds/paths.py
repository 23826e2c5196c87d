"""Random camera paths for procedural clips: action strings (either mapping) and smooth free-form paths.

Ranges every clip draws from (uniformly unless stated):

- horizontal field of view ``HFOV_RANGE_DEG`` = 50-90 deg; square pixels, principal point at the image
  centre ``(W / 2, H / 2)``; constant over a clip;
- walking speed ``TRANSLATION_SPEED_RANGE`` = 0.02-0.08 m per frame (0.3-1.3 m/s at 16 fps);
- turning speed ``ROTATION_SPEED_RANGE_DEG`` = 0.4-1.6 deg per frame (6-26 deg/s at 16 fps);
- action paths: segments of ``SEGMENT_FRAMES`` = 8-48 frames (pitch segments 4-16) of a held control set,
  mostly forward / forward + turn, sometimes turning in place, strafing, backing up, pitching (biased back
  toward level) or standing still; rolled out by :func:`sana_wm.camera.action_to_c2w` with the drawn speeds;
  the first pose is the identity;
- smooth paths: yaw rate = bias + two sinusoids (total at most the drawn turning speed), pitch a sinusoid of
  up to ``SMOOTH_PITCH_MAX_DEG`` = 12 deg, speed modulated by +-35 % (15 % of paths stand still), an
  optional sideways "crab" angle of up to 25 deg, and a height bob of up to ``SMOOTH_BOB_MAX_M`` = 0.15 m.

Poses are OpenCV camera-to-world float32 (F, 4, 4) with world +Y down, metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sana_wm.camera import MAPPINGS, action_to_c2w
from sana_wm.errors import InputError

HFOV_RANGE_DEG = (50.0, 90.0)
TRANSLATION_SPEED_RANGE = (0.02, 0.08)
ROTATION_SPEED_RANGE_DEG = (0.4, 1.6)
SEGMENT_FRAMES = (8, 48)
PITCH_SEGMENT_FRAMES = (4, 16)
SMOOTH_PITCH_MAX_DEG = 12.0
SMOOTH_BOB_MAX_M = 0.15
TRAJECTORIES = ("actions", "smooth")

# (control set, weight): what a random action segment holds.
_CONTROL_SETS: tuple[tuple[frozenset[str], float], ...] = (
    (frozenset({"forward"}), 4.0),
    (frozenset({"forward", "yaw_left"}), 1.5),
    (frozenset({"forward", "yaw_right"}), 1.5),
    (frozenset({"yaw_left"}), 1.0),
    (frozenset({"yaw_right"}), 1.0),
    (frozenset({"strafe_left"}), 0.6),
    (frozenset({"strafe_right"}), 0.6),
    (frozenset({"forward", "strafe_left"}), 0.5),
    (frozenset({"forward", "strafe_right"}), 0.5),
    (frozenset({"back"}), 0.4),
    (frozenset({"pitch"}), 0.8),
    (frozenset(), 0.5),
)


@dataclass(frozen=True)
class CameraPath:
    """A clip's cameras and how they were drawn (``action`` / ``mapping`` only for action paths)."""

    c2w_F44: np.ndarray
    intrinsics_F4: np.ndarray
    kind: str
    hfov_deg: float
    translation_speed: float
    rotation_speed_deg: float
    action: str | None = None
    mapping: str | None = None


def random_intrinsics(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, float]:
    """``[fx, fy, cx, cy]`` float32 with a horizontal FOV drawn from ``HFOV_RANGE_DEG``, and that FOV."""
    hfov = float(rng.uniform(*HFOV_RANGE_DEG))
    focal = (width / 2.0) / math.tan(math.radians(hfov) / 2.0)
    return np.array([focal, focal, width / 2.0, height / 2.0], dtype=np.float32), hfov


def random_action(rng: np.random.Generator, num_actions: int, mapping: str) -> str:
    """An action string of exactly ``num_actions`` frames for ``mapping`` (see the module docstring)."""
    key_of = {control: key for key, control in MAPPINGS[mapping].controls.items()}
    sets = [s for s, _ in _CONTROL_SETS]
    weights = np.array([w for _, w in _CONTROL_SETS])
    segments, used, pitch_frames = [], 0, 0
    while used < num_actions:
        controls = set(sets[rng.choice(len(sets), p=weights / weights.sum())])
        if "pitch" in controls:
            toward_level = pitch_frames != 0 and rng.random() < 0.75
            up = pitch_frames < 0 if toward_level else bool(rng.random() < 0.5)
            controls = {"pitch_up" if up else "pitch_down"}
            frames = int(rng.integers(PITCH_SEGMENT_FRAMES[0], PITCH_SEGMENT_FRAMES[1] + 1))
        else:
            frames = int(rng.integers(SEGMENT_FRAMES[0], SEGMENT_FRAMES[1] + 1))
        frames = min(frames, num_actions - used)
        pitch_frames += frames * (("pitch_up" in controls) - ("pitch_down" in controls))
        keys = "".join(sorted(key_of[c] for c in controls)) or "none"
        segments.append(f"{keys}-{frames}")
        used += frames
    return ",".join(segments)


def random_action_path(
    rng: np.random.Generator, num_frames: int, height: int, width: int, mapping: str
) -> CameraPath:
    """A random action string rolled out with :func:`action_to_c2w` at drawn speeds: ``num_frames`` poses."""
    if mapping not in MAPPINGS:
        raise InputError(f"--mapping: unknown mapping {mapping!r}; choose one of {', '.join(MAPPINGS)}")
    intrinsics, hfov = random_intrinsics(rng, height, width)
    speed = float(rng.uniform(*TRANSLATION_SPEED_RANGE))
    turn = float(rng.uniform(*ROTATION_SPEED_RANGE_DEG))
    action = random_action(rng, num_frames - 1, mapping) if num_frames > 1 else "none-1"
    c2w = action_to_c2w(action, mapping=mapping, translation_speed=speed, rotation_speed_deg=turn)
    return CameraPath(
        c2w_F44=c2w[:num_frames],
        intrinsics_F4=np.repeat(intrinsics[None], num_frames, axis=0),
        kind="actions",
        hfov_deg=hfov,
        translation_speed=speed,
        rotation_speed_deg=turn,
        action=action,
        mapping=mapping,
    )


def _wave(rng: np.random.Generator, frames_F: np.ndarray) -> np.ndarray:
    """A unit sinusoid with a random period of 40-240 frames (2.5-15 s at 16 fps) and phase."""
    period = rng.uniform(40.0, 240.0)
    return np.sin(2.0 * np.pi * frames_F / period + rng.uniform(0.0, 2.0 * np.pi))


def yaw_pitch_to_rotation(yaw_F: np.ndarray, pitch_F: np.ndarray) -> np.ndarray:
    """``R_y(yaw) @ R_x(pitch)`` per frame (radians), as the action language composes them: (F, 3, 3)."""
    cy, sy, cp, sp = np.cos(yaw_F), np.sin(yaw_F), np.cos(pitch_F), np.sin(pitch_F)
    zeros = np.zeros_like(yaw_F)
    rows = [[cy, sy * sp, sy * cp], [zeros, cp, -sp], [-sy, cy * sp, cy * cp]]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def random_smooth_path(rng: np.random.Generator, num_frames: int, height: int, width: int) -> CameraPath:
    """A smooth free-form path (see the module docstring): ``num_frames`` poses starting at the origin."""
    intrinsics, hfov = random_intrinsics(rng, height, width)
    frames = np.arange(num_frames, dtype=np.float64)
    speed = float(rng.uniform(*TRANSLATION_SPEED_RANGE)) if rng.random() >= 0.15 else 0.0
    turn = float(rng.uniform(*ROTATION_SPEED_RANGE_DEG))
    split = rng.uniform(0.0, 1.0, size=3)
    split = turn * split / split.sum()
    yaw_rate = (
        split[0] * rng.choice([-1.0, 1.0]) + split[1] * _wave(rng, frames) + split[2] * _wave(rng, frames)
    )
    yaw = np.radians(np.concatenate([[0.0], np.cumsum(yaw_rate[1:])]))
    pitch = np.radians(rng.uniform(0.0, SMOOTH_PITCH_MAX_DEG)) * _wave(rng, frames)
    crab = np.zeros_like(frames)
    if rng.random() < 0.3:
        crab = np.radians(rng.uniform(0.0, 25.0)) * _wave(rng, frames)
    step = speed * (1.0 + 0.35 * _wave(rng, frames))
    heading = yaw + crab
    moves = np.stack([np.sin(heading), np.zeros_like(heading), np.cos(heading)], axis=-1) * step[:, None]
    position = np.concatenate([np.zeros((1, 3)), np.cumsum(moves[1:], axis=0)])
    bob = _wave(rng, frames)
    position[:, 1] = rng.uniform(0.0, SMOOTH_BOB_MAX_M) * (bob - bob[0])
    c2w = np.zeros((num_frames, 4, 4))
    c2w[:, :3, :3] = yaw_pitch_to_rotation(yaw, pitch)
    c2w[:, :3, 3] = position
    c2w[:, 3, 3] = 1.0
    return CameraPath(
        c2w_F44=c2w.astype(np.float32),
        intrinsics_F4=np.repeat(intrinsics[None], num_frames, axis=0),
        kind="smooth",
        hfov_deg=hfov,
        translation_speed=speed,
        rotation_speed_deg=turn,
    )


def random_path(
    rng: np.random.Generator,
    num_frames: int,
    height: int,
    width: int,
    *,
    trajectory: str = "mixed",
    mapping: str = "mixed",
) -> CameraPath:
    """Draw a path: ``trajectory`` is ``actions``, ``smooth`` or ``mixed`` (half each); ``mapping`` is
    ``v1``, ``v2`` or ``mixed`` (half each) for action paths."""
    if trajectory not in (*TRAJECTORIES, "mixed"):
        raise InputError(f"--trajectory: unknown kind {trajectory!r}; choose actions, smooth or mixed")
    if mapping not in (*MAPPINGS, "mixed"):
        raise InputError(f"--mapping: unknown mapping {mapping!r}; choose {', '.join(MAPPINGS)} or mixed")
    if num_frames < 1:
        raise InputError(f"--frames: must be >= 1, got {num_frames}")
    kind = trajectory if trajectory != "mixed" else TRAJECTORIES[int(rng.integers(2))]
    if kind == "smooth":
        return random_smooth_path(rng, num_frames, height, width)
    chosen = mapping if mapping != "mixed" else sorted(MAPPINGS)[int(rng.integers(len(MAPPINGS)))]
    return random_action_path(rng, num_frames, height, width, chosen)
