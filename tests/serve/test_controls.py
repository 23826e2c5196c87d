"""Key states → poses: a session driven by keys gets exactly the action string's poses (both mappings)."""

from __future__ import annotations

import numpy as np
import pytest

from sana_wm.camera import action_to_c2w
from sana_wm.errors import InputError
from sana_wm.serve.controls import LiveCamera, check_poses, key_letters, pose_summary


@pytest.mark.parametrize("mapping", ["v1", "v2"])
def test_chunks_of_key_states_give_the_action_strings_poses(mapping: str) -> None:
    # Four chunks as serve samples them (the first: 24 poses after pose 0, then 24 each): nothing, W, W+L,
    # arrow-up + arrow-right (pitch up and strafe right, whatever the mapping's letters for them are).
    chunks = [[], ["w"], ["w", "l"], ["up", "right"]]
    camera = LiveCamera(mapping)
    for seq, keys in enumerate(chunks):
        camera.next_poses(24, key_letters(keys, mapping), seq)
    strafe_right = "d" if mapping == "v1" else "l"
    expected = action_to_c2w(f"none-24,w-24,wl-24,i{strafe_right}-24", mapping=mapping)
    ours = np.stack(camera.c2w_F44).astype(np.float32)
    assert ours.shape == (97, 4, 4)
    np.testing.assert_array_equal(ours, expected)
    assert camera.keys_seq_F == [-1] + [0] * 24 + [1] * 24 + [2] * 24 + [3] * 24


def test_pose_moves_forward_then_yaws_right_under_v1() -> None:
    camera = LiveCamera("v1")
    camera.next_poses(24, key_letters(["w"], "v1"), 1)
    forward = pose_summary(camera.c2w_F44[-1])
    camera.next_poses(24, key_letters(["l"], "v1"), 2)
    turned = pose_summary(camera.c2w_F44[-1])
    assert forward["position"] == pytest.approx([0, 0, 24 * 0.05], abs=1e-4)  # +Z is forward
    assert forward["yaw_deg"] == 0
    assert turned["yaw_deg"] == pytest.approx(24 * 1.2, abs=1e-3)  # L turns right: yaw > 0
    assert turned["position"] == forward["position"]


def test_v2_smoothing_coasts_after_release_and_comes_to_rest() -> None:
    camera = LiveCamera("v2")
    camera.next_poses(24, frozenset("w"), 1)
    assert not camera.at_rest()
    camera.next_poses(24, frozenset(), 2)  # coasting: exp(-24 / 16) of the speed is left
    speed = camera.rollout.velocity_4[0]
    assert speed == pytest.approx(0.025 * (1 - (1 - np.exp(-1 / 16))) ** 24, rel=1e-6)
    assert not camera.at_rest(0.05) and camera.at_rest(0.3)


def test_queued_camera_poses_come_first_then_keys_continue_from_the_last() -> None:
    camera = LiveCamera("v1")
    given = action_to_c2w("l-10,w-5", mapping="v1")[1:].astype(np.float64)
    camera.queue_poses(check_poses(given.tolist(), max_poses=100))
    poses = camera.next_poses(24, frozenset("w"), 7)
    np.testing.assert_allclose(poses[:15], given, atol=1e-12)
    expected = action_to_c2w("l-10,w-14", mapping="v1")  # the keys pick up from the queued path's end
    np.testing.assert_allclose(poses[15:], expected[16:], atol=1e-5)
    assert camera.keys_seq_F[1:16] == [-1] * 15 and camera.keys_seq_F[16:] == [7] * 9
    # The HUD of given poses follows their motion: turning right (stick +1), then W.
    np.testing.assert_allclose(camera.hud_F6[5], [0, 0, 0, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(camera.hud_F6[13], [1, 0, 0, 0, 0, 0], atol=1e-6)


@pytest.mark.parametrize(
    ("c2w", "message"),
    [
        ("x", "4x4 number"),
        ([[[1, 0], [0, 1]]], "shape"),
        ([np.eye(4).tolist()] * 101, "shape"),
        ([[[float("nan")] * 4] * 4], "finite"),
        ([(np.eye(4) * 2).tolist()], "orthonormal"),
        ([np.diag([1, 1, -1, 1]).tolist()], "rigid"),
        ([[[1, 0, 0, 1e9], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]], "within"),
    ],
)
def test_bad_camera_poses_are_refused(c2w: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_poses(c2w, max_poses=100)


def test_key_names() -> None:
    assert key_letters(["W", "ArrowUp", "left"], "v1") == frozenset("wia")
    assert key_letters(["left", "right"], "v2") == frozenset("jl")
    with pytest.raises(InputError, match="unknown key"):
        key_letters(["q"], "v1")
