"""Action HUD drawn over generated video: a WASD key cluster and a look joystick.

The HUD is driven by the camera poses, not by the action string, so it works for any trajectory
(DSL rollouts, ``--camera`` files, poses estimated from real video). For each frame i the camera-local
motion is the relative pose ``Δ_i = inv(P_{i-1}) · P_i`` (``Δ_0`` is the identity: nothing pressed):

- forward / back: sign of Δ's translation along the previous camera's +Z axis,
- strafe left / right: sign of Δ's translation along the previous camera's +X axis,
- yaw / pitch: where Δ sends the forward axis, yaw = atan2(f_x, f_z) (positive = turned right),
  pitch = atan2(-f_y, hypot(f_x, f_z)) (positive = looked up, since +Y is down). Roll and vertical
  translation are not shown.

Dead-zones are relative to the trajectory's typical step, so that a constant-speed DSL segment lights
exactly its key whatever the speed setting, while side effects of another motion stay dark:

- the typical translation step ("full speed") is the 80th percentile (``TYPICAL_PERCENTILE``), over
  moving frames, of max(|Δx|, |Δz|) in camera coordinates. A high percentile rather than the median:
  under the v2 smoothing a released key leaves a long coasting tail of slower frames, which would lower
  a median and keep keys lit for seconds after release. A key is pressed when its component exceeds
  ``TRANSLATION_DEADZONE`` (0.3) of the typical step, so a v2 coast (speed x0.939 per frame) stays lit
  for about 19 frames. Forward motion while yawing 1.2°/frame leaks only sin(1.2°) ≈ 0.02 of the step
  sideways, far below 0.3; a v1 diagonal (forward + strafe) presses both keys.
- the joystick deflection is (yaw, pitch) divided by the same percentile, over turning frames, of
  max(|yaw|, |pitch|); components below ``ROTATION_DEADZONE`` (0.3) are set to 0 and the vector is
  clipped to length 1, so a constant-rate turn gives full deflection and yaw + pitch together gives
  (0.71, 0.71). The scale is at least ``MIN_ROTATION_STEP_DEG`` (0.05°/frame) so that jitter in
  estimated poses of a camera that barely turns does not swing the stick.
- components below 1e-4 (pose units, or radians) count as standing still.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sana_wm.camera.pose import validate_c2w
from sana_wm.errors import InputError

CONTROL_COLUMNS = ("forward", "back", "left", "right", "yaw", "pitch")
"""Columns of a control row: four 0/1 key states, then yaw and pitch deflection in [-1, 1]."""

TRANSLATION_DEADZONE = 0.3
TYPICAL_PERCENTILE = 80.0
ROTATION_DEADZONE = 0.3
MIN_ROTATION_STEP_DEG = 0.05
_STILL = 1e-4

CORNERS = ("bottom-left", "bottom-right", "top-left", "top-right")
MIN_KEY_PX = 10.0  # smallest key side: the HUD scales with the frame down to this (legible letters)
DEFAULT_KEY_LABELS = ("W", "A", "S", "D")
_KEY_ORDER = ("forward", "left", "back", "right")  # of the key boxes and of ``key_labels``
# What the HUD's strafe keys are called under each action mapping (yaw is the joystick in both).
HUD_KEY_LABELS = {"v1": ("W", "A", "S", "D"), "v2": ("W", "J", "S", "L")}

# Supersampling factor for drawing the HUD sprites; PIL draws shapes without anti-aliasing.
_SS = 4
_OUTLINE = (255, 255, 255, 150)
# (fill, letter, outline) RGBA: pressed keys are solid white with a dark letter, released keys
# translucent black with a white letter and a faint white rim that keeps them visible on dark frames.
_PRESSED_STYLE = ((255, 255, 255, 235), (20, 20, 20, 255), (0, 0, 0, 70))
_RELEASED_STYLE = ((0, 0, 0, 120), (255, 255, 255, 255), _OUTLINE)


def forward_yaw_pitch(rot_F33: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yaw and pitch (radians) of the forward axis ``R[:, 2]`` of rotations ``(F, 3, 3)``.

    Yaw is positive toward +X (turning right), pitch positive toward -Y (looking up).
    """
    f = rot_F33[:, :, 2]
    yaw = np.arctan2(f[:, 0], f[:, 2])
    pitch = np.arctan2(-f[:, 1], np.hypot(f[:, 0], f[:, 2]))
    return yaw, pitch


def controls_from_c2w(c2w_F44: np.ndarray) -> np.ndarray:
    """Per-frame HUD controls from camera-to-world poses.

    Args:
        c2w_F44: ``(F, 4, 4)`` camera-to-world poses, OpenCV axes.

    Returns:
        ``(F, 6)`` float32, columns :data:`CONTROL_COLUMNS`: forward, back, left, right in {0, 1};
        yaw (positive = right) and pitch (positive = up) stick deflection with ``yaw² + pitch² <= 1``.
        Row 0 is all zeros.
    """
    validate_c2w(c2w_F44, name="c2w")
    c2w_F44 = np.asarray(c2w_F44, dtype=np.float64)
    controls_F6 = np.zeros((c2w_F44.shape[0], len(CONTROL_COLUMNS)), dtype=np.float32)
    if c2w_F44.shape[0] < 2:
        return controls_F6
    rot_prev_T = np.swapaxes(c2w_F44[:-1, :3, :3], 1, 2)
    delta_rot = rot_prev_T @ c2w_F44[1:, :3, :3]
    delta_t = (rot_prev_T @ (c2w_F44[1:, :3, 3] - c2w_F44[:-1, :3, 3])[..., None])[..., 0]

    # Typical step from the dominant component, so diagonal moves (or yaw + pitch together) do not
    # inflate it and make single-axis moves look weak.
    x, z = delta_t[:, 0], delta_t[:, 2]
    step = np.maximum(np.abs(x), np.abs(z))
    moving = step > _STILL
    if moving.any():
        threshold = TRANSLATION_DEADZONE * float(np.percentile(step[moving], TYPICAL_PERCENTILE))
        controls_F6[1:, 0] = moving & (z > threshold)
        controls_F6[1:, 1] = moving & (z < -threshold)
        controls_F6[1:, 2] = moving & (x < -threshold)
        controls_F6[1:, 3] = moving & (x > threshold)

    yaw, pitch = forward_yaw_pitch(delta_rot)
    turn = np.maximum(np.abs(yaw), np.abs(pitch))
    turning = turn > _STILL
    if turning.any():
        typical = float(np.percentile(turn[turning], TYPICAL_PERCENTILE))
        scale = max(typical, math.radians(MIN_ROTATION_STEP_DEG))
        stick = np.stack([yaw, pitch], axis=1) / scale
        stick[np.abs(stick) < ROTATION_DEADZONE] = 0.0
        stick /= np.maximum(1.0, np.linalg.norm(stick, axis=1, keepdims=True))
        controls_F6[1:, 4:6] = stick
    return controls_F6


@dataclass(frozen=True)
class HudLayout:
    """Where the HUD sits in a frame; boxes are ``(x0, y0, x1, y1)`` pixels, ``x1``/``y1`` exclusive.

    ``keys`` maps ``forward``/``left``/``back``/``right`` to key boxes; ``stick_center`` and
    ``stick_radius`` describe the joystick ring; ``bbox`` encloses everything the HUD may touch.
    """

    bbox: tuple[int, int, int, int]
    keys: Mapping[str, tuple[int, int, int, int]]
    stick_center: tuple[float, float]
    stick_radius: float
    key_size: int


@functools.lru_cache(maxsize=32)
def hud_layout(height: int, width: int, corner: str = "bottom-left") -> HudLayout:
    """Layout of the HUD for an ``height x width`` frame.

    Keys are 8% of the height, at least ``MIN_KEY_PX`` (shrunk only when the HUD would not fit), 15% of a key
    apart, in a W-over-ASD cluster; the joystick ring (radius 0.47 x cluster height) sits half a key to
    the right of the cluster; the group keeps a margin of 5% of the height from the frame edges.
    """
    if corner not in CORNERS:
        raise InputError(f"corner: must be one of {', '.join(CORNERS)}, got {corner!r}")
    margin = round(0.05 * height)
    # Sizes in units of one key, then scaled: cluster 3 keys + 2 gaps wide, 2 keys + 1 gap tall.
    gap_u, cluster_w_u, cluster_h_u = 0.15, 3.3, 2.15
    radius_u = 0.47 * cluster_h_u
    hud_w_u = cluster_w_u + 0.5 + 2 * radius_u
    key = max(MIN_KEY_PX, 0.08 * height)
    key *= min(1.0, (width - 2 * margin) / (hud_w_u * key), (height - 2 * margin) / (cluster_h_u * key))
    if key < 6:
        raise InputError(f"video frame: {height}x{width} is too small for the action overlay")
    gap, hud_w, hud_h, radius = gap_u * key, hud_w_u * key, cluster_h_u * key, radius_u * key
    x0 = margin if corner.endswith("left") else width - margin - hud_w
    y0 = margin if corner.startswith("top") else height - margin - hud_h
    k = round(key)

    def box(col: float, row: int) -> tuple[int, int, int, int]:
        left, top = round(x0 + col * (key + gap)), round(y0 + row * (key + gap))
        return (left, top, left + k, top + k)

    keys = {"forward": box(1, 0), "left": box(0, 1), "back": box(1, 1), "right": box(2, 1)}
    center = (x0 + hud_w - radius, y0 + hud_h / 2)
    pad = 2
    bbox = (
        max(0, math.floor(x0) - pad),
        max(0, math.floor(y0) - pad),
        min(width, math.ceil(x0 + hud_w) + pad),
        min(height, math.ceil(y0 + hud_h) + pad),
    )
    return HudLayout(
        bbox=bbox, keys=MappingProxyType(keys), stick_center=center, stick_radius=radius, key_size=k
    )


def draw_hud(
    frame_HW3: np.ndarray,
    control_row: np.ndarray,
    corner: str = "bottom-left",
    key_labels: Sequence[str] = DEFAULT_KEY_LABELS,
) -> np.ndarray:
    """Return a copy of ``frame_HW3`` (uint8 RGB) with the HUD for one control row drawn on it.

    Args:
        frame_HW3: ``(H, W, 3)`` uint8 frame; not modified.
        control_row: one row of :func:`controls_from_c2w` (6 values, see :data:`CONTROL_COLUMNS`).
        corner: one of :data:`CORNERS`.
        key_labels: letters for the (forward, strafe-left, back, strafe-right) keys. The default WASD
            matches the v1 DSL; under the v2 DSL strafing is J/L, so pass ``("W", "J", "S", "L")``.
    """
    frame_HW3 = np.asarray(frame_HW3)
    if frame_HW3.dtype != np.uint8 or frame_HW3.ndim != 3 or frame_HW3.shape[2] != 3:
        raise InputError(f"video frame: expected uint8 (H, W, 3), got {frame_HW3.dtype} {frame_HW3.shape}")
    row = np.asarray(control_row, dtype=np.float32)
    if row.shape != (len(CONTROL_COLUMNS),):
        raise InputError(f"control_row: shape must be ({len(CONTROL_COLUMNS)},), got {row.shape}")
    labels = tuple(str(label) for label in key_labels)
    if len(labels) != 4:
        raise InputError(f"key_labels: need 4 labels (forward, left, back, right), got {len(labels)}")
    height, width = frame_HW3.shape[:2]
    layout = hud_layout(height, width, corner)
    # Control columns are (forward, back, left, right); key boxes and labels go (forward, left, back, right).
    state = dict(zip(CONTROL_COLUMNS[:4], (bool(v > 0.5) for v in row[:4]), strict=True))
    pressed = tuple(state[name] for name in _KEY_ORDER)
    base_rgb, base_a = _base_sprite(height, width, corner, labels, pressed)
    x0, y0, x1, y1 = layout.bbox

    out = frame_HW3.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    region = base_rgb + region * (1.0 - base_a)

    yaw, pitch = float(row[4]), float(row[5])
    knob_rgb, knob_a = _knob_sprite(height, width, corner, active=bool(yaw or pitch))
    size = knob_rgb.shape[0]
    cx = layout.stick_center[0] + 0.48 * layout.stick_radius * yaw
    cy = layout.stick_center[1] - 0.48 * layout.stick_radius * pitch
    kx, ky = round(cx - size / 2) - x0, round(cy - size / 2) - y0
    sub = region[ky : ky + size, kx : kx + size]
    sub[...] = knob_rgb[: sub.shape[0], : sub.shape[1]] + sub * (1.0 - knob_a[: sub.shape[0], : sub.shape[1]])

    out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return out


def apply_overlay(
    frames: Iterable[np.ndarray],
    c2w: np.ndarray,
    *,
    corner: str = "bottom-left",
    key_labels: Sequence[str] = DEFAULT_KEY_LABELS,
) -> Iterator[np.ndarray]:
    """Lazily draw the HUD on each frame; frame i uses the motion from pose i-1 to pose i.

    ``c2w`` must hold exactly one ``(4, 4)`` pose per frame; a count mismatch raises :class:`InputError`
    (after the frames that could be drawn, so a writer consuming this iterator discards its file).
    """
    if corner not in CORNERS:
        raise InputError(f"corner: must be one of {', '.join(CORNERS)}, got {corner!r}")
    controls_F6 = controls_from_c2w(c2w)
    count = 0
    for count, frame_HW3 in enumerate(frames, start=1):
        if count > controls_F6.shape[0]:
            raise InputError(f"c2w: {controls_F6.shape[0]} poses but the video has more frames")
        yield draw_hud(frame_HW3, controls_F6[count - 1], corner=corner, key_labels=key_labels)
    if count != controls_F6.shape[0]:
        raise InputError(f"c2w: {controls_F6.shape[0]} poses but the video has {count} frames")


def _font(size: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed-size bitmap font.
        return ImageFont.load_default()


def _to_premultiplied(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Downsample a supersampled RGBA sprite; return premultiplied RGB (0..255) and alpha (0..1)."""
    rgba = np.asarray(image.convert("RGBa").reduce(_SS), dtype=np.float32)
    return rgba[..., :3], rgba[..., 3:] / 255.0


@functools.lru_cache(maxsize=64)
def _base_sprite(
    height: int, width: int, corner: str, labels: tuple[str, ...], pressed: tuple[bool, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Keys (in the given pressed states) and the joystick ring, over the HUD bounding box."""
    layout = hud_layout(height, width, corner)
    x0, y0, x1, y1 = layout.bbox
    image = Image.new("RGBA", ((x1 - x0) * _SS, (y1 - y0) * _SS), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    k = layout.key_size
    line = max(1, round(k / 28 * _SS))
    font = _font(0.5 * k * _SS)
    for name, label, down in zip(_KEY_ORDER, labels, pressed, strict=True):
        bx0, by0, bx1, by1 = layout.keys[name]
        rect = [(bx0 - x0) * _SS, (by0 - y0) * _SS, (bx1 - x0) * _SS - 1, (by1 - y0) * _SS - 1]
        fill, text, outline = _PRESSED_STYLE if down else _RELEASED_STYLE
        draw.rounded_rectangle(rect, radius=0.22 * k * _SS, fill=fill, outline=outline, width=line)
        centre = ((rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2)
        draw.text(centre, label, fill=text, font=font, anchor="mm", stroke_width=line // 2, stroke_fill=text)

    cx, cy = (layout.stick_center[0] - x0) * _SS, (layout.stick_center[1] - y0) * _SS
    r = layout.stick_radius * _SS
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(0, 0, 0, 100), outline=_OUTLINE, width=line)
    tip, base, half = 0.93 * r, 0.80 * r, 0.09 * r
    for ux, uy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        # Small outward-pointing triangles at the four compass points of the ring.
        px, py = -uy, ux
        draw.polygon(
            [
                (cx + ux * tip, cy + uy * tip),
                (cx + ux * base + px * half, cy + uy * base + py * half),
                (cx + ux * base - px * half, cy + uy * base - py * half),
            ],
            fill=(255, 255, 255, 170),
        )
    return _to_premultiplied(image)


@functools.lru_cache(maxsize=16)
def _knob_sprite(height: int, width: int, corner: str, active: bool) -> tuple[np.ndarray, np.ndarray]:
    """The joystick knob, square sprite; bright when the stick is deflected, dim when centred."""
    layout = hud_layout(height, width, corner)
    r = 0.3 * layout.stick_radius
    size = math.ceil(2 * r) + 2
    image = Image.new("RGBA", (size * _SS, size * _SS), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    c, rr = size * _SS / 2, r * _SS
    fill = (250, 250, 250, 240) if active else (200, 200, 200, 150)
    line = max(1, round(layout.key_size / 28 * _SS))
    draw.ellipse([c - rr, c - rr, c + rr, c + rr], fill=fill, outline=(0, 0, 0, 110), width=line)
    return _to_premultiplied(image)
