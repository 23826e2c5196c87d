"""A whole ``generate`` / ``demo`` run as the user describes it: files and numbers in, files out.

:class:`GenerateJob` holds what the user gave (paths, flags; None = the chosen model's default from its row
of the defaults table). :func:`run_job` reads and checks every input, turns them into a
:class:`GenerationRequest`, loads the model, generates and writes the mp4, sidecar, optional latents and
trajectory. All input is checked, and the output folder found usable, before any weight is loaded; nothing
is written unless generation succeeds.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.contrib.logging import logging_redirect_tqdm

from sana_wm.camera import align_num_frames, load_intrinsics
from sana_wm.errors import InputError
from sana_wm.inference.outputs import (
    OutputSpec,
    check_output_path,
    save_latents,
    save_trajectory,
    write_video,
)
from sana_wm.inference.pipeline import GenerationOutput, Pipeline
from sana_wm.inference.request import (
    CameraPath,
    GenerationRequest,
    RefinerSettings,
    RuntimeSettings,
    SamplingSettings,
)
from sana_wm.inference.source import ModelSource
from sana_wm.latent_shape import LTX2_STRIDE
from sana_wm.utils.image import load_image
from sana_wm.utils.prompt import read_prompt_file
from sana_wm.utils.video_io import write_sidecar

log = logging.getLogger("sana_wm")


@dataclass(frozen=True, kw_only=True)
class GenerateJob:
    """One run of ``sana-wm generate`` (or ``demo``); None fields take the model's defaults."""

    source: ModelSource
    runtime: RuntimeSettings = RuntimeSettings()
    output_dir: str
    name: str = "output"
    image: str | None = None
    prompt_file: str | None = None
    prompt_text: str | None = None
    action: str | None = None
    camera: str | None = None
    action_mapping: str | None = None
    translation_speed: float | None = None
    rotation_speed_deg: float | None = None
    pitch_limit_deg: float | None = None
    intrinsics: str | None = None
    num_frames: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    flow_shift: float | None = None
    sampler: str | None = None
    negative_prompt: str = ""
    seed: int | None = None
    fps: float | None = None
    height: int | None = None
    width: int | None = None
    overlay: bool = True
    save_latents: bool = False
    save_stage1: bool = False
    refine: bool = True
    refiner: dict[str, Any] = field(default_factory=dict)  # RefinerSettings fields given by the user
    trajectory: bool = False  # also write trajectory.npy / .png (the demo command)
    output_flag: str = "--output_dir"  # how the user named the output folder, for errors
    command: str = "generate"


@dataclass(frozen=True)
class JobResult:
    """What :func:`run_job` wrote and made."""

    video: Path
    sidecar: Path
    request: GenerationRequest
    output: GenerationOutput
    timings: dict[str, float]


def prepare(job: GenerateJob) -> tuple[GenerationRequest, OutputSpec]:
    """Read and check every input of ``job`` (nothing heavy is loaded): the request and where it goes."""
    source, demo = job.source, job.source.demo_dir is not None
    defaults = source.defaults()
    check_output_path(Path(job.output_dir), job.name, flag=job.output_flag)
    if not demo:
        if job.image is None:
            raise InputError("--image: required for the released model (only the demo model has a default)")
        if job.prompt_file is None and job.prompt_text is None:
            raise InputError("--prompt / --prompt_text: the released model needs a prompt")
        if job.camera is None and job.action is None:
            raise InputError("--action / --camera: the released model needs a camera path")

    def pick(name: str) -> Any:
        value = getattr(job, name)
        return getattr(defaults, name) if value is None else value

    sampling = SamplingSettings(
        num_frames=pick("num_frames"),
        steps=pick("steps"),
        cfg_scale=pick("cfg_scale"),
        flow_shift=pick("flow_shift"),
        sampler=pick("sampler"),
        negative_prompt=job.negative_prompt,
        seed=pick("seed"),
        height=pick("height"),
        width=pick("width"),
    )
    image = _first_frame(job)
    prompt = _prompt(job, demo)
    action, mapping = job.action, job.action_mapping or "v1"
    if job.camera is None and action is None:  # the model's own default path
        action, mapping = defaults.action, defaults.action_mapping
    if job.camera is not None:
        camera = CameraPath.from_file(job.camera, mapping=mapping)
    else:
        camera = CameraPath.from_action(
            action,
            mapping=mapping,
            translation_speed=job.translation_speed,
            rotation_speed_deg=job.rotation_speed_deg,
            pitch_limit_deg=job.pitch_limit_deg,
        )
    # The frame count the request will have (it checks the camera path is long enough first).
    long_enough = len(camera) > LTX2_STRIDE.time
    num_frames = align_num_frames(sampling.num_frames, len(camera)) if long_enough else sampling.num_frames
    intrinsics = _intrinsics(job, demo, image, num_frames)
    camera = dataclasses.replace(camera, intrinsics=intrinsics, intrinsics_file=job.intrinsics)
    refiner = RefinerSettings(**job.refiner) if job.refine and not demo else None
    request = GenerationRequest(
        image=image,
        prompt=prompt,
        camera=camera,
        sampling=dataclasses.replace(sampling, num_frames=num_frames),
        refiner=refiner,
        fps=pick("fps"),
    )
    spec = OutputSpec(
        folder=Path(job.output_dir),
        name=job.name,
        fps=request.fps,
        overlay=job.overlay,
        action_mapping=mapping,
        save_latents=job.save_latents,
        save_stage1=job.save_stage1 and refiner is not None,
        flag=job.output_flag,
        frames_requested=sampling.num_frames,
    )
    return request, spec


def run_job(job: GenerateJob, *, progress: bool = True) -> JobResult:
    """:func:`prepare`, :func:`sana_wm.inference.load`, :func:`sana_wm.inference.generate`, then write."""
    from sana_wm.inference.run import generate, load

    started = time.perf_counter()
    if job.save_stage1 and not job.refine:
        log.warning("--save_stage1: ignored with --no_refiner (the video is the stage-1 video)")
    request, spec = prepare(job)
    with logging_redirect_tqdm():  # warnings print above the progress bars, not into their lines
        load_start = time.perf_counter()
        pipe = load(job.source, job.runtime, refiner=request.refiner is not None)
        timings = {"load": time.perf_counter() - load_start}
        out = generate(pipe, request, progress=progress)
        timings.update(out.timings)
        return _write(job, request, spec, pipe, out, timings, started)


def _write(
    job: GenerateJob,
    request: GenerationRequest,
    spec: OutputSpec,
    pipe: Pipeline,
    out: GenerationOutput,
    timings: dict[str, float],
    started: float,
) -> JobResult:
    """Decode and write the videos, latents, sidecars and trajectory of a finished generation."""

    videos = [(spec.name, out)]
    if out.stage1 is not None and spec.save_stage1:
        videos.append((f"{spec.name}_stage1", out.stage1))
    for stem, video in videos:
        suffix = "" if video is out else "_stage1"
        write_start = time.perf_counter()
        write_video(spec.folder / f"{stem}.mp4", video, spec)
        timings[f"decode{suffix}"] = video.timings.get("decode", 0.0)
        timings[f"write{suffix}"] = time.perf_counter() - write_start - timings[f"decode{suffix}"]
        if spec.save_latents:
            save_latents(spec.folder / f"{stem}_latents.safetensors", video, seed=request.sampling.seed)
    memory = dict(out.peak_memory_gib)
    if len(videos) > 1 and "decode" in out.stage1.peak_memory_gib:
        memory["decode_stage1"] = out.stage1.peak_memory_gib["decode"]
    timings["total"] = time.perf_counter() - started
    for stem, video in videos:
        write_sidecar(
            spec.folder / f"{stem}.json",
            c2w=video.c2w,
            intrinsics=video.intrinsics,
            settings=sidecar_settings(job, request, spec, video, pipe, timings, memory, stem),
            seed=request.sampling.seed,
        )
    if job.trajectory:
        npy, png = save_trajectory(
            spec.folder, out.c2w, title=request.camera.action or request.camera.camera_file
        )
        log.info("wrote %s and %s (%d poses)", npy, png, len(out.c2w))
    return JobResult(
        spec.folder / f"{spec.name}.mp4", spec.folder / f"{spec.name}.json", request, out, timings
    )


def _first_frame(job: GenerateJob) -> Any:
    if job.image is not None:
        return load_image(job.image)
    from sana_wm.inference.demo_model import demo_first_frame

    return demo_first_frame(job.source.demo_dir)


def _prompt(job: GenerateJob, demo: bool) -> str:
    if job.prompt_file is not None:
        return read_prompt_file(job.prompt_file)
    if job.prompt_text is not None:
        prompt = job.prompt_text.strip()
        if not prompt and not demo:
            raise InputError("--prompt_text: the prompt is empty")
        return prompt
    return ""


def _intrinsics(job: GenerateJob, demo: bool, image: Any, num_frames: int) -> Any:
    """``--intrinsics`` fitted to the frames; for the demo model its first frame's, or a centred 70 deg
    camera for another image; None (estimated from the image by the pipeline) for the release."""
    if job.intrinsics is not None:
        return load_intrinsics(job.intrinsics, num_frames, image_hw=(image.height, image.width))
    if not demo:
        return None
    from sana_wm.inference.demo_model import SYNTHETIC_NOTE, centred_intrinsics, read_demo_settings

    if job.image is None:
        return read_demo_settings(job.source.demo_dir).intrinsics_array()
    log.warning(SYNTHETIC_NOTE)
    return centred_intrinsics(image.height, image.width)


def sidecar_settings(
    job: GenerateJob,
    request: GenerationRequest,
    spec: OutputSpec,
    video: GenerationOutput,
    pipe: Pipeline,
    timings: dict[str, float],
    memory: dict[str, float],
    stem: str,
) -> dict[str, Any]:
    """The sidecar's settings for ``video`` (the refined or the stage-1 result); timings are the run's."""
    weights, source, sampling, camera = pipe.weights, job.source, request.sampling, request.camera
    return {
        "command": job.command,
        "video": f"{stem}.mp4",
        "latents": f"{stem}_latents.safetensors" if spec.save_latents else None,
        "image": job.image or "(the demo model's bundled first frame)",
        "image_size_hw": [request.image.height, request.image.width],
        "prompt": request.prompt,
        "negative_prompt": sampling.negative_prompt,
        "action": camera.action,
        "camera": camera.camera_file,
        "action_mapping": camera.action_mapping,
        "translation_speed": camera.translation_speed,
        "rotation_speed_deg": camera.rotation_speed_deg,
        "pitch_limit_deg": camera.pitch_limit_deg,
        "intrinsics_file": camera.intrinsics_file,
        "intrinsics_source": video.intrinsics_source,
        "intrinsics_convention": "pixels of the generated frames (after the resize + centre crop)",
        "num_frames_requested": spec.frames_requested,
        "num_frames": video.num_frames,
        "num_frames_stage1": request.num_frames,
        "height": sampling.height,
        "width": sampling.width,
        "fps": request.fps,
        "steps": sampling.steps,
        "cfg_scale": sampling.cfg_scale,
        "flow_shift": sampling.flow_shift,
        "sampler": sampling.sampler,
        "refiner": video.stage1 is not None,
        "refiner_settings": _refiner_settings(request.refiner, pipe.refiner_weights),
        "action_overlay": spec.overlay,
        "model": source.kind,
        "model_path": str(weights.model) if weights else (source.model_path or str(source.demo_dir)),
        "config": str(weights.config) if weights and weights.config else source.config,
        "vae_path": str(weights.vae) if weights else source.vae_path,
        "text_encoder_path": str(weights.text_encoder) if weights else source.text_encoder_path,
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "offload": pipe.offload,
        "backend": pipe.backend,
        "quantize": job.runtime.quantize,
        "lora": job.runtime.lora,
        "lora_scale": job.runtime.lora_scale if job.runtime.lora else None,
        "timings_s": timings,
        "peak_memory_gib": memory,
    }


def _refiner_settings(settings: RefinerSettings | None, paths: Any) -> dict[str, Any] | None:
    """How the refiner ran (the same in both sidecars of a run), or None without the refiner."""
    if settings is None:
        return None
    chunked = settings.mode == "chunk_causal"
    return {
        "mode": settings.mode,
        "sink_size": settings.sink_size,
        "block_size": settings.block_size if chunked else None,
        "kv_max_frames": settings.kv_max_frames if chunked else None,
        "seed": settings.seed,
        "fp8": settings.fp8,
        "checkpoint": str(paths.transformer.parent) if paths else None,
        "gemma_root": str(paths.text_encoder) if paths else None,
        "dropped_frames": "the first decoded frame; poses and intrinsics are those of stage-1 frames 1..F-1",
    }
