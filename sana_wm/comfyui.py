"""What the ComfyUI nodes (``comfyui/sana_wm_nodes``) call: sana-wm's loading and generation, with ComfyUI's
conventions at the edges.

ComfyUI passes images as ``IMAGE`` tensors ``(B, H, W, C)``, float32 in [0, 1], and its widgets cannot say
"the model's default": here a number <= 0 (a sampler ``"default"``, an empty string) means the loaded
model's own default (:class:`~sana_wm.inference.source.Defaults`: the demo model's recorded settings or the
release's), as ``sana-wm generate`` picks them. Everything else is sana-wm's public API unchanged:
:func:`sana_wm.inference.load`, :class:`~sana_wm.inference.GenerationRequest`, :meth:`Pipeline.__call__
<sana_wm.inference.pipeline.Pipeline.__call__>` for stage 1, :func:`sana_wm.inference.two_stage.refine`,
lazily decoded frames, :func:`sana_wm.viz.trajectory_plot.render_trajectory`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sana_wm.errors import InputError
from sana_wm.inference.pipeline import GenerationOutput, Pipeline
from sana_wm.inference.request import (
    CameraPath,
    GenerationRequest,
    RefinerSettings,
    RuntimeSettings,
    SamplingSettings,
)
from sana_wm.inference.source import Defaults, ModelSource, choose_model

MODELS = ("demo", "release")


@dataclass
class LoadedModel:
    """A loaded stage-1 pipeline, where it came from and its defaults; ``refiner`` says whether the
    refiner's weights were found (release only; loaded when refining)."""

    pipeline: Pipeline
    source: ModelSource
    defaults: Defaults
    refiner: bool


def load_model(
    model: str = "demo",
    *,
    device: str = "auto",
    dtype: str = "auto",
    offload: str = "none",
    backend: str = "auto",
    refiner: bool = False,
    demo_dir: str = "",
    model_path: str = "",
    config: str = "",
    vae_path: str = "",
    text_encoder_path: str = "",
    refiner_checkpoint: str = "",
    refiner_gemma_root: str = "",
) -> LoadedModel:
    """The demo model (``demo_dir``: another demo folder) or the release (empty paths: the official files
    from the Hugging Face cache), on ``device`` (``"auto"``: CUDA when present) in ``dtype`` (``"auto"``:
    bfloat16 on CUDA, float32 on the CPU) with the ``offload`` mode and op ``backend`` of ``sana-wm
    generate``. ``refiner`` (release only) also finds the refiner's weights."""
    if model not in MODELS:
        raise InputError(f"model: {model!r} is not one of {', '.join(MODELS)}")
    release = {
        "model_path": model_path,
        "config": config,
        "vae_path": vae_path,
        "text_encoder_path": text_encoder_path,
    }
    given = {k: v.strip() for k, v in release.items() if v.strip()}
    if model == "demo":
        if given or refiner:
            extra = ", ".join([*given, *(["refiner"] if refiner else [])])
            raise InputError(f"model demo: {extra} belong to the release (the demo model has no refiner)")
        source = choose_model(demo_dir=demo_dir.strip() or None)
    else:
        if demo_dir.strip():
            raise InputError("demo_dir: only with model demo")
        source = choose_model(
            official=True,
            refiner_checkpoint=refiner_checkpoint.strip() or None,
            refiner_gemma_root=refiner_gemma_root.strip() or None,
            **given,
        )
    runtime = RuntimeSettings(
        device=None if device == "auto" else device,
        dtype=None if dtype == "auto" else dtype,
        backend=backend,
        offload=offload,  # type: ignore[arg-type]
    )
    from sana_wm.inference.run import load

    pipeline = load(source, runtime, refiner=refiner)
    return LoadedModel(pipeline, source, source.defaults(), refiner)


def camera_from_action(
    action: str,
    *,
    mapping: str = "v1",
    translation_speed: float = 0.0,
    rotation_speed_deg: float = 0.0,
    pitch_limit_deg: float = 0.0,
) -> CameraPath:
    """:meth:`CameraPath.from_action`; a speed or limit <= 0 takes the action language's default."""
    return CameraPath.from_action(
        action,
        mapping=mapping,
        translation_speed=translation_speed if translation_speed > 0 else None,
        rotation_speed_deg=rotation_speed_deg if rotation_speed_deg > 0 else None,
        pitch_limit_deg=pitch_limit_deg if pitch_limit_deg > 0 else None,
    )


def camera_from_file(path: str, *, mapping: str = "v1") -> CameraPath:
    """:meth:`CameraPath.from_file`: ``(F, 4, 4)`` camera-to-world poses in a ``.npy`` file."""
    return CameraPath.from_file(str(Path(path.strip()).expanduser()), mapping=mapping)


def image_from_comfy(image_BHWC: torch.Tensor) -> Image.Image:
    """The first image of a ComfyUI ``IMAGE`` batch as RGB (``round(x * 255)``, clamped)."""
    if not isinstance(image_BHWC, torch.Tensor) or image_BHWC.ndim != 4 or image_BHWC.shape[-1] < 3:
        shape = tuple(getattr(image_BHWC, "shape", ()))
        raise InputError(f"image: expected a ComfyUI IMAGE (B, H, W, C) with C >= 3, got {shape}")
    pixels = (image_BHWC[0, :, :, :3].detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(pixels.numpy())


def frames_to_comfy(frames_FHW3: np.ndarray) -> torch.Tensor:
    """uint8 frames ``(F, H, W, 3)`` as a ComfyUI ``IMAGE``: float32 ``x / 255``."""
    return torch.from_numpy(np.ascontiguousarray(frames_FHW3)).float() / 255.0


def parse_intrinsics(text: str) -> np.ndarray | None:
    """``"fx, fy, cx, cy"`` (pixels of the input image) as float32 ``(4,)``; an empty string is None."""
    if not text.strip():
        return None
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"intrinsics: expected four numbers 'fx, fy, cx, cy', got {text!r}") from None
    if len(values) != 4:
        raise InputError(f"intrinsics: expected four numbers 'fx, fy, cx, cy', got {len(values)}")
    return np.asarray(values, dtype=np.float32)


def stage1(
    model: LoadedModel,
    image_BHWC: torch.Tensor,
    camera: CameraPath,
    prompt: str,
    *,
    negative_prompt: str = "",
    seed: int = -1,
    steps: int = 0,
    cfg_scale: float = -1.0,
    flow_shift: float = 0.0,
    num_frames: int = 0,
    height: int = 0,
    width: int = 0,
    sampler: str = "default",
    intrinsics: str = "",
) -> GenerationOutput:
    """Stage 1: the first image of ``image_BHWC`` + ``prompt`` along ``camera`` -> latents (frames decode
    lazily). Numbers <= 0 (``cfg_scale`` < 0, ``seed`` < 0), ``sampler`` ``"default"`` take the model's
    defaults. ``intrinsics`` ``"fx, fy, cx, cy"`` in pixels of the image; empty: the demo model's camera
    (a centred 70 degree field of view), or, for the release, estimated from the image."""
    d = model.defaults
    image = image_from_comfy(image_BHWC)
    sampling = {
        "num_frames": num_frames if num_frames > 0 else d.num_frames,
        "steps": steps if steps > 0 else d.steps,
        "cfg_scale": cfg_scale if cfg_scale >= 0 else d.cfg_scale,
        "flow_shift": flow_shift if flow_shift > 0 else d.flow_shift,
        "sampler": sampler if sampler != "default" else d.sampler,
        "seed": seed if seed >= 0 else d.seed,
        "height": height if height > 0 else d.height,
        "width": width if width > 0 else d.width,
        "negative_prompt": negative_prompt,
    }
    given = parse_intrinsics(intrinsics)
    if given is None and model.source.is_demo:
        from sana_wm.inference.demo_model import centred_intrinsics

        given = centred_intrinsics(image.height, image.width)
    request = GenerationRequest(
        image=image,
        prompt=prompt,
        camera=dataclasses.replace(camera, intrinsics=given),
        sampling=SamplingSettings(**sampling),  # type: ignore[arg-type]
        fps=d.fps,
    )
    return model.pipeline(request, progress=False)


def refine(
    model: LoadedModel,
    video: GenerationOutput,
    prompt: str,
    settings: RefinerSettings | None = None,
) -> GenerationOutput:
    """The stage-2 refiner on a stage-1 result of ``model`` (:func:`sana_wm.inference.two_stage.refine`):
    F - 1 frames. Only a release loaded with ``refiner=True`` has one."""
    if not model.refiner or model.pipeline.refiner_weights is None:
        what = "the demo model has no refiner" if model.source.is_demo else "load the release with refiner on"
        raise InputError(f"refine: {what}")
    if video.stage1 is not None:
        raise InputError("refine: this video is refined already")
    from sana_wm.inference.two_stage import refine as refine_stage1

    settings = settings or RefinerSettings()
    settings.check_frames(video.latents.shape[2])
    return refine_stage1(
        model.pipeline, video, prompt, settings=settings, fps=model.defaults.fps, progress=False
    )


def decode(video: GenerationOutput) -> torch.Tensor:
    """The video's frames as a ComfyUI ``IMAGE`` ``(F, H, W, 3)``: sana-wm's uint8 frames / 255."""
    return frames_to_comfy(video.frames.numpy())


def trajectory_preview(camera: CameraPath, title: str = "") -> torch.Tensor:
    """The trajectory picture of ``sana-wm trajectory`` as a ComfyUI ``IMAGE`` ``(1, 600, 1200, 3)``."""
    from sana_wm.viz.trajectory_plot import render_trajectory

    pixels = render_trajectory(
        camera.c2w_F44,
        intrinsics=camera.intrinsics,
        title=title.strip() or camera.action or camera.camera_file,
    )
    return frames_to_comfy(pixels[None])
