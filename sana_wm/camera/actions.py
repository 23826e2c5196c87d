"""The WASD/IJKL action language and its rollout into a camera-to-world trajectory.

An action string is a comma-separated list of ``<keys>-<frames>`` segments, e.g. ``"w-80,jw-40,w-40"``:
each segment holds a set of keys for a whole number of frames. Parsing rules (official SANA-WM grammar):

- the full-width comma ``"，"`` counts as ``","`` and all whitespace is removed;
- each segment is split at its LAST ``"-"`` into keys and a duration of ASCII digits with value >= 1;
- keys are case-insensitive letters from ``wasdijkl``; ``none`` or an empty key part means no key held;
  repeated keys count once, and opposite keys held together cancel.

Two key mappings exist because the official release changed the meaning of the keys:

- ``v1`` (first public release, also the diffusers port): w/s forward/back, a/d strafe left/right,
  i/k pitch up/down, j/l yaw left/right; 0.05 units and 1.2 deg per frame, pitch limit 85 deg; velocity
  equals the held keys' target every frame; a pitch step that would leave the limit is dropped.
- ``v2`` (current official code): a/d yaw, j/l strafe, rest as v1; 0.025 units and 0.6 deg per frame,
  pitch limit 60 deg; velocity is smoothed (snaps to the target on any fresh key press, otherwise eases
  toward it with time constants 0.45 s while a component is driven and 1.0 s while it coasts, at 16 fps);
  accumulated pitch saturates at the limit.

Rollout (both mappings): pose 0 is the identity (OpenCV camera axes: +X right, +Y down, +Z forward; world
+Y is down). Per frame, ``R_new = Ry(yaw) @ R @ Rx(pitch_step)`` (yaw about the WORLD Y axis, pitch about
the camera's own X axis; positive yaw turns right, positive pitch looks up). Translation follows the
columns 3 (forward) and 1 (right) of ``R_new`` projected onto the horizontal plane and divided by
``norm + 1e-6`` (the official epsilon, so a step is a hair shorter than the nominal speed); the camera
height never changes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from sana_wm.errors import InputError

KEYS = "wasdijkl"
FPS = 16.0
TAU_PRESS_S = 0.45
TAU_COAST_S = 1.0
HEADING_EPS = 1e-6

_DURATION = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ActionMapping:
    """One generation of the action language: key meanings, speed defaults and velocity model.

    ``controls`` maps each key to one of forward, back, strafe_left, strafe_right, yaw_left, yaw_right,
    pitch_up, pitch_down. Speeds are per frame: ``translation_speed`` in world units (metres),
    ``rotation_speed_deg`` and ``pitch_limit_deg`` in degrees.
    """

    name: str
    controls: MappingProxyType[str, str]
    translation_speed: float
    rotation_speed_deg: float
    pitch_limit_deg: float
    smooth: bool
    saturating_pitch: bool


def _controls(**key_to_control: str) -> MappingProxyType[str, str]:
    return MappingProxyType(dict(key_to_control))


MAPPINGS: MappingProxyType[str, ActionMapping] = MappingProxyType(
    {
        "v1": ActionMapping(
            name="v1",
            controls=_controls(
                w="forward",
                s="back",
                a="strafe_left",
                d="strafe_right",
                i="pitch_up",
                k="pitch_down",
                j="yaw_left",
                l="yaw_right",
            ),
            translation_speed=0.05,
            rotation_speed_deg=1.2,
            pitch_limit_deg=85.0,
            smooth=False,
            saturating_pitch=False,
        ),
        "v2": ActionMapping(
            name="v2",
            controls=_controls(
                w="forward",
                s="back",
                a="yaw_left",
                d="yaw_right",
                i="pitch_up",
                k="pitch_down",
                j="strafe_left",
                l="strafe_right",
            ),
            translation_speed=0.025,
            rotation_speed_deg=0.6,
            pitch_limit_deg=60.0,
            smooth=True,
            saturating_pitch=True,
        ),
    }
)


# About 100 minutes at 16 fps: far beyond any video the model makes, small enough to never exhaust memory.
MAX_ACTION_FRAMES = 100_000


def parse_action(action: str) -> list[frozenset[str]]:
    """Parse an action string into one key set per frame (lower-case letters from ``wasdijkl``).

    Raises:
        InputError: one line naming ``--action``, the offending segment, its 1-based position and the
            problem, e.g. ``--action: segment 2 'w5' has no '-' between keys and duration``.
    """
    cleaned = "".join(action.replace("，", ",").split())
    if not cleaned:
        raise InputError(
            "--action: the action string is empty; expected '<keys>-<frames>' segments like 'w-40,jw-20'"
        )
    frames: list[frozenset[str]] = []
    for position, segment in enumerate(cleaned.split(","), start=1):
        frames.extend(_parse_segment(segment, position))
        if len(frames) > MAX_ACTION_FRAMES:
            raise InputError(
                f"--action: segment {position} '{segment}' brings the path to {len(frames)} frames; "
                f"at most {MAX_ACTION_FRAMES} frames are supported"
            )
    return frames


def _parse_segment(segment: str, position: int) -> list[frozenset[str]]:
    shown_segment = segment if len(segment) <= 40 else f"{segment[:37]}..."
    where = f"--action: segment {position} '{shown_segment}'"
    if not segment:
        raise InputError(f"{where} is empty (two commas in a row, or a leading or trailing comma)")
    if "-" not in segment:
        raise InputError(f"{where} has no '-' between keys and duration (expected e.g. 'w-40')")
    keys_part, duration = segment.rsplit("-", 1)
    if not _DURATION.fullmatch(duration):
        shown = f"'{duration}'" if duration else "nothing"
        raise InputError(f"{where} has duration {shown}; expected a whole number of frames >= 1")
    if len(duration.lstrip("0")) > len(str(MAX_ACTION_FRAMES)):
        raise InputError(
            f"{where} has a duration of {len(duration)} digits; at most {MAX_ACTION_FRAMES} frames"
        )
    frames = int(duration)
    if frames > MAX_ACTION_FRAMES:
        raise InputError(f"{where} has duration {frames}; at most {MAX_ACTION_FRAMES} frames are supported")
    if frames < 1:
        raise InputError(f"{where} has duration {frames}; expected a whole number of frames >= 1")
    keys_part = keys_part.lower()
    if keys_part == "none":
        return [frozenset()] * frames
    unknown = sorted({c for c in keys_part if c not in KEYS})
    if unknown:
        raise InputError(
            f"{where} has unknown key(s) {' '.join(repr(c) for c in unknown)}; "
            f"allowed keys are {' '.join(KEYS)} or 'none'"
        )
    return [frozenset(keys_part)] * frames


# Largest accepted setting of each speed flag (a step, a turn per frame, the pitch limit).
_SPEED_LIMITS = {"--translation_speed": 100.0, "--rotation_speed_deg": 180.0, "--pitch_limit_deg": 90.0}


def _checked_speed(value: float | None, default: float, flag: str) -> float:
    if value is None:
        return default
    value = float(value)
    limit = _SPEED_LIMITS[flag]
    if not math.isfinite(value) or value < 0 or value > limit:
        raise InputError(f"{flag}: must be a finite number in [0, {limit:g}], got {value}")
    return value


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _horizontal_unit(axis: np.ndarray) -> np.ndarray:
    flat = np.array([axis[0], 0.0, axis[2]])
    norm = float(np.linalg.norm(flat))
    return flat / (norm + HEADING_EPS) if norm > 0 else flat


def _target_velocity(controls: set[str], translation: float, rotation: float) -> np.ndarray:
    """Target (forward, strafe right, yaw right, pitch up) per frame; opposite controls cancel."""

    def axis(positive: str, negative: str) -> float:
        return float(positive in controls) - float(negative in controls)

    return np.array(
        [
            axis("forward", "back") * translation,
            axis("strafe_right", "strafe_left") * translation,
            axis("yaw_right", "yaw_left") * rotation,
            axis("pitch_up", "pitch_down") * rotation,
        ]
    )


class ActionRollout:
    """The action language's camera, advanced one frame at a time from a state it keeps.

    :func:`action_to_c2w` is this rollout over a parsed action string; a live caller (``sana-wm serve``)
    feeds the key sets as they come, a chunk at a time, and gets the same poses as the string of the same
    keys would. State: the rotation and position of the latest pose, the accumulated pitch, the (smoothed)
    velocity ``(forward, strafe right, yaw right, pitch up)`` per frame and the controls held on the
    previous frame. Speeds as for :func:`action_to_c2w`.
    """

    def __init__(
        self,
        mapping: str = "v1",
        *,
        translation_speed: float | None = None,
        rotation_speed_deg: float | None = None,
        pitch_limit_deg: float | None = None,
    ) -> None:
        if mapping not in MAPPINGS:
            choices = ", ".join(MAPPINGS)
            raise InputError(f"--action_mapping: unknown mapping {mapping!r}; choose one of {choices}")
        spec = MAPPINGS[mapping]
        self.spec = spec
        self.translation = _checked_speed(translation_speed, spec.translation_speed, "--translation_speed")
        rotation_deg = _checked_speed(rotation_speed_deg, spec.rotation_speed_deg, "--rotation_speed_deg")
        limit_deg = _checked_speed(pitch_limit_deg, spec.pitch_limit_deg, "--pitch_limit_deg")
        self.rotation, self.pitch_limit = math.radians(rotation_deg), math.radians(limit_deg)
        self._alpha_press = 1.0 - math.exp(-1.0 / (FPS * TAU_PRESS_S))
        self._alpha_coast = 1.0 - math.exp(-1.0 / (FPS * TAU_COAST_S))
        self.set_pose(np.eye(4))

    def set_pose(self, c2w_44: np.ndarray) -> None:
        """Continue from the pose ``c2w_44`` at rest (velocity 0, no key held); its pitch is read from the
        forward axis (``asin(-R[1, 2])``: positive looks up)."""
        pose = np.asarray(c2w_44, dtype=np.float64)
        self.rotation_33 = pose[:3, :3].copy()
        self.position_3 = pose[:3, 3].copy()
        self.pitch = float(math.asin(min(max(-self.rotation_33[1, 2], -1.0), 1.0)))
        self.velocity_4 = np.zeros(4)
        self._previous: set[str] = set()

    def step(self, keys: frozenset[str] | set[str]) -> np.ndarray:
        """Advance one frame with ``keys`` (letters of :data:`KEYS`) held; returns its ``(4, 4)`` c2w."""
        spec = self.spec
        controls = {spec.controls[k] for k in keys}
        target = _target_velocity(controls, self.translation, self.rotation)
        if not spec.smooth or controls - self._previous:
            # A fresh press snaps every component (also ones whose keys were already held).
            velocity = target
        else:
            alpha = np.where(np.abs(target) > 1e-12, self._alpha_press, self._alpha_coast)
            velocity = self.velocity_4 + alpha * (target - self.velocity_4)
        self.velocity_4, self._previous = velocity, controls
        forward_speed, strafe_speed, yaw, pitch_rate = velocity

        pitch, limit = self.pitch, self.pitch_limit
        if spec.saturating_pitch:
            new_pitch = min(max(pitch + pitch_rate, -limit), limit)
            pitch_step, self.pitch = new_pitch - pitch, new_pitch
        elif -limit <= pitch + pitch_rate <= limit:
            pitch_step, self.pitch = pitch_rate, pitch + pitch_rate
        else:
            pitch_step = 0.0

        self.rotation_33 = _rot_y(yaw) @ self.rotation_33 @ _rot_x(pitch_step)
        forward = _horizontal_unit(self.rotation_33[:, 2])
        right = _horizontal_unit(self.rotation_33[:, 0])
        self.position_3 = self.position_3 + forward * forward_speed + right * strafe_speed
        c2w_44 = np.eye(4)
        c2w_44[:3, :3] = self.rotation_33
        c2w_44[:3, 3] = self.position_3
        return c2w_44

    def rollout(self, frames: list[frozenset[str]]) -> np.ndarray:
        """:meth:`step` over one key set per frame; ``(len(frames), 4, 4)`` float64."""
        c2w_F44 = np.zeros((len(frames), 4, 4))
        for index, keys in enumerate(frames):
            c2w_F44[index] = self.step(keys)
        return c2w_F44


def action_to_c2w(
    action: str,
    *,
    mapping: str = "v1",
    translation_speed: float | None = None,
    rotation_speed_deg: float | None = None,
    pitch_limit_deg: float | None = None,
) -> np.ndarray:
    """Roll an action string out into camera-to-world poses (an :class:`ActionRollout` from the identity).

    Args:
        action: the action string (see the module docstring).
        mapping: ``"v1"`` or ``"v2"`` (see :data:`MAPPINGS`).
        translation_speed: world units (metres) per frame at full speed; None = the mapping's default.
        rotation_speed_deg: yaw and pitch rate in degrees per frame; None = the mapping's default.
        pitch_limit_deg: bound on the accumulated pitch in degrees; None = the mapping's default.

    Returns:
        ``c2w_F44`` float32 of shape (N + 1, 4, 4) for N action frames; pose 0 is the identity.
    """
    rollout = ActionRollout(
        mapping,
        translation_speed=translation_speed,
        rotation_speed_deg=rotation_speed_deg,
        pitch_limit_deg=pitch_limit_deg,
    )
    frames = parse_action(action)
    c2w_F44 = np.concatenate([np.eye(4)[None], rollout.rollout(frames)])
    return c2w_F44.astype(np.float32)
