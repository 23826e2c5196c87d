"""Structure from motion on one clip with pycolmap: keyframes mapped, the other frames registered by PnP.

Steps (all on the CPU):

1. every frame is written as a PNG (at most ``max_image_size`` pixels on its long side) and SIFT features
   are extracted for all of them into one database, with ONE shared camera (``SIMPLE_RADIAL``: focal and
   radial distortion optimised, the principal point held at the image centre);
2. keyframes are every ``keyframe_stride``-th frame (the stride grows so there are at most
   ``max_keyframes``); keyframe pairs up to ``overlap`` keyframes apart and every other frame paired with
   the two keyframes on either side are matched (SIFT + geometric verification);
3. incremental mapping on the keyframes only (the largest model is kept): bundle adjustment refines poses,
   points and the shared intrinsics;
4. every frame the map did not register (the non-keyframes, and keyframes the mapper dropped) is
   registered by robust PnP (LO-RANSAC + refinement) from its verified matches to registered keyframes'
   triangulated points, with the intrinsics fixed.

Pixel convention: COLMAP puts the centre of the top-left pixel at (0.5, 0.5); the project puts it at
(0, 0) (:mod:`sana_wm.camera.intrinsics`); :class:`SfmResult` intrinsics are in the project's convention,
with the principal point fixed at ``(W / 2, H / 2)`` like every clip the project renders or loads.

Poses come back in the reconstruction's arbitrary units and world frame (OpenCV c2w).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MIN_PNP_INLIERS = 24
MIN_SELFCAL_CONTRAST = 0.5
START_HFOV_DEG = (60.0, 90.0, 40.0)
FOCAL_AGREE = 0.03  # |log ratio| under which two focal estimates agree


@dataclass(frozen=True)
class SfmSettings:
    """How a clip is reconstructed (see the module docstring)."""

    keyframe_stride: int = 3
    max_keyframes: int = 240
    max_image_size: int = 640
    max_num_features: int = 4096
    first_octave: int = -1  # -1 doubles the image first: ~3x slower extraction, more fine-scale features
    overlap: int = 8
    camera_model: str = "SIMPLE_RADIAL"
    num_threads: int = -1
    seed: int = 0
    focal_px: float | None = None  # known focal (pixels of the frames given to reconstruct): held fixed


@dataclass
class SfmResult:
    """A reconstructed clip. Arrays are per frame (F) of the input; unregistered frames have NaN poses."""

    c2w_F44: np.ndarray
    registered_F: np.ndarray
    keyframe_F: np.ndarray
    focal_px: float  # at (height, width)
    k1: float
    height: int
    width: int
    reproj_error_px: float
    num_points: int
    points_P3: np.ndarray  # triangulated points, reconstruction units
    # per registered keyframe: (frame index, (N, 2) pixel coords in the project's convention, (N,) depth z)
    observations: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    attempts: list[dict[str, float]] = field(default_factory=list)
    focal_self_calibrated: float | None = None
    pnp_registered: int = 0

    @property
    def registered_fraction(self) -> float:
        return float(self.registered_F.mean()) if len(self.registered_F) else 0.0

    def intrinsics(self, height: int, width: int) -> np.ndarray:
        """``[fx, fy, cx, cy]`` scaled to a ``height`` x ``width`` image."""
        sx, sy = width / self.width, height / self.height
        return np.array([self.focal_px * sx, self.focal_px * sy, width / 2.0, height / 2.0])


class SfmError(RuntimeError):
    """The clip could not be reconstructed (no initial pair, no model): a reason for dropping it."""


def keyframe_indices(num_frames: int, settings: SfmSettings) -> np.ndarray:
    """Every ``stride``-th frame (stride widened to give at most ``max_keyframes``) and the last frame."""
    stride = max(
        settings.keyframe_stride, int(np.ceil((num_frames - 1) / max(settings.max_keyframes - 1, 1)))
    )
    keys = list(range(0, num_frames, max(stride, 1)))
    if keys[-1] != num_frames - 1:
        keys.append(num_frames - 1)
    return np.array(keys, dtype=np.int64)


def match_pairs(num_frames: int, keys: np.ndarray, overlap: int) -> list[tuple[int, int]]:
    """Frame pairs to match: keyframes up to ``overlap`` apart, and each other frame with the two
    keyframes before and the two after it."""
    pairs = set()
    for i, a in enumerate(keys):
        for b in keys[i + 1 : i + 1 + overlap]:
            pairs.add((int(a), int(b)))
    is_key = np.zeros(num_frames, bool)
    is_key[keys] = True
    for f in np.flatnonzero(~is_key):
        pos = int(np.searchsorted(keys, f))
        for k in keys[max(0, pos - 2) : pos + 2]:
            pairs.add((min(int(f), int(k)), max(int(f), int(k))))
    return sorted(pairs)


def _name(frame: int) -> str:
    return f"{frame:06d}.png"


def _write_frames(frames_FHW3: np.ndarray, folder: Path, max_size: int) -> tuple[int, int]:
    import cv2

    height, width = frames_FHW3.shape[1:3]
    scale = min(1.0, max_size / max(height, width))
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    for f, frame in enumerate(frames_FHW3):
        image = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)
        if size != (width, height):
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / _name(f)), image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return size[1], size[0]


def reconstruct(frames_FHW3: np.ndarray, settings: SfmSettings = SfmSettings()) -> SfmResult:
    """Reconstruct RGB uint8 frames ``(F, H, W, 3)`` (see the module docstring). Raises :class:`SfmError`."""
    import pycolmap

    num_frames = len(frames_FHW3)
    if num_frames < 3:
        raise SfmError(f"too few frames for SfM ({num_frames})")
    timings: dict[str, float] = {}
    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = (
        3 if not log.isEnabledFor(logging.DEBUG) else level
    )  # COLMAP's glog chatter
    try:
        return _reconstruct(frames_FHW3, settings, timings)
    finally:
        pycolmap.logging.minloglevel = level


def _reconstruct(frames_FHW3: np.ndarray, settings: SfmSettings, timings: dict[str, float]) -> SfmResult:
    import pycolmap

    num_frames = len(frames_FHW3)
    with tempfile.TemporaryDirectory(prefix="sana_wm_sfm_") as tmp:
        tmp_dir = Path(tmp)
        images, db_path, out = tmp_dir / "images", tmp_dir / "db.db", tmp_dir / "sparse"
        images.mkdir()
        out.mkdir()
        start = time.perf_counter()
        height, width = _write_frames(frames_FHW3, images, settings.max_image_size)
        focal0 = max(height, width) / 2.0 / np.tan(np.radians(START_HFOV_DEG[0]) / 2.0)
        cx, cy = (
            width / 2.0 + 0.5,
            height / 2.0 + 0.5,
        )  # the project's (W/2, H/2) in COLMAP's pixel convention
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = settings.camera_model
        params = [focal0, cx, cy] + ([0.0] if settings.camera_model == "SIMPLE_RADIAL" else [])
        reader.camera_params = ",".join(f"{v:.6f}" for v in params)
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = settings.num_threads
        extraction.sift.max_num_features = settings.max_num_features
        extraction.sift.first_octave = settings.first_octave
        pycolmap.extract_features(
            db_path,
            images,
            camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader,
            extraction_options=extraction,
            device=pycolmap.Device.cpu,
        )
        timings["extract"] = time.perf_counter() - start

        start = time.perf_counter()
        keys = keyframe_indices(num_frames, settings)
        pairs = match_pairs(num_frames, keys, settings.overlap)
        pair_file = tmp_dir / "pairs.txt"
        pair_file.write_text("".join(f"{_name(a)} {_name(b)}\n" for a, b in pairs))
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = pair_file
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = settings.num_threads
        pycolmap.match_image_pairs(
            db_path, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu
        )
        timings["match"] = time.perf_counter() - start

        start = time.perf_counter()
        focal_self = self_calibrate_focal(db_path, pairs, keys, height, width)
        starts = [focal_self] if focal_self else []
        starts += [max(height, width) / 2.0 / np.tan(np.radians(h) / 2.0) for h in START_HFOV_DEG]
        refine = settings.focal_px is None
        if not refine:  # a known focal, given at the frames' size
            starts = [settings.focal_px * width / frames_FHW3.shape[2]]
        recon, attempts = _best_map(db_path, images, out, keys, settings, starts, (cx, cy), refine)
        timings["map"] = time.perf_counter() - start

        start = time.perf_counter()
        result = _collect(recon, num_frames, keys, height, width, attempts)
        result.focal_self_calibrated = focal_self
        _register_rest(result, recon, db_path, pairs)
        timings["register"] = time.perf_counter() - start
    result.timings_s = timings
    return result


def _frame_of(name: str) -> int:
    return int(Path(name).stem)


def _collect(
    recon: object, num_frames: int, keys: np.ndarray, height: int, width: int, attempts: list
) -> SfmResult:
    camera = next(iter(recon.cameras.values()))
    params = np.asarray(camera.params, dtype=np.float64)
    c2w = np.full((num_frames, 4, 4), np.nan)
    registered = np.zeros(num_frames, bool)
    observations = []
    for image in recon.images.values():
        if not image.has_pose:
            continue
        f = _frame_of(image.name)
        cam_from_world = np.vstack([image.cam_from_world().matrix(), [0.0, 0.0, 0.0, 1.0]])
        c2w[f] = np.linalg.inv(cam_from_world)
        registered[f] = True
        uv, xyz = [], []
        for point2D in image.points2D:
            if point2D.has_point3D():
                uv.append(point2D.xy)
                xyz.append(recon.points3D[point2D.point3D_id].xyz)
        if xyz:
            z = (np.asarray(xyz) @ cam_from_world[:3, :3].T + cam_from_world[:3, 3])[:, 2]
            observations.append((f, np.asarray(uv) - 0.5, z))
    keyframe = np.zeros(num_frames, bool)
    keyframe[keys] = True
    points = np.array([p.xyz for p in recon.points3D.values()], dtype=np.float64).reshape(-1, 3)
    return SfmResult(
        c2w_F44=c2w,
        registered_F=registered,
        keyframe_F=keyframe,
        focal_px=float(params[0]),
        k1=float(params[3]) if len(params) > 3 else 0.0,
        height=height,
        width=width,
        reproj_error_px=float(recon.compute_mean_reprojection_error()),
        num_points=len(points),
        points_P3=points,
        observations=sorted(observations, key=lambda o: o[0]),
        attempts=attempts,
    )


def _register_rest(result: SfmResult, recon: object, db_path: Path, pairs: list[tuple[int, int]]) -> None:
    """PnP for every unregistered frame from its matches to registered frames' 3D points (in place)."""
    import pycolmap

    camera = next(iter(recon.cameras.values()))
    registered_images = {_frame_of(im.name): im for im in recon.images.values() if im.has_pose}
    partners: dict[int, list[int]] = {}
    for a, b in pairs:
        partners.setdefault(a, []).append(b)
        partners.setdefault(b, []).append(a)
    db = pycolmap.Database.open(db_path)
    try:
        ids = {_frame_of(im.name): im.image_id for im in db.read_all_images()}
        for f in np.flatnonzero(~result.registered_F):
            f = int(f)
            keypoints = db.read_keypoints(ids[f])[:, :2]
            uv, xyz = [], []
            for k in partners.get(f, []):
                image = registered_images.get(k)
                if image is None or not db.exists_two_view_geometry(ids[f], ids[k]):
                    continue
                matches = db.read_two_view_geometry(ids[f], ids[k]).inlier_matches
                for i_f, i_k in np.asarray(matches).reshape(-1, 2):
                    point2D = image.points2D[int(i_k)]
                    if point2D.has_point3D():
                        uv.append(keypoints[int(i_f)])
                        xyz.append(recon.points3D[point2D.point3D_id].xyz)
            if len(xyz) < MIN_PNP_INLIERS:
                continue
            estimate = pycolmap.estimate_and_refine_absolute_pose(
                np.asarray(uv, np.float64), np.asarray(xyz, np.float64), camera
            )
            if estimate is None or int(estimate["num_inliers"]) < MIN_PNP_INLIERS:
                continue
            cam_from_world = np.vstack([estimate["cam_from_world"].matrix(), [0.0, 0.0, 0.0, 1.0]])
            result.c2w_F44[f] = np.linalg.inv(cam_from_world)
            result.registered_F[f] = True
            result.pnp_registered += 1
    finally:
        db.close()


def _pair_fundamentals(
    db_path: Path, pairs: list[tuple[int, int]], keys: np.ndarray, min_inliers: int = 60
) -> list[np.ndarray]:
    """Fundamental matrices (COLMAP pixel convention) of the verified keyframe pairs with enough inliers."""
    import cv2
    import pycolmap

    keyset = {int(k) for k in keys}
    fundamentals = []
    db = pycolmap.Database.open(db_path)
    try:
        ids = {_frame_of(im.name): im.image_id for im in db.read_all_images()}
        keypoints: dict[int, np.ndarray] = {}
        for a, b in pairs:
            if a not in keyset or b not in keyset or not db.exists_two_view_geometry(ids[a], ids[b]):
                continue
            matches = np.asarray(db.read_two_view_geometry(ids[a], ids[b]).inlier_matches).reshape(-1, 2)
            if len(matches) < min_inliers:
                continue
            for f in (a, b):
                if f not in keypoints:
                    keypoints[f] = db.read_keypoints(ids[f])[:, :2].astype(np.float64)
            F, _ = cv2.findFundamentalMat(
                keypoints[a][matches[:, 0]], keypoints[b][matches[:, 1]], cv2.FM_LMEDS
            )
            if F is not None and F.shape == (3, 3):
                fundamentals.append(F)
    finally:
        db.close()
    return fundamentals


def focal_from_fundamentals(
    fundamentals: list[np.ndarray], height: int, width: int, principal: tuple[float, float]
) -> tuple[float | None, float]:
    """Self-calibration of one shared focal length (Mendonca & Cipolla 1999).

    For the right K, ``E = K^T F K`` is an essential matrix: its two non-zero singular values are equal.
    The focal is the grid value (0.25x-4x the long side, log-spaced) minimising the median over pairs of
    ``(s1 - s2) / (s1 + s2)``. Returns ``(focal, contrast)``: contrast is how much higher the cost is at
    the grid's ends than at the minimum (near 0 when the pairs do not constrain the focal, e.g. pure
    translation); ``(None, 0)`` without pairs.
    """
    if not fundamentals:
        return None, 0.0
    candidates = max(height, width) * np.geomspace(0.25, 4.0, 161)
    F_P33 = np.stack(fundamentals)
    costs = []
    for f in candidates:
        K = np.array([[f, 0.0, principal[0]], [0.0, f, principal[1]], [0.0, 0.0, 1.0]])
        s = np.linalg.svd(K.T[None] @ F_P33 @ K[None], compute_uv=False)
        costs.append(float(np.median((s[:, 0] - s[:, 1]) / (s[:, 0] + s[:, 1] + 1e-30))))
    costs_C = np.array(costs)
    best = int(np.argmin(costs_C))
    contrast = float(min(costs_C[0], costs_C[-1]) / max(costs_C[best], 1e-12) - 1.0)
    return float(candidates[best]), contrast


def self_calibrate_focal(
    db_path: Path, pairs: list[tuple[int, int]], keys: np.ndarray, height: int, width: int
) -> float | None:
    """The focal (pixels, COLMAP image size) from the keyframe pairs' fundamental matrices, or None."""
    focal, contrast = focal_from_fundamentals(
        _pair_fundamentals(db_path, pairs, keys), height, width, (width / 2.0 + 0.5, height / 2.0 + 0.5)
    )
    log.debug("self-calibrated focal %s (contrast %.2f)", focal, contrast)
    return focal if contrast > MIN_SELFCAL_CONTRAST else None


def _map(
    db_path: Path,
    images: Path,
    out: Path,
    keys: np.ndarray,
    settings: SfmSettings,
    focal: float,
    principal: tuple[float, float],
    refine: bool,
) -> object | None:
    """Incremental mapping of the keyframes from an initial focal; the model with most images, or None."""
    import shutil

    import pycolmap

    db = pycolmap.Database.open(db_path)
    try:
        camera = db.read_all_cameras()[0]
        camera.params = [focal, *principal] + ([0.0] if settings.camera_model == "SIMPLE_RADIAL" else [])
        db.update_camera(camera)
    finally:
        db.close()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    options = pycolmap.IncrementalPipelineOptions()
    options.image_names = [_name(int(k)) for k in keys]
    options.num_threads = settings.num_threads
    options.random_seed = settings.seed
    options.ba_refine_principal_point = False
    options.multiple_models = True
    if not refine:
        options.ba_refine_focal_length = False
        options.ba_refine_extra_params = False
        options.mapper.abs_pose_refine_focal_length = False
        options.mapper.abs_pose_refine_extra_params = False
    models = pycolmap.incremental_mapping(db_path, images, out, options=options)
    return max(models.values(), key=lambda r: r.num_reg_images()) if models else None


def _best_map(
    db_path: Path,
    images: Path,
    out: Path,
    keys: np.ndarray,
    settings: SfmSettings,
    starts: list[float],
    principal: tuple[float, float],
    refine: bool = True,
) -> tuple[object, list[dict[str, float]]]:
    """Multi-start mapping: the focal is refined from each initial value in ``starts`` (bundle adjustment
    falls into local minima of the focal on low-parallax clips). Results that register at least 90 % of
    the keyframes (else the most registered) are grouped by final focal (within ``FOCAL_AGREE``); the
    largest group wins, then the lowest reprojection error inside it. Stops early once two starts agree."""
    attempts: list[dict[str, float]] = []
    results: list[tuple[object, float]] = []
    for focal0 in starts:
        recon = _map(db_path, images, out, keys, settings, focal0, principal, refine=refine)
        if recon is None:
            attempts.append({"focal0": focal0, "registered": 0})
            continue
        focal = float(next(iter(recon.cameras.values())).params[0])
        error = float(recon.compute_mean_reprojection_error())
        attempts.append(
            {"focal0": focal0, "registered": recon.num_reg_images(), "focal": focal, "reproj_error_px": error}
        )
        results.append((recon, focal))
        good = [f for r, f in results if r.num_reg_images() >= 0.9 * len(keys)]
        if any(abs(np.log(f / g)) < FOCAL_AGREE for i, f in enumerate(good) for g in good[:i]):
            break
    if not results:
        raise SfmError("SfM found no initial pair (too little parallax or texture)")
    most = max(r.num_reg_images() for r, _ in results)
    pool = [(r, f) for r, f in results if r.num_reg_images() >= min(most, 0.9 * len(keys))]
    votes = [sum(abs(np.log(f / g)) < FOCAL_AGREE for _, g in pool) for _, f in pool]
    best = min(range(len(pool)), key=lambda i: (-votes[i], pool[i][0].compute_mean_reprojection_error()))
    return pool[best][0], attempts
