"""First-frame image loading and the resize + centre crop to the model's 704 x 1280 canvas."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from sana_wm.errors import InputError

MODEL_HEIGHT = 704
MODEL_WIDTH = 1280


@dataclass(frozen=True)
class CropInfo:
    """How a source image maps onto the cropped canvas: ``x_crop = x_src * sx - left`` (same for y).

    Attributes:
        src_height, src_width: source image size in pixels.
        resized_height, resized_width: size after the aspect-preserving resize (before cropping).
        top, left: crop offset inside the resized image, in pixels.
        height, width: output canvas size.
    """

    src_height: int
    src_width: int
    resized_height: int
    resized_width: int
    top: int
    left: int
    height: int
    width: int

    @property
    def sx(self) -> float:
        return self.resized_width / self.src_width

    @property
    def sy(self) -> float:
        return self.resized_height / self.src_height


def crop_info(src_hw: tuple[int, int], height: int = MODEL_HEIGHT, width: int = MODEL_WIDTH) -> CropInfo:
    """Geometry of the official resize + centre crop of a ``src_hw`` image onto ``height`` x ``width``.

    ``scale = max(height / h, width / w)``; the resized size is ``max(width, round(w * scale))`` by
    ``max(height, round(h * scale))`` (the ``max`` guards against rounding one pixel short), and the crop is
    centred with ``left = (rw - width) // 2`` and ``top = (rh - height) // 2``.
    """
    src_h, src_w = int(src_hw[0]), int(src_hw[1])
    scale = max(height / src_h, width / src_w)
    resized_w = max(width, round(src_w * scale))
    resized_h = max(height, round(src_h * scale))
    return CropInfo(
        src_height=src_h,
        src_width=src_w,
        resized_height=resized_h,
        resized_width=resized_w,
        top=(resized_h - height) // 2,
        left=(resized_w - width) // 2,
        height=height,
        width=width,
    )


def resize_and_center_crop(
    image: Image.Image, height: int = MODEL_HEIGHT, width: int = MODEL_WIDTH
) -> tuple[Image.Image, CropInfo]:
    """Resize ``image`` (LANCZOS, aspect preserved) to cover ``height`` x ``width`` and centre-crop it.

    Returns the cropped image (size ``width`` x ``height``) and the :class:`CropInfo` that maps source
    pixel coordinates (and intrinsics) onto it.
    """
    info = crop_info((image.height, image.width), height, width)
    resized = image.resize((info.resized_width, info.resized_height), Image.Resampling.LANCZOS)
    box = (info.left, info.top, info.left + width, info.top + height)
    return resized.crop(box), info


def load_image(path: str | os.PathLike[str], name: str = "--image") -> Image.Image:
    """Open an image file as RGB, upright according to its EXIF orientation tag.

    The EXIF block is kept on the returned image (``image.getexif()``) so that focal-length metadata
    can still be read. Multi-frame files (GIF, APNG) give their first frame.

    Raises:
        InputError: missing file, or a file PIL cannot decode (including decompression-bomb sizes).
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{name}: file not found: '{file}'")
    try:
        with Image.open(file) as opened:
            check_image_size(opened.size, f"{name}: '{file}'")  # from the header, before decoding
            opened.load()
            return to_rgb8(ImageOps.exif_transpose(opened), f"{name}: '{file}'")
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        reason = " ".join(str(err).split())
        raise InputError(f"{name}: cannot read '{file}' as an image ({reason})") from None


MAX_ASPECT = 8.0  # longer side over shorter side of a first frame
MIN_SIDE = 8  # pixels


def check_image_size(size_wh: tuple[int, int], where: str) -> None:
    """Refuse an image whose shape no crop to the model's canvas can use, before it is decoded or resized."""
    width, height = size_wh
    if min(width, height) < MIN_SIDE:
        raise InputError(f"{where} is {width}x{height} pixels; each side needs at least {MIN_SIDE}")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise InputError(
            f"{where} is {width}x{height} pixels; the longer side may be at most {MAX_ASPECT:g}x the shorter"
        )


def to_rgb8(image: Image.Image, where: str) -> Image.Image:
    """8-bit RGB. 16-bit and 32-bit integer images are scaled to 8 bits (PIL's own conversion would clip
    them: a 16-bit gradient turned almost all white), float images are read as [0, 1] (or scaled by their
    maximum when it is above 1); a non-finite float pixel is an :class:`InputError`."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image)
        if image.mode == "F":
            if not np.isfinite(array).all():
                raise InputError(f"{where} holds NaN or infinite pixels")
            peak = max(float(array.max()), 1.0)
            array = np.clip(array / peak, 0.0, 1.0) * 255.0
        else:
            peak = 65535.0 if image.mode.startswith("I;16") or array.max() <= 65535 else float(array.max())
            array = np.clip(array.astype(np.float64) / peak, 0.0, 1.0) * 255.0
        gray = np.round(array).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=2))
    return image.convert("RGB")
