"""First-frame image loading and the resize + centre crop to the model's 704 x 1280 canvas."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
            opened.load()
            return ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        reason = " ".join(str(err).split())
        raise InputError(f"{name}: cannot read '{file}' as an image ({reason})") from None
