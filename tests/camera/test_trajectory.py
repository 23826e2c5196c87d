"""Frame-count snapping to 8k + 1, trajectory alignment and latent frame counts."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from sana_wm.camera import align_num_frames, latent_frames, snap_num_frames


def test_snap_matches_diffusers_exhaustively():
    cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")
    rng = np.random.default_rng(0)
    for n in range(-3, 400):
        for stride in (8, 24):
            bounds = [None, max(1, n), int(rng.integers(1, 500))]
            for bound in bounds:
                expected = cam_utils.snap_num_frames(n, stride, upper_bound=bound)
                assert snap_num_frames(n, stride, upper_bound=bound) == expected, (n, stride, bound)


@pytest.mark.parametrize(
    ("n", "stride", "bound", "expected"),
    [
        (161, 8, None, 161),
        (160, 8, None, 161),
        (157, 8, None, 161),  # tie between 153 and 161 goes up
        (156, 8, None, 153),
        (320, 8, 320, 313),  # 321 would exceed the trajectory
        (0, 8, None, 1),
        (-7, 8, None, 1),
        (5, 8, 4, 1),
        (241, 24, None, 241),
        (253, 24, None, 265),  # tie between 241 and 265 goes up
    ],
)
def test_snap_golden(n, stride, bound, expected):
    assert snap_num_frames(n, stride, upper_bound=bound) == expected


def test_align_num_frames_and_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="sana_wm.camera.trajectory"):
        assert align_num_frames(161, 321) == 161
        assert align_num_frames(321, 321) == 321
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="sana_wm.camera.trajectory"):
        assert align_num_frames(200, 321) == 201
        assert align_num_frames(161, 100) == 97
        assert align_num_frames(5, 3) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert "using 201 frames instead of 200" in messages[0] and "--num_frames" in messages[0]
    assert "using 97 frames instead of 161" in messages[1] and "100 poses" in messages[1]


def test_latent_frames_golden():
    assert [latent_frames(n) for n in (1, 9, 161, 241, 321, 961)] == [1, 2, 21, 31, 41, 121]
