"""Intrinsics: accepted shapes and time fitting, FOV gate, crop and latent maps, EXIF and default fallback."""

from __future__ import annotations

import importlib.util
import logging
import math

import numpy as np
import pytest
from PIL import ExifTags, Image

from sana_wm.camera import (
    check_fov,
    default_intrinsics,
    estimate_intrinsics,
    fit_intrinsics,
    fov_deg,
    intrinsics_from_exif,
    latent_intrinsics,
    load_intrinsics,
    transform_intrinsics_for_crop,
)
from sana_wm.camera.intrinsics import pi3x_input_size
from sana_wm.errors import InputError
from sana_wm.utils.image import crop_info, load_image

VEC = np.array([800.0, 810.0, 845.0, 464.0])


def as_k(vec: np.ndarray) -> np.ndarray:
    fx, fy, cx, cy = vec
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def test_single_camera_shapes_broadcast():
    expected = np.tile(VEC, (5, 1)).astype(np.float32)
    for array in (VEC, as_k(VEC), VEC[None], as_k(VEC)[None]):
        fitted = fit_intrinsics(array, 5)
        assert fitted.dtype == np.float32
        np.testing.assert_array_equal(fitted, expected)


def test_per_frame_copy_truncate_and_interpolate():
    per_frame = np.stack([VEC + i for i in range(6)])
    np.testing.assert_array_equal(fit_intrinsics(per_frame, 6), per_frame.astype(np.float32))
    np.testing.assert_array_equal(fit_intrinsics(per_frame, 4), per_frame[:4].astype(np.float32))
    three = np.array([[100.0, 100, 50, 40], [200, 300, 50, 40], [400, 500, 60, 40]])
    expected = np.array(
        [[100, 100, 50, 40], [150, 200, 50, 40], [200, 300, 50, 40], [300, 400, 55, 40], [400, 500, 60, 40]],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(fit_intrinsics(three, 5), expected)
    np.testing.assert_array_equal(fit_intrinsics(np.stack([as_k(v) for v in three]), 5), expected)
    two = fit_intrinsics(np.array([[100.0, 100, 50, 40], [110, 100, 50, 40]]), 11)
    np.testing.assert_allclose(two[:, 0], np.arange(100, 111), rtol=1e-6)


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.ones(5), "unsupported shape (5,)"),
        (np.ones((2, 2)), "unsupported shape (2, 2)"),
        (np.ones((4, 5)), "unsupported shape (4, 5)"),
        (np.ones((3, 3, 4)), "unsupported shape (3, 3, 4)"),
        (np.ones((0, 4)), "unsupported shape (0, 4)"),
        (np.array([800.0, np.nan, 1, 1]), "NaN or infinity"),
        (np.array([[800.0, 800, np.inf, 1]]), "NaN or infinity"),
        (np.array([[800.0, 800, 1, 1], [800, 0, 1, 1]]), "frame 1 has fx=800, fy=0"),
        (as_k(np.array([-5.0, 800, 1, 1])), "frame 0 has fx=-5"),
    ],
)
def test_bad_intrinsics(array, fragment):
    with pytest.raises(InputError) as info:
        fit_intrinsics(array, 3)
    message = str(info.value)
    assert message.startswith("--intrinsics: ") and "\n" not in message and fragment in message, message


def test_fov_gate_uses_original_size():
    assert fov_deg(500.0, 1000.0) == pytest.approx(90.0)
    hw = (720, 1280)
    check_fov(np.array([640.0 / math.tan(math.radians(59.9)), 400.0, 640, 360]), hw)
    with pytest.raises(
        InputError, match=r"^--intrinsics: frame 0 horizontal FOV 120\.2 deg is outside 25-120 deg"
    ):
        check_fov(np.array([640.0 / math.tan(math.radians(60.1)), 400.0, 640, 360]), hw)
    narrow = 640.0 / math.tan(math.radians(12.0))
    with pytest.raises(InputError, match=r"horizontal FOV 24\.0 deg is outside 25-120 deg"):
        check_fov(np.array([[800.0, 800, 640, 360], [narrow, 800, 640, 360]]), hw)
    with pytest.raises(InputError, match=r"vertical FOV 15\.2 deg"):
        check_fov(np.array([800.0, 2700.0, 640, 360]), hw)


def test_load_intrinsics_file(tmp_path):
    path = tmp_path / "k.npy"
    np.save(path, as_k(VEC).astype(np.float32))
    np.testing.assert_array_equal(
        load_intrinsics(path, 3, image_hw=(927, 1688)), np.tile(VEC, (3, 1)).astype(np.float32)
    )
    with pytest.raises(InputError, match=r"^--intrinsics: frame 0 horizontal FOV 130\.9 deg"):
        load_intrinsics(path, 3, image_hw=(927, 3500))
    with pytest.raises(InputError, match="^--intrinsics: file not found"):
        load_intrinsics(tmp_path / "nope.npy", 3)


def test_crop_transform_matches_diffusers():
    cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")
    rng = np.random.default_rng(0)
    for _ in range(200):
        src_h, src_w = (int(v) for v in rng.integers(32, 4000, size=2))
        crop = crop_info((src_h, src_w))
        intrinsics = rng.uniform([100, 100, 0, 0], [3000, 3000, src_w, src_h], size=(3, 4)).astype(np.float32)
        ref = cam_utils.transform_intrinsics_for_crop(
            intrinsics, (src_w, src_h), (crop.resized_width, crop.resized_height), (crop.left, crop.top)
        )
        ours = transform_intrinsics_for_crop(intrinsics, crop)
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-3)


def test_crop_transform_and_latent_golden():
    crop = crop_info((1080, 1920))
    out = transform_intrinsics_for_crop(np.array([1000.0, 1000.0, 960.0, 540.0]), crop)
    np.testing.assert_allclose(out, [2000 / 3, 2000 / 3, 640.0, 352.0], rtol=1e-12)
    latent = latent_intrinsics(np.array([[1280.0, 704.0, 640.0, 352.0]]))
    np.testing.assert_array_equal(latent, [[40.0, 22.0, 20.0, 11.0]])


def _jpeg_with_focal(path, size, f35=None) -> None:
    exif = Image.Exif()
    if f35 is not None:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.FocalLengthIn35mmFilm] = f35
    Image.new("RGB", size, (90, 120, 150)).save(path, exif=exif)


def test_exif_35mm_focal_length(tmp_path, caplog):
    _jpeg_with_focal(tmp_path / "land.jpg", (400, 300), f35=26)
    image = load_image(tmp_path / "land.jpg")
    focal = 26 * 400 / 36
    np.testing.assert_allclose(intrinsics_from_exif(image), [focal, focal, 200, 150], rtol=1e-6)
    with caplog.at_level(logging.WARNING):
        vec, source = estimate_intrinsics(image, allow_pi3x=False)
    assert source == "exif" and not caplog.records
    assert fov_deg(vec[0], 400) == pytest.approx(math.degrees(2 * math.atan(36 / 52)), rel=1e-6)  # 69.4 deg
    _jpeg_with_focal(tmp_path / "portrait.jpg", (300, 400), f35=26)
    vec, source = estimate_intrinsics(load_image(tmp_path / "portrait.jpg"), allow_pi3x=False)
    assert source == "exif"
    # 36 mm spans the long side, which is the vertical one here.
    np.testing.assert_allclose(vec, [focal, focal, 150, 200], rtol=1e-6)


def test_default_fov_fallback_and_warning(tmp_path, caplog):
    for name, f35 in (("none.jpg", None), ("zero.jpg", 0), ("tele.jpg", 400)):
        _jpeg_with_focal(tmp_path / name, (400, 300), f35=f35)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sana_wm.camera.intrinsics"):
            vec, source = estimate_intrinsics(load_image(tmp_path / name), allow_pi3x=False)
        assert source == "default"
        focal = 200 / math.tan(math.radians(30))
        np.testing.assert_allclose(vec, [focal, focal, 200, 150])
        text = " ".join(record.getMessage() for record in caplog.records)
        assert "--intrinsics" in text and "60 deg horizontal" in text
        if f35 == 400:
            assert "ignoring the EXIF 35 mm focal length" in text
    np.testing.assert_allclose(fov_deg(default_intrinsics((704, 1280))[0], 1280), 60.0)


def test_pi3x_is_optional():
    if importlib.util.find_spec("pi3") is not None:
        pytest.skip("pi3 is installed; this checks the fallback without it")
    _, source = estimate_intrinsics(Image.new("RGB", (64, 48)), allow_pi3x=True)
    assert source == "default"


def test_pi3x_input_size_golden():
    assert pi3x_input_size(1280, 720) == (672, 378)
    assert pi3x_input_size(100, 75) == (574, 434)  # rounding gives 588 x 434 > 255,000 px, so k drops by one
    for width, height in ((1688, 927), (4000, 3000), (300, 4000)):
        w, h = pi3x_input_size(width, height)
        assert w % 14 == 0 and h % 14 == 0 and w * h <= 255_000


def test_skewed_k_and_a_principal_point_outside_the_image_are_refused() -> None:
    from sana_wm.camera.intrinsics import check_fov, fit_intrinsics

    skewed = np.array([[500.0, 3.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
    with pytest.raises(InputError, match=r"frame 0 K is not \[\[fx, 0, cx\]"):
        fit_intrinsics(skewed, 9)
    far = fit_intrinsics(np.array([500.0, 500.0, -1e6, 240.0]), 9)
    with pytest.raises(InputError, match="principal point cx=-1e\\+06 lies outside 0-640 px"):
        check_fov(far, (480, 640))
    check_fov(fit_intrinsics(np.array([500.0, 500.0, 320.0, 240.0]), 9), (480, 640))
