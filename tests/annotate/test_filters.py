"""Filter decisions on constructed clips and trajectories."""

import numpy as np

from sana_wm.annotate.filters import (
    FilterSettings,
    camera_reasons,
    cheap_reasons,
    content_score,
    frame_stats,
    pose_jumps,
)

S = FilterSettings()


def _texture(seed, height=180, width=320):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)


def _panning(num=33, shift=2, seed=0):
    wide = _texture(seed, 180, 320 + shift * num)
    return np.stack([wide[:, f * shift : f * shift + 320] for f in range(num)])


def test_scene_cut_score_separates_a_cut_from_motion() -> None:
    clip = _panning()
    assert content_score(clip[0], clip[0]) == 0.0
    assert content_score(clip[0], clip[1]) < S.cut_threshold
    assert content_score(clip[0], _texture(7)) > S.cut_threshold


def test_cheap_filters_keep_motion_and_drop_dark_static_and_wild_clips() -> None:
    moving = frame_stats(_panning(shift=2))
    assert 10 < moving["flow_dis"] < 24  # 16 px per 8 frames, DIS on a blocky texture
    assert cheap_reasons(moving, S) == []
    still = frame_stats(np.repeat(_texture(1)[None], 33, axis=0))
    assert still["change"] == 0.0 and cheap_reasons(still, S)[0].startswith("static")
    dark = frame_stats((_panning() // 16).astype(np.uint8))
    assert any(r.startswith("too dark") for r in cheap_reasons(dark, S))
    wild = {"flow_dis": 90.0, "luma": 100.0, "change": 30.0, "saturation": 50.0}
    assert cheap_reasons(wild, S) == ["too much motion (flow 90.0 px > 60)"]


def _walk(num=40):
    c2w = np.repeat(np.eye(4)[None], num, axis=0)
    c2w[:, 2, 3] = 0.05 * np.arange(num)
    return c2w


def test_pose_jumps_flag_a_teleport_and_a_whip_pan() -> None:
    assert pose_jumps(_walk(), S)["jumps"] == 0
    teleport = _walk()
    teleport[25:, 0, 3] += 1.0
    assert pose_jumps(teleport, S)["jumps"] == 1
    whip = _walk()
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    whip[30:, :3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    result = pose_jumps(whip, S)
    assert result["jumps"] == 1 and abs(result["max_rot_step_deg"] - 20) < 1e-6


def test_camera_reasons_name_each_failed_check() -> None:
    ok = dict(
        fov_deg=(70.0, 42.0),
        reproj_error_px=0.5,
        registered_fraction=1.0,
        jumps={"jumps": 0, "max_step_ratio": 1.0, "max_rot_step_deg": 0.5},
        scale_dispersion=0.02,
        scale_cv=0.03,
        settings=S,
    )
    assert camera_reasons(**ok) == []
    bad = camera_reasons(
        **{
            **ok,
            "fov_deg": (130.0, 20.0),
            "reproj_error_px": 3.0,
            "registered_fraction": 0.5,
            "scale_dispersion": 0.4,
        }
    )
    assert [r.split(" ")[0] for r in bad] == [
        "horizontal",
        "vertical",
        "reprojection",
        "registered",
        "unstable",
    ]
