from __future__ import annotations

import math

import numpy as np
import pytest

from sana_wm.errors import InputError
from sana_wm.viz.overlay import (
    CORNERS,
    apply_overlay,
    controls_from_c2w,
    draw_hud,
    forward_yaw_pitch,
    hud_layout,
)

DSL = "w-10,a-10,d-10,s-10,j-10,l-10,i-10,k-10"
# Columns: forward, back, left, right, yaw, pitch.
SEGMENT_ROWS = [
    (1, 0, 0, 0, 0, 0),  # w
    (0, 0, 1, 0, 0, 0),  # a: strafe left
    (0, 0, 0, 1, 0, 0),  # d: strafe right
    (0, 1, 0, 0, 0, 0),  # s
    (0, 0, 0, 0, -1, 0),  # j: yaw left
    (0, 0, 0, 0, 1, 0),  # l: yaw right
    (0, 0, 0, 0, 0, 1),  # i: pitch up
    (0, 0, 0, 0, 0, -1),  # k: pitch down
]


def _rot_y(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rollout(steps: list[tuple[float, float, float, float]], start: np.ndarray | None = None) -> np.ndarray:
    """v1-style integrator: per frame (forward m, strafe-right m, yaw-right deg, pitch-up deg)."""
    pose = np.eye(4) if start is None else start.astype(np.float64)
    poses = [pose]
    for forward, strafe, yaw, pitch in steps:
        rot = _rot_y(yaw) @ pose[:3, :3] @ _rot_x(pitch)
        heading, right = rot[:, 2].copy(), rot[:, 0].copy()
        heading[1] = right[1] = 0.0
        pose = np.eye(4)
        pose[:3, :3] = rot
        move = forward * heading / np.linalg.norm(heading) + strafe * right / np.linalg.norm(right)
        pose[:3, 3] = poses[-1][:3, 3] + move
        poses.append(pose)
    return np.stack(poses).astype(np.float32)


def _dsl_v1(action: str, speed: float = 0.05, rot_deg: float = 1.2) -> np.ndarray:
    steps = []
    for segment in action.split(","):
        keys, count = segment.rsplit("-", 1)
        step = (
            speed * (("w" in keys) - ("s" in keys)),
            speed * (("d" in keys) - ("a" in keys)),
            rot_deg * (("l" in keys) - ("j" in keys)),
            rot_deg * (("i" in keys) - ("k" in keys)),
        )
        steps += [step] * int(count)
    return _rollout(steps)


def _expected(rows: list[tuple[int, ...]], per_segment: int = 10) -> np.ndarray:
    return np.array([(0,) * 6] + [row for row in rows for _ in range(per_segment)], dtype=np.float32)


def _assert_controls(controls: np.ndarray, expected: np.ndarray, atol: float = 1e-5) -> None:
    """Keys and stick directions exactly; stick magnitudes to ``atol`` (default: float32 rounding)."""
    np.testing.assert_array_equal(controls[:, :4], expected[:, :4])
    np.testing.assert_array_equal(np.sign(controls[:, 4:]), np.sign(expected[:, 4:]))
    np.testing.assert_allclose(controls[:, 4:], expected[:, 4:], atol=atol)


@pytest.mark.parametrize(("speed", "rot_deg"), [(0.05, 1.2), (0.025, 0.6), (2.0, 7.0)])
def test_v1_dsl_lights_exactly_one_control_per_segment(speed: float, rot_deg: float) -> None:
    _assert_controls(controls_from_c2w(_dsl_v1(DSL, speed, rot_deg)), _expected(SEGMENT_ROWS))


def test_matches_diffusers_v1_rollout() -> None:
    cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")
    c2w = cam_utils.action_string_to_c2w(DSL)
    _assert_controls(controls_from_c2w(c2w), _expected(SEGMENT_ROWS))


def test_identity_and_still_trajectories_press_nothing() -> None:
    assert not controls_from_c2w(np.repeat(np.eye(4, dtype=np.float32)[None], 9, axis=0)).any()
    moved = _rollout([(1.0, 0.3, 20.0, 5.0)] + [(0.0, 0.0, 0.0, 0.0)] * 5)
    controls = controls_from_c2w(moved)
    assert controls[0].tolist() == [0] * 6
    assert not controls[2:].any()
    assert controls_from_c2w(np.eye(4, dtype=np.float32)[None]).tolist() == [[0] * 6]


def test_controls_do_not_depend_on_world_frame() -> None:
    c2w = _dsl_v1("w-5,jw-5,dk-5,il-5,s-5")
    world = np.eye(4)
    world[:3, :3] = _rot_y(73.0) @ _rot_x(-20.0)
    world[:3, 3] = (4.0, -1.5, 9.0)
    np.testing.assert_array_equal(controls_from_c2w(world @ c2w), controls_from_c2w(c2w))


def test_combined_motions() -> None:
    # v1 "jw": forward while yawing left leaks sin(1.2°) of the step sideways: no strafe key. The typical
    # turn comes partly from the pitched "il" frames, where yaw couples slightly into pitch: atol 0.01.
    controls = controls_from_c2w(_dsl_v1("jw-10,wd-10,il-10"))
    _assert_controls(controls[1:11], np.tile(np.float32([1, 0, 0, 0, -1, 0]), (10, 1)), atol=0.01)
    _assert_controls(controls[11:21], np.tile(np.float32([1, 0, 0, 1, 0, 0]), (10, 1)))
    # Yaw right and pitch up together: the stick points up-right at full deflection. Yaw about world Y seen
    # from a camera pitched up by θ turns its forward axis by only cos(θ) of the angle (θ <= 12° here).
    np.testing.assert_array_equal(controls[21:, :4], 0)
    np.testing.assert_allclose(np.linalg.norm(controls[21:, 4:], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(controls[21:, 4:], math.sqrt(0.5), atol=0.01)


def test_forward_with_pitched_camera_is_still_forward() -> None:
    # Looking 40° up and moving on the horizontal plane: the camera-local step has a large -y part.
    start = np.eye(4)
    start[:3, :3] = _rot_x(40.0)
    controls = controls_from_c2w(_rollout([(0.05, 0, 0, 0)] * 6, start=start))
    np.testing.assert_array_equal(controls[1:], np.tile([1, 0, 0, 0, 0, 0], (6, 1)))


def test_rotation_jitter_below_floor_leaves_stick_centred() -> None:
    rng = np.random.default_rng(0)
    steps = [(0.05, 0.0, *rng.normal(scale=0.004, size=2)) for _ in range(30)]
    controls = controls_from_c2w(_rollout(steps))
    assert not controls[:, 4:].any()
    assert controls[1:, 0].all()


def test_forward_yaw_pitch_signs() -> None:
    rot = np.stack([_rot_y(30.0), _rot_x(20.0), _rot_y(-45.0) @ _rot_x(-10.0)])
    yaw, pitch = forward_yaw_pitch(rot)
    np.testing.assert_allclose(np.degrees(yaw), [30.0, 0.0, -45.0], atol=1e-9)
    np.testing.assert_allclose(np.degrees(pitch), [0.0, 20.0, -10.0], atol=1e-9)


def test_bad_c2w_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"c2w: expected an array of shape \(F, 4, 4\)"):
        controls_from_c2w(np.zeros((3, 3, 4)))
    bad = np.repeat(np.eye(4)[None], 2, axis=0)
    bad[1, 0, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        controls_from_c2w(bad)


def _noise_frame(height: int = 360, width: int = 640) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("corner", CORNERS)
def test_draw_hud_only_touches_its_bounding_box(corner: str) -> None:
    frame = _noise_frame()
    out = draw_hud(frame, np.array([1, 0, 1, 0, 0.6, -0.8]), corner=corner)
    x0, y0, x1, y1 = hud_layout(*frame.shape[:2], corner).bbox
    outside = np.ones(frame.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], frame[outside])
    changed = (out != frame).any(axis=-1)
    assert changed[~outside].mean() > 0.3
    assert np.array_equal(frame, _noise_frame())  # the input is not modified
    assert (x0 >= 0, y0 >= 0, x1 <= frame.shape[1], y1 <= frame.shape[0]) == (True,) * 4


def test_pressed_key_is_brighter_than_released() -> None:
    frame = np.full((704, 1280, 3), 128, np.uint8)
    layout = hud_layout(704, 1280)
    pressed = draw_hud(frame, np.array([1, 0, 0, 0, 0, 0]))
    released = draw_hud(frame, np.zeros(6))

    def centre_median(image: np.ndarray, key: str) -> float:
        # Median over the middle 60% of the key: the fill colour, not the letter strokes.
        bx0, by0, bx1, by1 = layout.keys[key]
        m = (bx1 - bx0) // 5
        return float(np.median(image[by0 + m : by1 - m, bx0 + m : bx1 - m].mean(axis=-1)))

    assert centre_median(pressed, "forward") > 230
    assert centre_median(released, "forward") < 90
    assert centre_median(pressed, "back") == centre_median(released, "back") < 90
    assert layout.key_size == round(0.08 * 704)


def test_knob_follows_yaw_and_pitch() -> None:
    frame = np.zeros((704, 1280, 3), np.uint8)
    layout = hud_layout(704, 1280)
    cx, cy = layout.stick_center
    reach = 0.48 * layout.stick_radius

    def brightness(image: np.ndarray, x: float, y: float) -> float:
        return float(image[round(y), round(x)].mean())

    centred = draw_hud(frame, np.zeros(6))
    right = draw_hud(frame, np.array([0, 0, 0, 0, 1, 0]))
    up = draw_hud(frame, np.array([0, 0, 0, 0, 0, 1]))
    assert brightness(right, cx + reach, cy) > 200 > brightness(centred, cx + reach, cy)
    assert brightness(up, cx, cy - reach) > 200 > brightness(centred, cx, cy - reach)
    assert brightness(up, cx, cy + reach) < 100


def test_relabelled_keys_draw_different_letters() -> None:
    frame = np.full((360, 640, 3), 90, np.uint8)
    v1 = draw_hud(frame, np.zeros(6))
    v2 = draw_hud(frame, np.zeros(6), key_labels=("W", "J", "S", "L"))
    layout = hud_layout(360, 640)
    for key, same in (("forward", True), ("left", False), ("back", True), ("right", False)):
        bx0, by0, bx1, by1 = layout.keys[key]
        assert np.array_equal(v1[by0:by1, bx0:bx1], v2[by0:by1, bx0:bx1]) == same


def test_hud_shrinks_to_fit_small_frames() -> None:
    layout = hud_layout(64, 96)
    x0, y0, x1, y1 = layout.bbox
    assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 64
    assert layout.key_size < 32


def test_apply_overlay_is_lazy_and_checks_counts() -> None:
    c2w = _dsl_v1("w-3")
    consumed = []

    def frames():
        for i in range(4):
            consumed.append(i)
            yield np.zeros((96, 160, 3), np.uint8)

    stream = apply_overlay(frames(), c2w)
    first = next(stream)
    assert consumed == [0]
    assert np.array_equal(first, draw_hud(np.zeros((96, 160, 3), np.uint8), np.zeros(6)))
    assert len(list(stream)) == 3
    with pytest.raises(InputError, match="c2w: 4 poses but the video has 3 frames"):
        list(apply_overlay((np.zeros((96, 160, 3), np.uint8) for _ in range(3)), c2w))
    with pytest.raises(InputError, match="c2w: 4 poses but the video has more frames"):
        list(apply_overlay((np.zeros((96, 160, 3), np.uint8) for _ in range(5)), c2w))


def test_v2_coasting_tail_unlights_keys_and_stick_after_release() -> None:
    # v2 smoothing: full speed while held, then each frame keeps 0.9394 of the previous speed.
    coast = [0.9394**n for n in range(1, 61)]
    steps = [(0.025, 0.0, 0.6, 0.0)] * 20 + [(0.025 * v, 0.0, 0.6 * v, 0.0) for v in coast]
    controls = controls_from_c2w(_rollout(steps))
    speed = np.array([1.0] * 20 + coast)
    held, stopped = speed > 0.35, speed < 0.25
    assert controls[1:, 0][held].all() and not controls[1:, 0][stopped].any()
    assert controls[21:, 0].sum() == 19  # lit while 0.9394**n > 0.3 (dead-zone), n = 1..19
    np.testing.assert_allclose(controls[1:, 4][held], speed[held], atol=0.01)
    assert not controls[1:, 4][stopped].any()
    assert not controls[:, 1:4].any() and not controls[:, 5].any()


def _lit_keys(frame: np.ndarray) -> set[str]:
    """The key boxes drawn pressed (a bright fill) in ``frame`` drawn over black."""
    layout = hud_layout(*frame.shape[:2])
    lit = set()
    for name, (bx0, by0, bx1, by1) in layout.keys.items():
        m = (bx1 - bx0) // 5
        if np.median(frame[by0 + m : by1 - m, bx0 + m : bx1 - m].mean(axis=-1)) > 200:
            lit.add(name)
    return lit


def _knob_offset(frame: np.ndarray, blank: np.ndarray) -> tuple[float, float]:
    """Where the knob sits relative to the ring centre (x right, y up), in stick-radius units."""
    layout = hud_layout(*frame.shape[:2])
    cx, cy = layout.stick_center
    r = layout.stick_radius
    y0, x0 = round(cy - r), round(cx - r)
    window = frame[y0 : round(cy + r), x0 : round(cx + r)].mean(axis=-1)
    window = window - blank[y0 : round(cy + r), x0 : round(cx + r)].mean(axis=-1)
    ys, xs = np.nonzero(window > 60)
    if len(xs) == 0:  # the knob is where it is on frame 0: centred
        return 0.0, 0.0
    return (float(xs.mean()) + x0 - cx) / r, (cy - float(ys.mean()) - y0) / r


# Every key of both mappings: which box lights and which way the stick moves.
KEY_CASES = [
    ("v1", "w", "W", {"forward"}, (0, 0)),
    ("v1", "s", "S", {"back"}, (0, 0)),
    ("v1", "a", "A", {"left"}, (0, 0)),
    ("v1", "d", "D", {"right"}, (0, 0)),
    ("v1", "j", None, set(), (-1, 0)),
    ("v1", "l", None, set(), (1, 0)),
    ("v1", "i", None, set(), (0, 1)),
    ("v1", "k", None, set(), (0, -1)),
    ("v2", "w", "W", {"forward"}, (0, 0)),
    ("v2", "s", "S", {"back"}, (0, 0)),
    ("v2", "j", "J", {"left"}, (0, 0)),
    ("v2", "l", "L", {"right"}, (0, 0)),
    ("v2", "a", None, set(), (-1, 0)),
    ("v2", "d", None, set(), (1, 0)),
    ("v2", "i", None, set(), (0, 1)),
    ("v2", "k", None, set(), (0, -1)),
]


@pytest.mark.parametrize(("mapping", "key", "label", "lit", "stick"), KEY_CASES)
def test_every_key_lights_its_own_box_and_turns_the_stick_its_way(mapping, key, label, lit, stick) -> None:
    from sana_wm.camera import action_to_c2w
    from sana_wm.viz.overlay import HUD_KEY_LABELS

    c2w = action_to_c2w(f"{key}-12", mapping=mapping)
    frames = [np.zeros((360, 640, 3), np.uint8)] * len(c2w)
    drawn = list(apply_overlay(frames, c2w, key_labels=HUD_KEY_LABELS[mapping]))
    frame = drawn[6]  # mid-segment
    assert _lit_keys(frame) == lit
    if label is not None:  # the lit box carries the key's own letter
        names = ("forward", "left", "back", "right")
        assert HUD_KEY_LABELS[mapping][names.index(next(iter(lit)))] == label
    dx, dy = _knob_offset(frame, drawn[0])
    if stick == (0, 0):
        assert abs(dx) < 0.1 and abs(dy) < 0.1
    else:
        assert np.sign(round(dx, 1)) == stick[0] and np.sign(round(dy, 1)) == stick[1]
        assert max(abs(dx), abs(dy)) > 0.3


def test_the_hud_covers_the_same_share_of_small_and_full_size_frames() -> None:
    """8 % of the height per key at every size (the demo's 192x352 frames had 32-px keys: 21 % covered)."""

    def share(height: int, width: int) -> float:
        x0, y0, x1, y1 = hud_layout(height, width).bbox
        return (x1 - x0) * (y1 - y0) / (height * width)

    assert hud_layout(192, 352).key_size == round(0.08 * 192)
    assert share(192, 352) < 0.06 and abs(share(192, 352) - share(704, 1280)) < 0.01
