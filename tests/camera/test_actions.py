"""Action DSL: parity with the diffusers v1 oracle, hand-derived v2 values, grammar and error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sana_wm.camera import MAPPINGS, action_to_c2w, parse_action
from sana_wm.errors import InputError

STEP = 1.0 / (1.0 + 1e-6)  # the official heading normalisation divides by (norm + 1e-6)
ALPHA_COAST = 1.0 - math.exp(-1.0 / 16.0)


def _random_action(rng: np.random.Generator) -> str:
    segments = []
    for _ in range(rng.integers(1, 8)):
        size = int(rng.integers(0, 4))
        keys = (
            "".join(rng.choice(list("wasdijkl"), size=size, replace=True))
            if size
            else rng.choice(["none", ""])
        )
        keys = "".join(c.upper() if rng.random() < 0.3 else c for c in keys)
        pad = " " if rng.random() < 0.3 else ""
        segments.append(f"{pad}{keys}{pad}-{pad}{rng.integers(1, 60)}")
    return ("," if rng.random() < 0.8 else "，").join(segments)


def test_v1_matches_diffusers_on_random_actions():
    cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")
    rng = np.random.default_rng(0)
    worst = 0.0
    for case in range(80):
        action = _random_action(rng)
        speeds = {}
        if case % 4:  # every 4th case keeps the v1 defaults on both sides
            speeds = {
                "translation_speed": float(rng.uniform(0.01, 0.3)),
                "rotation_speed_deg": float(rng.uniform(0.1, 6.0)),
                "pitch_limit_deg": float(rng.uniform(1.0, 89.0)),
            }
        ours = action_to_c2w(action, mapping="v1", **speeds)
        ref = cam_utils.action_string_to_c2w(action, **speeds)
        assert ours.shape == ref.shape and ours.dtype == np.float32
        # The oracle divides headings by their norm; the official code (and we) by norm + 1e-6, so
        # positions differ by at most 1e-6 of the path length: compare relative to the trajectory scale.
        scale = max(1.0, float(np.abs(ref).max()))
        err = float(np.abs(ours - ref).max()) / scale
        worst = max(worst, err)
        assert err < 1e-5, (action, speeds, err)
    assert worst > 0.0  # the epsilon difference is visible, so the comparison is not vacuous


def test_v1_demo_string_matches_diffusers_rotations_exactly():
    cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")
    action = "w-80,jw-40,w-40,lw-60,w-100"
    ours, ref = action_to_c2w(action), cam_utils.action_string_to_c2w(action)
    assert ours.shape == (321, 4, 4)
    np.testing.assert_allclose(ours[:, :3, :3], ref[:, :3, :3], atol=1e-7, rtol=0)
    np.testing.assert_allclose(ours[:, :3, 3], ref[:, :3, 3], atol=5e-5, rtol=0)


def test_mapping_defaults():
    v1, v2 = MAPPINGS["v1"], MAPPINGS["v2"]
    assert (v1.translation_speed, v1.rotation_speed_deg, v1.pitch_limit_deg) == (0.05, 1.2, 85.0)
    assert (v2.translation_speed, v2.rotation_speed_deg, v2.pitch_limit_deg) == (0.025, 0.6, 60.0)
    assert not v1.smooth and v2.smooth and not v1.saturating_pitch and v2.saturating_pitch
    assert v1.controls["a"] == "strafe_left" and v1.controls["j"] == "yaw_left"
    assert v2.controls["a"] == "yaw_left" and v2.controls["j"] == "strafe_left"


def test_v2_single_forward_frame_snaps_to_full_speed():
    c2w = action_to_c2w("w-1", mapping="v2")
    assert c2w.shape == (2, 4, 4)
    np.testing.assert_array_equal(c2w[0], np.eye(4, dtype=np.float32))
    np.testing.assert_allclose(c2w[1, :3, 3], [0.0, 0.0, 0.025 * STEP], atol=1e-9, rtol=0)
    np.testing.assert_allclose(c2w[1, :3, :3], np.eye(3), atol=0)


def test_v2_release_coasts_by_exp_minus_one_sixteenth():
    c2w = action_to_c2w("w-10,none-1", mapping="v2").astype(np.float64)
    step_z = np.diff(c2w[:, 2, 3])
    np.testing.assert_allclose(step_z[:10], 0.025 * STEP, rtol=1e-6)
    assert step_z[10] / step_z[9] == pytest.approx(math.exp(-1.0 / 16.0), rel=1e-5)
    assert step_z[10] == pytest.approx(0.025 * (1.0 - ALPHA_COAST) * STEP, rel=1e-5)


def test_v2_forward_then_coast_distance():
    c2w = action_to_c2w("w-80,none-40", mapping="v2").astype(np.float64)
    decay = math.exp(-1.0 / 16.0)
    coast = 0.025 * decay * (1.0 - decay**40) / (1.0 - decay)
    expected = (80 * 0.025 + coast) * STEP
    assert c2w[-1, 2, 3] == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(2.356, abs=5e-4)
    np.testing.assert_array_equal(c2w[:, 0, 3], 0.0)
    np.testing.assert_array_equal(c2w[:, 1, 3], 0.0)


def test_v2_pitch_saturates_at_sixty_degrees():
    c2w = action_to_c2w("i-200", mapping="v2").astype(np.float64)
    limit = math.radians(60.0)
    # Positive pitch looks up: the forward axis tilts toward -Y (OpenCV +Y is down).
    np.testing.assert_allclose(c2w[-1, :3, 2], [0.0, -math.sin(limit), math.cos(limit)], atol=1e-6)
    np.testing.assert_allclose(c2w[100, :3, 2], c2w[-1, :3, 2], atol=1e-6)
    np.testing.assert_allclose(c2w[50, :3, 2], [0.0, -math.sin(limit / 2), math.cos(limit / 2)], atol=1e-6)
    np.testing.assert_array_equal(c2w[:, :3, 3], 0.0)


def test_v2_yaw_keys_turn_point_six_degrees_per_frame():
    right = action_to_c2w("d-10", mapping="v2").astype(np.float64)
    angle = math.radians(6.0)
    np.testing.assert_allclose(right[-1, :3, 2], [math.sin(angle), 0.0, math.cos(angle)], atol=1e-6)
    left = action_to_c2w("a-10", mapping="v2").astype(np.float64)
    np.testing.assert_allclose(left[-1, :3, 2], [-math.sin(angle), 0.0, math.cos(angle)], atol=1e-6)
    np.testing.assert_array_equal(right[:, :3, 3], 0.0)


def test_v2_strafe_keys_and_snap_on_fresh_press():
    c2w = action_to_c2w("l-4", mapping="v2").astype(np.float64)
    np.testing.assert_allclose(c2w[-1, :3, 3], [4 * 0.025 * STEP, 0.0, 0.0], rtol=1e-6)
    # Adding j while w is held is a fresh press: strafe snaps to full speed in that very frame.
    pressed = action_to_c2w("w-10,wj-1", mapping="v2").astype(np.float64)
    np.testing.assert_allclose(
        pressed[11, :3, 3] - pressed[10, :3, 3], [-0.025 * STEP, 0, 0.025 * STEP], rtol=1e-6
    )
    # Releasing j while w stays held is not a fresh press: strafe coasts, forward stays at speed.
    released = action_to_c2w("wj-10,w-1", mapping="v2").astype(np.float64)
    expected = [-0.025 * (1.0 - ALPHA_COAST) * STEP, 0.0, 0.025 * STEP]
    np.testing.assert_allclose(released[11, :3, 3] - released[10, :3, 3], expected, rtol=1e-5)


def test_v1_keys_and_speeds():
    c2w = action_to_c2w("d-3", mapping="v1").astype(np.float64)
    np.testing.assert_allclose(c2w[-1, :3, 3], [3 * 0.05 * STEP, 0.0, 0.0], rtol=1e-6)
    yaw = action_to_c2w("j-10", mapping="v1").astype(np.float64)
    angle = math.radians(12.0)
    np.testing.assert_allclose(yaw[-1, :3, 2], [-math.sin(angle), 0.0, math.cos(angle)], atol=1e-6)
    # v1 has no inertia: releasing w stops the camera at once.
    stop = action_to_c2w("w-5,none-5", mapping="v1")
    np.testing.assert_array_equal(stop[5:], np.repeat(stop[5:6], 6, axis=0))


def test_pitch_limit_reject_v1_versus_saturate_v2():
    v1 = action_to_c2w("i-5", mapping="v1", rotation_speed_deg=1.2, pitch_limit_deg=2.0).astype(np.float64)
    v2 = action_to_c2w("i-5", mapping="v2", rotation_speed_deg=1.2, pitch_limit_deg=2.0).astype(np.float64)
    # v1: the second step would reach 2.4 > 2 deg and is dropped (as are all later ones).
    a1, a2 = math.radians(1.2), math.radians(2.0)
    np.testing.assert_allclose(v1[-1, :3, 2], [0.0, -math.sin(a1), math.cos(a1)], atol=1e-7)
    np.testing.assert_allclose(v2[-1, :3, 2], [0.0, -math.sin(a2), math.cos(a2)], atol=1e-7)


def test_height_constant_and_rotations_orthonormal_on_random_v2_actions():
    rng = np.random.default_rng(1)
    for _ in range(10):
        c2w = action_to_c2w(_random_action(rng), mapping="v2", rotation_speed_deg=3.0).astype(np.float64)
        np.testing.assert_array_equal(c2w[:, 1, 3], 0.0)
        rotation = c2w[:, :3, :3]
        np.testing.assert_allclose(
            np.swapaxes(rotation, 1, 2) @ rotation, np.broadcast_to(np.eye(3), rotation.shape), atol=1e-6
        )
        np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-6)


@pytest.mark.parametrize("mapping", ["v1", "v2"])
def test_opposite_keys_cancel(mapping):
    c2w = action_to_c2w("ws-5,ad-5,ik-5,jl-5,wasdijkl-5", mapping=mapping)
    np.testing.assert_array_equal(c2w, np.broadcast_to(np.eye(4, dtype=np.float32), c2w.shape))


def test_v2_continuing_segment_equals_one_long_segment():
    np.testing.assert_array_equal(
        action_to_c2w("wj-7,jw-9", mapping="v2"), action_to_c2w("jw-16", mapping="v2")
    )


def test_grammar_normalisation():
    assert parse_action("w-2") == [frozenset("w")] * 2
    expected = [frozenset("wj")] * 3 + [frozenset()] + [frozenset("lw")]
    assert parse_action(" W J - 3 ，NoNe-1,\tlw-1\n") == expected
    assert parse_action("-2,none-1") == [frozenset()] * 3
    assert parse_action("wwjw-1") == [frozenset("wj")]
    assert parse_action("w-007") == [frozenset("w")] * 7
    assert len(action_to_c2w("w-80,jw-40,w-40,lw-60,w-100")) == 321


@pytest.mark.parametrize(
    ("action", "fragments"),
    [
        ("", ["--action:", "empty"]),
        (" ,", ["--action:", "segment 1 ''", "empty"]),
        ("w-5,w5", ["--action:", "segment 2 'w5'", "no '-'"]),
        ("w-5,w-x", ["segment 2 'w-x'", "duration 'x'"]),
        ("w-1.5", ["segment 1 'w-1.5'", "duration '1.5'"]),
        ("w-", ["segment 1 'w-'", "duration nothing"]),
        ("w-5,s-0", ["segment 2 's-0'", "duration 0"]),
        ("w-٣", ["segment 1 'w-٣'", "duration '٣'"]),
        ("w-1,w-1,wq-1", ["segment 3 'wq-1'", "unknown key(s) 'q'"]),
        ("zxw-1", ["segment 1 'zxw-1'", "'x' 'z'"]),
        ("w--3", ["segment 1 'w--3'", "unknown key(s) '-'"]),
        ("w-5,,w-5", ["segment 2 ''", "empty"]),
        ("w-5,", ["segment 2 ''", "empty"]),
    ],
)
def test_bad_actions_name_segment_and_position(action, fragments):
    with pytest.raises(InputError) as info:
        parse_action(action)
    message = str(info.value)
    assert message.startswith("--action: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"mapping": "v3"}, "--action_mapping"),
        ({"translation_speed": -0.1}, "--translation_speed"),
        ({"translation_speed": float("nan")}, "--translation_speed"),
        ({"rotation_speed_deg": float("inf")}, "--rotation_speed_deg"),
        ({"pitch_limit_deg": -1.0}, "--pitch_limit_deg"),
    ],
)
def test_bad_mapping_and_speeds(kwargs, flag):
    with pytest.raises(InputError, match=f"^{flag}: "):
        action_to_c2w("w-3", **kwargs)


def test_zero_speeds_are_allowed():
    c2w = action_to_c2w("wl-4", translation_speed=0.0, rotation_speed_deg=0.0)
    np.testing.assert_array_equal(c2w, np.broadcast_to(np.eye(4, dtype=np.float32), c2w.shape))


@pytest.mark.parametrize("action", ["w-100001", "w-99999999999999999999", "w-60000,s-60000"])
def test_absurd_lengths_are_rejected_before_allocating(action: str) -> None:
    with pytest.raises(InputError, match="at most 100000 frames"):
        parse_action(action)
