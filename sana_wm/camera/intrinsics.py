"""Pinhole intrinsics ``[fx, fy, cx, cy]`` in pixels: loading, time fitting, FOV gate, crop and latent maps.

Pixel convention: pixel ``(x, y)`` (integer column, row) sits at coordinate ``(x, y)``; the principal point
``(cx, cy)`` is in the same coordinates. Vectors and arrays are float32 unless stated.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os

import numpy as np
from PIL import ExifTags, Image

from sana_wm.camera.npyio import load_npy
from sana_wm.errors import InputError
from sana_wm.utils.image import CropInfo

logger = logging.getLogger(__name__)

MIN_FOV_DEG = 25.0
MAX_FOV_DEG = 120.0
DEFAULT_HFOV_DEG = 60.0
FILM_WIDTH_35MM = 36.0
PI3X_PIXEL_BUDGET = 255_000
PI3X_PATCH = 14


def fov_deg(focal_px: float | np.ndarray, size_px: float | np.ndarray) -> float | np.ndarray:
    """Full field of view in degrees across ``size_px`` pixels for focal length ``focal_px`` (pixels)."""
    return np.degrees(2.0 * np.arctan(np.asarray(size_px) / (2.0 * np.asarray(focal_px))))


def _as_vectors(array: np.ndarray, name: str) -> np.ndarray:
    """(4,) | (3,3) | (F,4) | (F,3,3) -> (F, 4) float64 with F = 1 for the single-camera shapes."""
    if array.shape == (4,):
        return array[None]
    if array.shape == (3, 3):
        array = array[None]
    if array.ndim == 3 and array.shape[1:] == (3, 3) and array.shape[0] >= 1:
        expected = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 1]], dtype=bool)  # where K may be non-zero
        off = np.abs(np.where(expected, 0.0, array)).max(axis=(1, 2))
        if (off > 1e-6).any() or (np.abs(array[:, 2, 2] - 1.0) > 1e-6).any():
            frame = int(np.argmax((off > 1e-6) | (np.abs(array[:, 2, 2] - 1.0) > 1e-6)))
            raise InputError(
                f"{name}: frame {frame} K is not [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] "
                "(skew and other entries are not supported)"
            )
        return np.stack([array[:, 0, 0], array[:, 1, 1], array[:, 0, 2], array[:, 1, 2]], axis=-1)
    if array.ndim == 2 and array.shape[1] == 4 and array.shape[0] >= 1:
        return array
    raise InputError(
        f"{name}: unsupported shape {array.shape}; expected (4,) [fx, fy, cx, cy], (3, 3) K, "
        "(F, 4) or (F, 3, 3) per frame"
    )


def fit_intrinsics(array: np.ndarray, num_frames: int, name: str = "--intrinsics") -> np.ndarray:
    """Turn any accepted intrinsics array into one ``[fx, fy, cx, cy]`` row per frame.

    Shapes: (4,) and (3, 3) are broadcast. For (F, 4) and (F, 3, 3): F == num_frames is copied,
    F > num_frames truncated, F == 1 broadcast, and 1 < F < num_frames linearly interpolated per element over
    normalised time (source frame i at i / (F - 1), output frame j at j / (num_frames - 1)).

    Returns:
        float32 (num_frames, 4).

    Raises:
        InputError: unsupported shape, NaN or infinity, or fx / fy not > 0.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    vectors = _as_vectors(np.asarray(array, dtype=np.float64), name)
    if not np.isfinite(vectors).all():
        raise InputError(f"{name}: contains NaN or infinity")
    if (vectors[:, :2] <= 0).any():
        frame = int(np.argmax((vectors[:, :2] <= 0).any(axis=1)))
        fx, fy = vectors[frame, :2]
        raise InputError(f"{name}: frame {frame} has fx={fx:g}, fy={fy:g}; both must be > 0")
    count = vectors.shape[0]
    if count >= num_frames:
        fitted = vectors[:num_frames]
    elif count == 1:
        fitted = np.repeat(vectors, num_frames, axis=0)
    else:
        src_t = np.linspace(0.0, 1.0, count)
        dst_t = np.linspace(0.0, 1.0, num_frames)
        fitted = np.stack([np.interp(dst_t, src_t, vectors[:, c]) for c in range(4)], axis=-1)
    return fitted.astype(np.float32)


def _fov_problem(intrinsics_F4: np.ndarray, image_hw: tuple[int, int]) -> str | None:
    height, width = image_hw
    intrinsics_F4 = np.asarray(intrinsics_F4, dtype=np.float64).reshape(-1, 4)
    for axis, column, size in (("cx", 2, width), ("cy", 3, height)):
        outside = (intrinsics_F4[:, column] < 0) | (intrinsics_F4[:, column] > size)
        if outside.any():
            frame = int(np.argmax(outside))
            value = intrinsics_F4[frame, column]
            return f"frame {frame} principal point {axis}={value:g} lies outside 0-{size} px"
    for axis, column, size in (("horizontal", 0, width), ("vertical", 1, height)):
        fov = fov_deg(intrinsics_F4[:, column], size)
        bad = ~((fov > MIN_FOV_DEG) & (fov < MAX_FOV_DEG))
        if bad.any():
            frame = int(np.argmax(bad))
            return (
                f"frame {frame} {axis} FOV {fov[frame]:.1f} deg is outside "
                f"{MIN_FOV_DEG:g}-{MAX_FOV_DEG:g} deg "
                f"(focal {intrinsics_F4[frame, column]:.1f} px over {size} px)"
            )
    return None


def check_fov(intrinsics_F4: np.ndarray, image_hw: tuple[int, int], name: str = "--intrinsics") -> None:
    """Require 25 < FOV < 120 degrees on both axes for every frame (strict, as the official gate) and the
    principal point inside the image.

    ``image_hw`` is the ORIGINAL (uncropped) image size the intrinsics refer to.
    """
    problem = _fov_problem(intrinsics_F4, image_hw)
    if problem is not None:
        raise InputError(f"{name}: {problem}")


def load_intrinsics(
    path: str | os.PathLike[str],
    num_frames: int,
    *,
    image_hw: tuple[int, int] | None = None,
    name: str = "--intrinsics",
) -> np.ndarray:
    """Load ``--intrinsics`` (.npy, pixels of the original image) as float32 (num_frames, 4).

    See :func:`fit_intrinsics` for the accepted shapes; when ``image_hw`` (original image height, width)
    is given, the FOV gate of :func:`check_fov` is applied too.
    """
    fitted = fit_intrinsics(load_npy(path, name), num_frames, name)
    if image_hw is not None:
        check_fov(fitted, image_hw, name)
    return fitted


def transform_intrinsics_for_crop(intrinsics: np.ndarray, crop: CropInfo) -> np.ndarray:
    """Map ``[..., 4]`` intrinsics from source pixels to the resized + cropped canvas of ``crop``.

    ``fx' = fx * sx``, ``cx' = cx * sx - left``, ``fy' = fy * sy``, ``cy' = cy * sy - top``.
    """
    out = np.array(intrinsics, dtype=np.float64)
    out[..., 0] *= crop.sx
    out[..., 1] *= crop.sy
    out[..., 2] = out[..., 2] * crop.sx - crop.left
    out[..., 3] = out[..., 3] * crop.sy - crop.top
    return out.astype(np.asarray(intrinsics).dtype)


def latent_intrinsics(
    intrinsics: np.ndarray,
    height: int = 704,
    width: int = 1280,
    latent_hw: tuple[int, int] = (22, 40),
) -> np.ndarray:
    """Rescale ``[..., 4]`` intrinsics from a ``height`` x ``width`` pixel canvas to the latent grid.

    fx and cx are multiplied by ``latent_w / width``, fy and cy by ``latent_h / height`` (1/32 at 720p).
    """
    out = np.array(intrinsics, dtype=np.float64)
    out[..., [0, 2]] *= latent_hw[1] / width
    out[..., [1, 3]] *= latent_hw[0] / height
    return out.astype(np.asarray(intrinsics).dtype)


def intrinsics_from_exif(image: Image.Image) -> np.ndarray | None:
    """Intrinsics from the EXIF 35 mm-equivalent focal length (tag 0xA405), or None if absent or zero.

    The 35 mm-equivalent focal length f35 (mm) is read as framing 36 mm of film across the image's LONG
    side: ``f_px = f35 * max(W, H) / 36``, so a landscape image gets horizontal FOV ``2 atan(36 / (2 f35))``
    (a portrait image gets it vertically). Pixels are taken as square (fx = fy) and the principal point
    as the image centre ``(W / 2, H / 2)``.
    """
    exif = image.getexif()
    value = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.FocalLengthIn35mmFilm)
    if value is None:
        value = exif.get(ExifTags.Base.FocalLengthIn35mmFilm)
    try:
        f35 = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f35) or f35 <= 0:
        return None
    width, height = image.size
    focal = f35 * max(width, height) / FILM_WIDTH_35MM
    return np.array([focal, focal, width / 2.0, height / 2.0], dtype=np.float32)


def default_intrinsics(image_hw: tuple[int, int], hfov_deg: float = DEFAULT_HFOV_DEG) -> np.ndarray:
    """Square-pixel intrinsics with ``hfov_deg`` across the image width and the principal point at the centre.

    Why 60 deg: it sits inside the model's 25-120 deg gate, between a normal lens (~40-50 deg) and a
    phone's main camera (26 mm-equivalent, ~69 deg), and close to the ~53 deg the official training data
    falls back to for clips without poses (that fallback, fx = W and fy = H, is anisotropic for
    non-square images, so it is not copied).
    """
    height, width = image_hw
    focal = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([focal, focal, width / 2.0, height / 2.0], dtype=np.float32)


def pi3x_input_size(width: int, height: int) -> tuple[int, int]:
    """Pi3X input (width, height): multiples of 14 near the aspect ratio, at most 255,000 pixels."""
    scale = math.sqrt(PI3X_PIXEL_BUDGET / (width * height))
    target_w, target_h = width * scale, height * scale
    k = max(1, round(target_w / PI3X_PATCH))
    m = max(1, round(target_h / PI3X_PATCH))
    while (k * PI3X_PATCH) * (m * PI3X_PATCH) > PI3X_PIXEL_BUDGET:
        if k / m > target_w / target_h:
            k -= 1
        else:
            m -= 1
    return k * PI3X_PATCH, m * PI3X_PATCH


def _estimate_with_pi3x(image: Image.Image) -> np.ndarray:
    """Pi3X ray-based intrinsics for ``image`` in its own pixels (official recipe, section 2.9).

    UNTESTED: the optional ``pi3`` package and its ``yyfz233/Pi3X`` weights are not available where this
    project's tests run; only :func:`pi3x_input_size` is covered.
    """
    import torch
    from pi3.models.pi3x import Pi3X
    from pi3.utils.geometry import recover_intrinsic_from_rays_d

    width, height = image.size
    model_w, model_h = pi3x_input_size(width, height)
    resized = image.resize((model_w, model_h), Image.Resampling.LANCZOS)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0)
    imgs_B1CHW = pixels.permute(2, 0, 1)[None, None].to(device)
    model = Pi3X.from_pretrained("yyfz233/Pi3X").to(device).eval()
    model.disable_multimodal()
    model.requires_grad_(False)
    use_bf16 = device == "cuda" and torch.cuda.get_device_capability()[0] >= 8
    autocast = torch.autocast(
        device, dtype=torch.bfloat16 if use_bf16 else torch.float16, enabled=device == "cuda"
    )
    with torch.no_grad(), autocast:
        local_points = model(imgs=imgs_B1CHW)["local_points"]
    rays = torch.nn.functional.normalize(local_points.float(), dim=-1)
    k_33 = recover_intrinsic_from_rays_d(rays, force_center_principal_point=True)[0, 0].double().cpu().numpy()
    del model
    sx, sy = width / model_w, height / model_h
    return np.array([k_33[0, 0] * sx, k_33[1, 1] * sy, k_33[0, 2] * sx, k_33[1, 2] * sy], dtype=np.float32)


def estimate_intrinsics(image: Image.Image, *, allow_pi3x: bool = True) -> tuple[np.ndarray, str]:
    """Intrinsics for an image given without ``--intrinsics``: float32 (4,) in its pixels, and the source.

    Tries, in order: ``"exif"`` (:func:`intrinsics_from_exif`, skipped with a warning when its FOV fails the
    gate), ``"pi3x"`` (only if ``allow_pi3x`` and the optional ``pi3`` package is importable; its result
    must pass the gate, as in the official CLI), ``"default"`` (:func:`default_intrinsics`, with a warning).
    """
    image_hw = (image.height, image.width)
    from_exif = intrinsics_from_exif(image)
    if from_exif is not None:
        problem = _fov_problem(from_exif, image_hw)
        if problem is None:
            return from_exif, "exif"
        logger.warning("ignoring the EXIF 35 mm focal length: %s", problem)
    if allow_pi3x and importlib.util.find_spec("pi3") is not None:
        estimated = _estimate_with_pi3x(image)
        problem = _fov_problem(estimated, image_hw)
        if problem is not None:
            raise InputError(f"--intrinsics: the Pi3X estimate failed ({problem}); pass --intrinsics")
        return estimated, "pi3x"
    logger.warning(
        "no --intrinsics given and no usable EXIF focal length: assuming a %g deg horizontal field of view. "
        "Pass --intrinsics FILE.npy ([fx, fy, cx, cy] or a 3x3 K, in pixels of the input image) for "
        "faithful camera motion.",
        DEFAULT_HFOV_DEG,
    )
    return default_intrinsics(image_hw), "default"
