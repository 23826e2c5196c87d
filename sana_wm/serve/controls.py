"""The live camera: key states and per-frame camera messages in, the poses of the next chunk out.

A live session asks for poses one chunk at a time, just before that chunk is sampled
(:meth:`LiveCamera.next_poses`). Poses queued by ``camera`` messages are used first, in order; the rest of
the chunk is rolled out by the action language (:class:`~sana_wm.camera.ActionRollout`) from the last
pose with the keys held at that moment, so a session driven by keys gets exactly the poses of the action
string of the same keys (``"none-24,w-48,l-24"`` for four chunks: nothing, W, W, L), v2's velocity
smoothing included.

Keys are the action language's letters ``wasdijkl`` (meaning per mapping: v1 a/d strafe and j/l yaw, v2
the reverse) and the official demo's arrow keys ``up``/``down`` (pitch up/down, as i/k) and
``left``/``right`` (strafe, whichever letters strafe under the mapping).

Poses: ``c2w`` camera-to-world, OpenCV axes (+X right, +Y down, +Z forward), pose 0 (the first frame) is the
identity; yaw is positive to the right, pitch positive looking up (``docs/conventions.md``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import numpy as np

from sana_wm.camera import MAPPINGS, ActionRollout
from sana_wm.camera.actions import KEYS
from sana_wm.errors import InputError
from sana_wm.viz.overlay import forward_yaw_pitch

ARROWS = {"up": "pitch_up", "down": "pitch_down", "left": "strafe_left", "right": "strafe_right"}
KEY_NAMES = (*KEYS, *ARROWS)
HUD_DEADZONE = 0.3  # a HUD key lights above this fraction of full speed (as sana_wm.viz.overlay)


def key_letters(keys: Iterable[str], mapping: str) -> frozenset[str]:
    """Key names (letters of ``wasdijkl`` or arrow names, any case) → the action letters under ``mapping``."""
    if mapping not in MAPPINGS:
        raise InputError(f"mapping: unknown {mapping!r}; choose one of {', '.join(MAPPINGS)}")
    by_control = {control: key for key, control in MAPPINGS[mapping].controls.items()}
    letters = set()
    for key in keys:
        name = str(key).lower()
        if name.startswith("arrow"):
            name = name[5:]
        if name in ARROWS:
            letters.add(by_control[ARROWS[name]])
        elif len(name) == 1 and name in KEYS:
            letters.add(name)
        else:
            raise InputError(f"keys: unknown key {str(key)[:20]!r}; expected {', '.join(KEY_NAMES)}")
    return frozenset(letters)


def pose_summary(c2w_44: np.ndarray) -> dict[str, float | list[float]]:
    """Position (metres), yaw and pitch (degrees; yaw > 0 turned right, pitch > 0 looking up) of a pose."""
    yaw, pitch = forward_yaw_pitch(np.asarray(c2w_44, np.float64)[None, :3, :3])
    return {
        "position": [round(float(v), 5) for v in c2w_44[:3, 3]],
        "yaw_deg": round(math.degrees(float(yaw[0])), 4),
        "pitch_deg": round(math.degrees(float(pitch[0])), 4),
    }


def check_poses(c2w: object, *, max_poses: int, max_distance: float = 1e4) -> np.ndarray:
    """A ``camera`` message's ``c2w``: a list of 4x4 rows, finite, rotation orthonormal (to 1e-3), bottom
    row ``0 0 0 1``, translation within ``max_distance`` metres; returns ``(F, 4, 4)`` float64."""
    try:
        poses = np.asarray(c2w, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InputError("camera: c2w must be a list of 4x4 number matrices") from None
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or not 1 <= poses.shape[0] <= max_poses:
        raise InputError(
            f"camera: c2w must have shape (F, 4, 4) with 1 <= F <= {max_poses}, got {poses.shape}"
        )
    if not np.isfinite(poses).all():
        raise InputError("camera: c2w values must be finite")
    rotation = poses[:, :3, :3]
    if np.abs(rotation @ rotation.transpose(0, 2, 1) - np.eye(3)).max() > 1e-3:
        raise InputError("camera: each c2w rotation must be orthonormal (R R^T = I to 1e-3)")
    if np.abs(np.linalg.det(rotation) - 1).max() > 1e-3 or np.abs(poses[:, 3] - [0, 0, 0, 1]).max() > 1e-6:
        raise InputError("camera: each c2w must be a rigid transform (det R = 1, last row 0 0 0 1)")
    if np.abs(poses[:, :3, 3]).max() > max_distance:
        raise InputError(f"camera: positions must lie within {max_distance:g} m of the first frame")
    return poses


class LiveCamera:
    """The camera path of one live session, grown a chunk at a time (not thread-safe: the caller locks).

    Attributes:
        c2w_F44: every pose handed out so far, pose 0 (the identity) first, float64.
        keys_seq_F: per pose, the sequence number of the key state it was made from (-1: pose 0, or a
            pose from a ``camera`` message).
        hud_F6: per pose, the HUD control row (:data:`sana_wm.viz.overlay.CONTROL_COLUMNS`).
    """

    def __init__(
        self,
        mapping: str = "v1",
        *,
        translation_speed: float | None = None,
        rotation_speed_deg: float | None = None,
        max_queued: int = 2400,
    ) -> None:
        self.mapping = mapping
        self.rollout = ActionRollout(
            mapping, translation_speed=translation_speed, rotation_speed_deg=rotation_speed_deg
        )
        self.max_queued = max_queued
        self._queued: deque[np.ndarray] = deque()
        self.c2w_F44 = [np.eye(4)]
        self.keys_seq_F = [-1]
        self.hud_F6 = [np.zeros(6)]

    @property
    def queued(self) -> int:
        return len(self._queued)

    def queue_poses(self, c2w_F44: np.ndarray) -> None:
        """Queue poses (from a ``camera`` message, already checked) for the next frames."""
        if len(self._queued) + len(c2w_F44) > self.max_queued:
            raise InputError(f"camera: at most {self.max_queued} poses may wait; {len(self._queued)} do")
        self._queued.extend(np.asarray(c2w_F44, np.float64))

    def next_poses(self, count: int, letters: frozenset[str], keys_seq: int) -> np.ndarray:
        """The next ``count`` poses ``(count, 4, 4)``: queued ones first, then the rollout of ``letters``."""
        poses = []
        for _ in range(count):
            if self._queued:
                pose = self._queued.popleft()
                self.rollout.set_pose(pose)
                self.hud_F6.append(self._hud_from_delta(self.c2w_F44[-1], pose))
                self.keys_seq_F.append(-1)
            else:
                pose = self.rollout.step(letters)
                self.hud_F6.append(self._hud_from_velocity(self.rollout.velocity_4))
                self.keys_seq_F.append(keys_seq)
            self.c2w_F44.append(pose)
            poses.append(pose)
        return np.stack(poses) if poses else np.zeros((0, 4, 4))

    def at_rest(self, fraction: float = 0.05) -> bool:
        """No pose queued and the (smoothed) velocity below ``fraction`` of full speed on every axis."""
        full = np.array([self.rollout.translation] * 2 + [self.rollout.rotation] * 2)
        return not self._queued and bool((np.abs(self.rollout.velocity_4) <= fraction * full + 1e-12).all())

    def stop_moving(self) -> None:
        """Drop the coasting velocity (a paused session does not drift on when it resumes)."""
        self.rollout.set_pose(self.c2w_F44[-1])

    def _hud_from_velocity(self, velocity_4: np.ndarray) -> np.ndarray:
        forward, strafe, yaw, pitch = velocity_4
        step, turn = self.rollout.translation, self.rollout.rotation
        return _hud_row(forward, strafe, yaw, pitch, step, turn)

    def _hud_from_delta(self, previous_44: np.ndarray, pose_44: np.ndarray) -> np.ndarray:
        delta = np.linalg.inv(previous_44) @ pose_44
        yaw, pitch = forward_yaw_pitch(delta[None, :3, :3])
        step, turn = self.rollout.translation, self.rollout.rotation
        return _hud_row(delta[2, 3], delta[0, 3], float(yaw[0]), float(pitch[0]), step, turn)


def _hud_row(forward: float, strafe: float, yaw: float, pitch: float, step: float, turn: float) -> np.ndarray:
    """(forward, back, left, right, yaw, pitch) with keys lit above :data:`HUD_DEADZONE` of full speed."""
    step, turn = max(step, 1e-9), max(turn, 1e-9)
    dead = HUD_DEADZONE
    stick = np.array([yaw / turn, pitch / turn])
    stick[np.abs(stick) < dead] = 0.0
    return np.array(
        [
            forward > dead * step,
            forward < -dead * step,
            strafe < -dead * step,
            strafe > dead * step,
            *np.clip(stick, -1.0, 1.0),
        ],
        dtype=np.float64,
    )
