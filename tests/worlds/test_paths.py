import dataclasses
import math

import numpy as np
import pytest

from sana_wm.camera import action_to_c2w, fov_deg, parse_action
from sana_wm.errors import InputError
from sana_wm.worlds import ClipSettings, caption, make_clip, random_action, random_path
from sana_wm.worlds.captions import prominence
from sana_wm.worlds.paths import HFOV_RANGE_DEG, ROTATION_SPEED_RANGE_DEG, TRANSLATION_SPEED_RANGE
from sana_wm.worlds.random_world import CLEARANCE_M, EYE_HEIGHT_RANGE_M


def _surface_distance(world, p_P3: np.ndarray) -> np.ndarray:
    """Exact 3-D distance from each point to the nearest object surface (negative inside), by hand."""
    d = [np.full(len(p_P3), np.inf)]
    for cx, cy, cz, hx, hy, hz, yaw in world.boxes_N7.astype(np.float64):
        r = p_P3 - (cx, cy, cz)
        c, s = math.cos(yaw), math.sin(yaw)
        q = np.abs(np.stack([c * r[:, 0] - s * r[:, 2], r[:, 1], s * r[:, 0] + c * r[:, 2]], 1)) - (
            hx,
            hy,
            hz,
        )
        d.append(np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0.0))
    for cx, cz, radius, y0, y1 in world.cylinders_N5.astype(np.float64):
        radial = np.hypot(p_P3[:, 0] - cx, p_P3[:, 2] - cz) - radius
        vertical = np.maximum(y0 - p_P3[:, 1], p_P3[:, 1] - y1)
        outside = np.hypot(np.maximum(radial, 0), np.maximum(vertical, 0))
        d.append(outside + np.minimum(np.maximum(radial, vertical), 0.0))
    for cx, cy, cz, radius in world.spheres_N4.astype(np.float64):
        d.append(np.linalg.norm(p_P3 - (cx, cy, cz), axis=1) - radius)
    return np.min(d, axis=0)


def test_cameras_never_start_or_pass_inside_geometry_across_many_seeds() -> None:
    closest, objects, seeds = math.inf, 0, 150
    for seed in range(seeds):
        clip = make_clip(ClipSettings(num_frames=81, height=64, width=96, seed=seed), 0)
        world, c2w = clip.world, clip.path.c2w_F44.astype(np.float64)
        objects += world.num_objects
        closest = min(closest, _surface_distance(world, c2w[:, :3, 3]).min())
        assert (world.ground_y - c2w[:, 1, 3]).min() >= EYE_HEIGHT_RANGE_M[0] - 1e-5
    assert closest >= CLEARANCE_M - 1e-4
    assert objects / seeds > 8  # placement rarely gives up: the worlds are not empty


def test_action_paths_replay_exactly_and_respect_the_ranges() -> None:
    mappings = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        path = random_path(rng, 41, 64, 96, trajectory="actions")
        mappings.add(path.mapping)
        assert len(parse_action(path.action)) == 40
        replay = action_to_c2w(
            path.action,
            mapping=path.mapping,
            translation_speed=path.translation_speed,
            rotation_speed_deg=path.rotation_speed_deg,
        )
        np.testing.assert_array_equal(path.c2w_F44, replay)
        assert TRANSLATION_SPEED_RANGE[0] <= path.translation_speed <= TRANSLATION_SPEED_RANGE[1]
        assert ROTATION_SPEED_RANGE_DEG[0] <= path.rotation_speed_deg <= ROTATION_SPEED_RANGE_DEG[1]
        assert HFOV_RANGE_DEG[0] <= fov_deg(path.intrinsics_F4[0, 0], 96) <= HFOV_RANGE_DEG[1]
        np.testing.assert_array_equal(path.intrinsics_F4[:, 2:], np.tile([48.0, 32.0], (41, 1)))
        steps = np.linalg.norm(np.diff(path.c2w_F44[:, :3, 3], axis=0), axis=1)
        assert steps.max() <= math.sqrt(2) * path.translation_speed + 1e-6  # forward + strafe at most
    assert mappings == {"v1", "v2"}


def test_random_actions_mean_the_same_controls_in_both_mappings() -> None:
    v1 = random_action(np.random.default_rng(3), 200, "v1")
    v2 = random_action(np.random.default_rng(3), 200, "v2")
    swap = str.maketrans("adjl", "jlad")  # v1 a/d strafe + j/l yaw == v2 j/l strafe + a/d yaw
    assert [sorted(k) for k in parse_action(v1)] == [
        sorted("".join(k).translate(swap)) for k in parse_action(v2)
    ]


def test_smooth_paths_are_rigid_smooth_and_bounded() -> None:
    for seed in range(20):
        path = random_path(np.random.default_rng(seed), 65, 64, 96, trajectory="smooth")
        c2w = path.c2w_F44.astype(np.float64)
        rotation = c2w[:, :3, :3]
        np.testing.assert_allclose(
            np.swapaxes(rotation, 1, 2) @ rotation, np.broadcast_to(np.eye(3), rotation.shape), atol=1e-6
        )
        np.testing.assert_array_equal(c2w[0, :3, 3], 0.0)
        assert np.abs(c2w[:, 1, 3]).max() <= 2 * 0.15 + 1e-6  # height bob
        steps = np.linalg.norm(np.diff(c2w[:, [0, 2], 3], axis=0), axis=1)
        assert steps.max() <= 1.35 * TRANSLATION_SPEED_RANGE[1] + 1e-6
        forward = c2w[:, :3, 2]
        turn = np.degrees(np.arccos(np.clip((forward[1:] * forward[:-1]).sum(axis=1), -1, 1)))
        assert turn.max() <= ROTATION_SPEED_RANGE_DEG[1] + 0.5  # yaw rate plus the slow pitch wave


def test_captions_name_the_ground_sky_and_the_objects_that_stand_out() -> None:
    for index in range(8):
        clip = make_clip(ClipSettings(num_frames=9, height=64, width=96, seed=5), index)
        world, names = clip.world, clip.world.materials.names
        assert world.sky_name in clip.prompt
        assert names[world.ground_material] + " ground" in clip.prompt
        # The object with the largest size over distance from the first camera is always named, with the
        # number of objects of its kind and material.
        kind, material = world.labels[int(np.argmax(prominence(world)))]
        count = world.labels.count((kind, material))
        number = ("a", "two", "three", "four", "five", "six")[count - 1] if count < 7 else "many"
        assert f"{number} {names[material]} {kind}" in clip.prompt.replace("an ", "a ")
    overcast = dataclasses.replace(clip.world, sky_name="overcast grey sky")
    for seed in range(6):  # every template
        text = caption(overcast, np.random.default_rng(seed))
        assert "n overcast grey sky" in text and "a overcast" not in text.lower()
        assert text.endswith("soft overcast light.")


def test_bad_choices_are_input_errors() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="^--trajectory:"):
        random_path(rng, 9, 64, 96, trajectory="spiral")
    with pytest.raises(InputError, match="^--mapping:"):
        random_path(rng, 9, 64, 96, trajectory="actions", mapping="v3")
