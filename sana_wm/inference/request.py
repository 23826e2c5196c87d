"""Typed, frozen requests: what one generation asks for, checked once when it is made.

- :class:`SamplingSettings`: stage-1 sampling (frames, steps, guidance, shift, sampler, seed, size);
- :class:`CameraPath`: the poses, the intrinsics if given, and where both came from;
- :class:`RefinerSettings`: how the stage-2 refiner runs;
- :class:`RuntimeSettings`: device, dtype, op backend and offload mode;
- :class:`GenerationRequest`: image + prompt + camera + sampling (+ refiner), the input of
  :func:`sana_wm.inference.generate`.

Every type validates itself in ``__post_init__`` and raises :class:`~sana_wm.errors.InputError` naming the CLI
flag, so code below this boundary does not check again. Values are plain Python (no tensors), except the
camera's numpy arrays and the request's image.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image

from sana_wm.camera import action_to_c2w, align_num_frames, load_c2w, validate_c2w
from sana_wm.errors import InputError
from sana_wm.latent_shape import LTX2_STRIDE, latent_frames
from sana_wm.utils.image import check_image_size, to_rgb8

Sampler = Literal["ltx_euler", "euler", "heun"]
SAMPLER_NAMES: tuple[str, ...] = ("ltx_euler", "euler", "heun")
RefinerMode = Literal["single_shot", "chunk_causal"]
REFINER_MODES: tuple[str, ...] = ("single_shot", "chunk_causal")
OffloadMode = Literal["none", "model", "group"]
OFFLOAD_MODES: tuple[str, ...] = ("none", "model", "group")
BACKENDS: tuple[str, ...] = ("auto", "torch", "triton", "reference")
DEFAULT_FLOW_SHIFT = 9.8
MAX_STEPS = 10_000
MAX_SIDE = 8192  # pixels of a generated frame, either side
MAX_SEED = 2**63 - 1
MAX_FRAMES = 100_000  # pixel frames of one video (an hour and a half at 16 fps)


def _whole(value: object, flag: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{flag}: must be a whole number in [{low}, {high}], got {value!r}")
    return value


def _finite(value: object, flag: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{flag}: must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class SamplingSettings:
    """Stage-1 sampling; the defaults are the official release's.

    ``num_frames`` is an upper bound: the video has ``min(num_frames, poses)`` frames snapped to ``8k + 1``
    (:attr:`GenerationRequest.num_frames`). ``cfg_scale`` 1 means no guidance (one model call per step).
    """

    num_frames: int = 161
    steps: int = 60
    cfg_scale: float = 5.0
    flow_shift: float = DEFAULT_FLOW_SHIFT
    sampler: Sampler = "ltx_euler"
    negative_prompt: str = ""
    seed: int = 42
    height: int = 704
    width: int = 1280

    def __post_init__(self) -> None:
        _whole(self.num_frames, "--num_frames", LTX2_STRIDE.time + 1, MAX_FRAMES)
        _whole(self.steps, "--steps", 1, MAX_STEPS)
        _finite(self.cfg_scale, "--cfg_scale")
        if not _finite(self.flow_shift, "--flow_shift") > 0:
            raise InputError(f"--flow_shift: must be a finite number > 0, got {self.flow_shift!r}")
        if self.sampler not in SAMPLER_NAMES:
            raise InputError(f"--sampler: {self.sampler!r} is not one of {', '.join(SAMPLER_NAMES)}")
        if not isinstance(self.negative_prompt, str):
            raise InputError("--negative_prompt: must be a string")
        _whole(self.seed, "--seed", 0, MAX_SEED)
        for name, value in (("height", self.height), ("width", self.width)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 32 <= value <= MAX_SIDE
                or value % 32
            ):
                raise InputError(f"--{name}: must be a positive multiple of 32 up to {MAX_SIDE}, got {value}")

    @property
    def guided(self) -> bool:
        return self.cfg_scale != 1.0


@dataclass(frozen=True, kw_only=True)
class CameraPath:
    """Camera-to-world poses ``c2w_F44`` (float32, OpenCV axes, metres, validated rigid and finite), the
    intrinsics if given (``(4,)``, ``(3, 3)``, ``(F, 4)`` or ``(F, 3, 3)`` in pixels of the input image; None:
    estimated from the image), and their provenance for the sidecar."""

    c2w_F44: np.ndarray
    intrinsics: np.ndarray | None = None
    action: str | None = None
    action_mapping: str = "v1"
    translation_speed: float | None = None
    rotation_speed_deg: float | None = None
    pitch_limit_deg: float | None = None
    camera_file: str | None = None
    intrinsics_file: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "c2w_F44", validate_c2w(np.asarray(self.c2w_F44), "--camera"))
        if self.intrinsics is not None:
            object.__setattr__(self, "intrinsics", np.asarray(self.intrinsics, dtype=np.float32))

    @classmethod
    def from_action(
        cls,
        action: str,
        *,
        mapping: str = "v1",
        translation_speed: float | None = None,
        rotation_speed_deg: float | None = None,
        pitch_limit_deg: float | None = None,
        intrinsics: np.ndarray | None = None,
    ) -> CameraPath:
        """The action string rolled out (``sana_wm.camera.action_to_c2w``)."""
        c2w = action_to_c2w(
            action,
            mapping=mapping,
            translation_speed=translation_speed,
            rotation_speed_deg=rotation_speed_deg,
            pitch_limit_deg=pitch_limit_deg,
        )
        return cls(
            c2w_F44=c2w,
            intrinsics=intrinsics,
            action=action,
            action_mapping=mapping,
            translation_speed=translation_speed,
            rotation_speed_deg=rotation_speed_deg,
            pitch_limit_deg=pitch_limit_deg,
        )

    @classmethod
    def from_file(cls, path: str, *, mapping: str = "v1", intrinsics: np.ndarray | None = None) -> CameraPath:
        """Poses from an ``(F, 4, 4)`` ``.npy`` file (``--camera``)."""
        return cls(c2w_F44=load_c2w(path), intrinsics=intrinsics, action_mapping=mapping, camera_file=path)

    def __len__(self) -> int:
        return len(self.c2w_F44)


@dataclass(frozen=True, kw_only=True)
class RefinerSettings:
    """How the stage-2 refiner runs; the defaults are the official bidirectional release's.

    Attributes:
        mode: ``"single_shot"`` (all refined frames attend to each other) or ``"chunk_causal"``.
        sink_size: clean latent frames kept as the attention sink (``--sink_size``).
        block_size: latent frames per block in ``chunk_causal`` mode (``--refiner_block_size``).
        kv_max_frames: sink + history latent frames a ``chunk_causal`` block attends to.
        seed: seed of the refiner's noise generator, on the compute device (``--refiner_seed``).
        fp8: store the refiner transformer's weights as float8 (``--refiner_fp8``).
    """

    mode: RefinerMode = "single_shot"
    sink_size: int = 1
    block_size: int = 3
    kv_max_frames: int = 11
    seed: int = 42
    fp8: bool = False

    def __post_init__(self) -> None:
        if self.mode not in REFINER_MODES:
            raise InputError(f"--refiner_mode: {self.mode!r} is not one of {', '.join(REFINER_MODES)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError(f"--refiner_seed: must be a whole number, got {self.seed!r}")
        _whole(self.seed, "--refiner_seed", 0, MAX_SEED)
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size < 1:
            raise InputError(f"--refiner_block_size: must be >= 1, got {self.block_size}")
        if not isinstance(self.sink_size, int) or not isinstance(self.kv_max_frames, int):
            raise InputError("--sink_size / --refiner_kv_max_frames: must be whole numbers")

    def check_frames(self, num_latent_frames: int) -> None:
        """Raise unless these settings can refine ``num_latent_frames`` latent frames."""
        if not 1 <= self.sink_size < num_latent_frames:
            raise InputError(
                f"--sink_size: must be in [1, {num_latent_frames - 1}] for {num_latent_frames} latent frames"
            )
        if self.kv_max_frames <= self.sink_size:
            raise InputError(
                f"--refiner_kv_max_frames: must exceed the sink size {self.sink_size}, "
                f"got {self.kv_max_frames}"
            )


QUANTIZE_MODES = ("none", "fp8")


@dataclass(frozen=True, kw_only=True)
class RuntimeSettings:
    """Where and how the models run: ``device`` / ``dtype`` None pick CUDA + bfloat16 when present, else
    CPU + float32; ``backend`` ``"auto"`` picks the fastest ops here (Triton on CUDA when installed);
    ``quantize`` ``"fp8"`` stores the stage-1 transformer's large projections in fp8
    (:mod:`sana_wm.models.quant`); ``lora`` is an adapter file (``sana-wm train export --weights lora``)
    merged into the stage-1 transformer at load, ``W + lora_scale · (alpha / rank) · B A``
    (:mod:`sana_wm.models.lora`), before any fp8 quantisation."""

    device: str | None = None
    dtype: str | None = None
    backend: str = "auto"
    offload: OffloadMode = "none"
    quantize: str = "none"
    lora: str | None = None
    lora_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.lora is not None and not os.path.isfile(self.lora):
            raise InputError(f"--lora: {self.lora} does not exist")
        if not math.isfinite(self.lora_scale):
            raise InputError(f"--lora_scale: must be a finite number, got {self.lora_scale}")
        if self.quantize not in QUANTIZE_MODES:
            raise InputError(f"--quantize: {self.quantize!r} is not one of {', '.join(QUANTIZE_MODES)}")
        if self.backend not in BACKENDS:
            raise InputError(f"--backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.offload not in OFFLOAD_MODES:
            raise InputError(f"--offload: {self.offload!r} is not one of {', '.join(OFFLOAD_MODES)}")
        from sana_wm.utils.device import resolve_device, resolve_dtype

        resolve_dtype(self.dtype, resolve_device(self.device))  # an unusable device or dtype: refused now


@dataclass(frozen=True, kw_only=True)
class GenerationRequest:
    """One generation: the first ``image`` (RGB, any size), ``prompt``, ``camera`` and ``sampling``; with
    ``refiner`` settings stage 2 runs after stage 1. ``fps`` is the video's frame rate (the refiner's
    temporal positions are in seconds).

    :attr:`num_frames` is the stage-1 frame count: ``min(sampling.num_frames, poses)`` snapped to ``8k + 1``.
    """

    image: Image.Image
    prompt: str
    camera: CameraPath
    sampling: SamplingSettings = SamplingSettings()
    refiner: RefinerSettings | None = None
    fps: float = 16.0
    num_frames: int = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise InputError("--prompt: the prompt must be a string")
        if not isinstance(self.image, Image.Image):
            raise InputError(f"--image: expected a PIL image, got {type(self.image).__name__}")
        check_image_size(self.image.size, "--image")
        if self.image.mode != "RGB":
            object.__setattr__(self, "image", to_rgb8(self.image, "--image"))
        if not (_finite(self.fps, "--fps") > 0):
            raise InputError(f"--fps: must be a positive number, got {self.fps}")
        stride = LTX2_STRIDE.time
        if len(self.camera) <= stride:
            source = "--camera" if self.camera.action is None else "--action"
            raise InputError(
                f"{source}: the camera path has {len(self.camera)} poses; a video needs at least "
                f"{stride + 1} (one per frame, 8k + 1 frames)"
            )
        object.__setattr__(self, "num_frames", align_num_frames(self.sampling.num_frames, len(self.camera)))
        if self.refiner is not None:
            self.refiner.check_frames(latent_frames(self.num_frames, stride))

    @property
    def c2w_F44(self) -> np.ndarray:
        """The poses of the generated frames."""
        return self.camera.c2w_F44[: self.num_frames]

    @classmethod
    def create(
        cls,
        image: Image.Image | np.ndarray,
        prompt: str,
        *,
        action: str | None = None,
        c2w: np.ndarray | None = None,
        intrinsics: np.ndarray | None = None,
        action_mapping: str = "v1",
        translation_speed: float | None = None,
        rotation_speed_deg: float | None = None,
        pitch_limit_deg: float | None = None,
        refiner: RefinerSettings | None = None,
        fps: float = 16.0,
        **sampling: object,
    ) -> GenerationRequest:
        """A request from flat keywords: ``image`` (PIL or uint8 ``(H, W, 3)``), exactly one of ``action``
        (rolled out with ``action_mapping`` and the speeds) and ``c2w``, and any :class:`SamplingSettings`
        field (``num_frames=81, steps=30, seed=0, ...``)."""
        if (action is None) == (c2w is None):
            raise InputError("--action/--camera: pass exactly one of an action string and camera poses")
        if action is not None:
            camera = CameraPath.from_action(
                action,
                mapping=action_mapping,
                translation_speed=translation_speed,
                rotation_speed_deg=rotation_speed_deg,
                pitch_limit_deg=pitch_limit_deg,
                intrinsics=intrinsics,
            )
        else:
            camera = CameraPath(c2w_F44=c2w, intrinsics=intrinsics, action_mapping=action_mapping)
        return cls(
            image=as_image(image),
            prompt=prompt,
            camera=camera,
            sampling=SamplingSettings(**sampling),  # type: ignore[arg-type]
            refiner=refiner,
            fps=fps,
        )


def as_image(image: Image.Image | np.ndarray) -> Image.Image:
    """A PIL image as it is, or an RGB uint8 ``(H, W, 3)`` array as one."""
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f"--image: expected an RGB uint8 (H, W, 3) array, got {array.dtype} {array.shape}")
    return Image.fromarray(array)
