"""First-frame loading and the resize + centre crop (sana_wm.utils.image), against the diffusers oracle."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ExifTags, Image

from sana_wm.errors import InputError
from sana_wm.utils.image import CropInfo, crop_info, load_image, resize_and_center_crop


def test_crop_matches_diffusers_pixel_for_pixel():
    cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")
    rng = np.random.default_rng(0)
    sizes = [((int(h), int(w)), (48, 80)) for h, w in rng.integers(8, 300, size=(60, 2))]
    sizes += [((1080, 1920), (704, 1280)), ((927, 1688), (704, 1280)), ((1200, 900), (704, 1280))]
    for (src_h, src_w), (height, width) in sizes:
        pixels = rng.integers(0, 256, size=(src_h, src_w, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        cropped, info = resize_and_center_crop(image, height, width)
        ref_image, ref_src, ref_resized, ref_offset = cam_utils.resize_and_center_crop(image, height, width)
        assert cropped.size == (width, height)
        assert ref_src == (info.src_width, info.src_height)
        assert ref_resized == (info.resized_width, info.resized_height)
        assert ref_offset == (info.left, info.top)
        np.testing.assert_array_equal(np.asarray(cropped), np.asarray(ref_image))


def test_crop_info_golden():
    assert crop_info((1080, 1920)) == CropInfo(1080, 1920, 720, 1280, 8, 0, 704, 1280)
    tall = crop_info((1200, 900))  # scale = 1280 / 900; resized 1280 x 1707, crop rows 501..1204
    assert (tall.resized_width, tall.resized_height, tall.left, tall.top) == (1280, 1707, 0, 501)
    assert tall.sx == pytest.approx(1280 / 900) and tall.sy == pytest.approx(1707 / 1200)


def test_load_image_rgb_and_orientation(tmp_path):
    Image.new("RGBA", (30, 20), (10, 20, 30, 128)).save(tmp_path / "alpha.png")
    image = load_image(tmp_path / "alpha.png")
    assert image.mode == "RGB" and image.size == (30, 20)
    assert image.getpixel((0, 0)) == (10, 20, 30)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored sideways: display needs a 90 degree turn
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.FocalLengthIn35mmFilm] = 28
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "rotated.jpg", exif=exif)
    upright = load_image(tmp_path / "rotated.jpg")
    assert upright.size == (30, 40)
    assert upright.getexif().get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.FocalLengthIn35mmFilm] == 28


def test_load_image_errors(tmp_path):
    with pytest.raises(InputError, match=r"^--image: file not found: "):
        load_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(InputError, match=r"^--image: cannot read .*junk\.png") as info:
        load_image(tmp_path / "junk.png")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=r"^--image: file not found: "):
        load_image(tmp_path)


def test_high_bit_depth_images_keep_their_gradient(tmp_path) -> None:
    """PIL's own conversion clips 16-bit and float pixels (a 16-bit gradient became 99 % white)."""
    ramp16 = np.linspace(0, 65535, 256)[None].repeat(64, 0).astype(np.uint16)
    Image.fromarray(ramp16).save(tmp_path / "g16.png")
    ramp_f = np.linspace(0, 1, 256, dtype=np.float32)[None].repeat(64, 0)
    Image.fromarray(ramp_f).save(tmp_path / "f.tiff")
    want = np.round(np.linspace(0, 255, 256)).astype(np.uint8)
    for name in ("g16.png", "f.tiff"):
        got = np.asarray(load_image(tmp_path / name))
        assert got.shape == (64, 256, 3) and got.dtype == np.uint8
        assert np.abs(got[0, :, 0].astype(int) - want).max() <= 1
    nan = ramp_f.copy()
    nan[0, 0] = np.nan
    Image.fromarray(nan).save(tmp_path / "nan.tiff")
    with pytest.raises(InputError, match="NaN or infinite"):
        load_image(tmp_path / "nan.tiff")


def test_unusable_shapes_are_refused_from_the_header(tmp_path) -> None:
    Image.new("RGB", (8000, 1)).save(tmp_path / "thin.png")
    Image.new("RGB", (900, 100)).save(tmp_path / "wide.png")
    with pytest.raises(
        InputError, match=r"^--image: '.*thin.png' is 8000x1 pixels; each side needs at least 8$"
    ):
        load_image(tmp_path / "thin.png")
    with pytest.raises(InputError, match="at most 8x the shorter"):
        load_image(tmp_path / "wide.png")
