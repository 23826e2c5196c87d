"""A whole ``sana-wm stream`` run: the inputs of ``generate`` plus the streaming settings in, a growing mp4
and its sidecar out.

The inputs (image, prompt, camera path, intrinsics, frame count, seed, output place) are read and checked by
:func:`sana_wm.inference.job.prepare` exactly as for ``generate``; the frame count is then snapped down to
``24k + 1`` (whole chunks). The model is the bundled demo model's chunk-causal version unless weights are
given (the streaming release by default: :mod:`sana_wm.inference.streaming_weights`). The mp4 is written
while the chunks come (:class:`~sana_wm.utils.video_io.StreamingVideoWriter`: fragmented, playable at any
moment, a valid prefix if the run is interrupted), with the action HUD drawn from the whole path; the JSON
sidecar (poses of the emitted frames, settings, per-chunk timings) is written at the end.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sana_wm.errors import InputError
from sana_wm.inference.job import GenerateJob, prepare
from sana_wm.inference.pipeline import Pipeline
from sana_wm.inference.request import RuntimeSettings
from sana_wm.inference.source import ModelSource
from sana_wm.inference.streaming import StreamSession, StreamSettings, snap_stream_frames
from sana_wm.samplers.chunked import STUDENT_STEPS
from sana_wm.utils.device import resolve_device, resolve_dtype
from sana_wm.utils.video_io import StreamingVideoWriter, write_sidecar

log = logging.getLogger("sana_wm")


@dataclass(frozen=True, kw_only=True)
class StreamJob:
    """One ``sana-wm stream`` run: the shared ``generate`` inputs plus the streaming settings.

    ``step_list`` None: the model's many-step schedule (the demo model's ``steps`` and ``flow_shift``; the
    chunk-causal teacher); the released student takes :data:`STUDENT_STEPS`.
    """

    inputs: GenerateJob
    step_list: str | None = None
    num_cached_blocks: int = 2
    sink: bool = True
    refine: bool = True  # the release's chunk-causal refiner (never for the demo model, which has none)
    refiner_kv_max_frames: int = 11
    refiner_seed: int = 42
    refiner_fp8: bool = False
    cuda_graphs: bool = True


@dataclass(frozen=True)
class StreamResult:
    video: Path
    sidecar: Path
    frames: int
    chunks: int
    timings: dict[str, Any]


def load_stream_pipeline(
    source: ModelSource, runtime: RuntimeSettings, *, refiner: bool = False, refiner_fp8: bool = False
) -> tuple[Pipeline, Any]:
    """The chunk-causal stage-1 pipeline of ``source`` (the demo model's chunk-causal version, or streaming
    weights: a chunk-causal config is required) and, with ``refiner``, the release's refiner
    (:class:`~sana_wm.inference.refiner.Refiner`, else None). Everything missing is reported before any
    weight is loaded."""
    from sana_wm.inference.run import apply_lora, quantize, resolve_backend

    device = resolve_device(runtime.device)
    dtype = resolve_dtype(runtime.dtype, device)
    backend = resolve_backend(runtime.backend, device, demo=source.is_demo)
    if source.demo_dir is not None:
        from sana_wm.inference.demo_model import load_demo_pipeline

        pipe = load_demo_pipeline(device, directory=source.demo_dir, dtype=dtype, backend=backend)
        pipe.transformer = _demo_chunk_causal(pipe.transformer, Path(source.demo_dir), device, dtype)
        return quantize(apply_lora(pipe, runtime), runtime.quantize), None
    from sana_wm.inference.streaming_weights import load_streaming_transformer, resolve_streaming_weights
    from sana_wm.text_encoder import TextEncoder
    from sana_wm.vae import VideoVAE

    paths = resolve_streaming_weights(
        source.model_path,
        config=source.config if isinstance(source.config, str) else None,
        vae_path=source.vae_path,
        text_encoder_path=source.text_encoder_path,
        refiner=refiner,
        refiner_checkpoint=source.refiner_checkpoint,
        refiner_gemma_root=source.refiner_gemma_root,
    )
    home = device if runtime.offload == "none" else torch.device("cpu")
    transformer = load_streaming_transformer(paths, source.config, home, dtype)
    text_encoder = TextEncoder.from_pretrained(
        paths.text_encoder, dtype=dtype, device=home, local_files_only=True
    )
    vae = VideoVAE.from_pretrained(paths.vae, dtype=dtype, device=home, local_files_only=True, subfolder=None)
    pipe = Pipeline(
        transformer, text_encoder, vae, device=device, backend=backend or "torch", offload=runtime.offload
    )
    quantize(apply_lora(pipe, runtime), runtime.quantize)
    stage2 = None
    if refiner and paths.refiner is not None:
        from sana_wm.inference.refiner import Refiner

        stage2 = Refiner.from_paths(
            paths.refiner, device=device, dtype=dtype, offload=runtime.offload, fp8=refiner_fp8
        )
    return pipe, stage2


def _demo_chunk_causal(
    bidirectional: torch.nn.Module, folder: Path, device: torch.device, dtype: torch.dtype
) -> torch.nn.Module:
    """The demo folder's chunk-causal transformer (its patch over the bidirectional weights); a folder without
    one streams the bidirectional weights chunk-causally (they were not trained for it: a warning says so)."""
    from sana_wm.models import SanaWMTransformer

    patch = folder / "transformer_chunk_causal.safetensors"
    if patch.is_file():
        from sana_wm.inference.demo_patch import load_chunk_causal_demo_transformer

        return load_chunk_causal_demo_transformer(folder, device, dtype).eval()
    log.warning("%s: no chunk-causal patch; streaming the bidirectional demo weights chunk-causally", folder)
    config = dataclasses.replace(bidirectional.config, chunk_size=3)
    with torch.device("meta"):
        model = SanaWMTransformer(config)
    model.load_state_dict(bidirectional.state_dict(), assign=True)
    return model.eval()


def run_stream_job(job: StreamJob, *, progress: bool = True) -> StreamResult:
    """Check the inputs, load the model, stream, and write the mp4 (growing) and the sidecar."""
    started = time.perf_counter()
    inputs = job.inputs
    request, spec = prepare(inputs)
    frames = snap_stream_frames(request.num_frames)
    if frames > len(request.camera):
        raise InputError(
            f"--num_frames: a stream needs 24k + 1 frames; the camera path has {len(request.camera)}"
        )
    if frames != request.num_frames:
        log.info("stream: %d frames (whole chunks of 24 frames after the first)", frames)
    video_path, sidecar_path = spec.folder / f"{spec.name}.mp4", spec.folder / f"{spec.name}.json"
    if video_path.exists():
        raise InputError(f"{spec.flag}: {video_path} exists (choose another --name or remove it)")
    sampling = request.sampling
    demo = inputs.source.demo_dir is not None
    step_list = job.step_list if job.step_list is not None else (None if demo else STUDENT_STEPS)
    settings = StreamSettings(
        height=sampling.height,
        width=sampling.width,
        step_list=step_list,
        steps=sampling.steps,
        flow_shift=sampling.flow_shift,
        cfg_scale=sampling.cfg_scale if demo or inputs.cfg_scale is not None else 1.0,
        negative_prompt=sampling.negative_prompt,
        num_cached_blocks=job.num_cached_blocks,
        sink=job.sink,
        seed=sampling.seed,
        cuda_graphs=job.cuda_graphs,
    )
    load_start = time.perf_counter()
    if job.refine and not demo and job.refiner_kv_max_frames < 2:
        raise InputError(
            f"--refiner_kv_max_frames: at least 2 (the sink and one frame), got {job.refiner_kv_max_frames}"
        )
    if inputs.runtime.offload not in ("none", "group"):
        raise InputError("--offload: a stream uses every component for every chunk: none or group")
    pipe, stage2 = load_stream_pipeline(
        inputs.source, inputs.runtime, refiner=job.refine and not demo, refiner_fp8=job.refiner_fp8
    )
    timings: dict[str, Any] = {"load": time.perf_counter() - load_start}
    refine = None
    if stage2 is not None:
        from sana_wm.inference.refiner_stream import RefinerStream
        from sana_wm.inference.streaming import refiner_stage

        stream = RefinerStream(
            stage2.transformer,
            stage2.encode_prompt(request.prompt),
            kv_max_frames=job.refiner_kv_max_frames,
            seed=job.refiner_seed,
            device=pipe.device,
        )
        stage2.release_text_encoder()
        refine = refiner_stage(stream)
    from sana_wm.inference.pipeline import _source_intrinsics

    c2w_F44 = request.c2w_F44[:frames]
    source_F4, intrinsics_source = _source_intrinsics(request.image, request.camera.intrinsics, frames)
    session = StreamSession.create(
        pipe, request.image, request.prompt, c2w_F44, source_F4[0], frames, settings, refiner=refine
    )
    controls = _hud_controls(c2w_F44[1:] if refine is not None else c2w_F44) if spec.overlay else None
    chunk_seconds, emitted = [], 0
    bar = tqdm(total=len(session.segments), desc="stream", unit="chunk", disable=not progress)
    with StreamingVideoWriter(video_path, fps=spec.fps) as writer:
        for chunk in session:
            frames_u8 = chunk.frames
            if controls is not None:
                frames_u8 = _draw_hud(frames_u8, controls, chunk.first_frame, spec.action_mapping)
            writer.write_chunk(frames_u8)
            emitted += frames_u8.shape[0]
            chunk_seconds.append(chunk.seconds)
            bar.update(1 if chunk.index < len(session.segments) else 0)
            bar.set_postfix(frames=emitted, s=f"{chunk.seconds:.1f}")
    bar.close()
    timings.update(
        first_chunk=chunk_seconds[0],
        stream=chunk_seconds[-1],
        chunk_ready_s=[round(s, 3) for s in chunk_seconds],
        total=time.perf_counter() - started,
    )
    first_pose = 1 if refine is not None else 0  # the refiner's sink frame is not in the video
    write_sidecar(
        sidecar_path,
        c2w=c2w_F44[first_pose : first_pose + emitted],
        intrinsics=session.intrinsics_4[None].repeat(emitted, axis=0),
        settings=_sidecar(job, request, spec, settings, pipe, intrinsics_source, emitted, timings),
        seed=settings.seed,
    )
    return StreamResult(video_path, sidecar_path, emitted, len(session.segments), timings)


def _hud_controls(c2w_F44: np.ndarray) -> np.ndarray:
    from sana_wm.viz.overlay import controls_from_c2w

    return controls_from_c2w(c2w_F44)


def _draw_hud(frames: np.ndarray, controls: np.ndarray, first: int, mapping: str) -> np.ndarray:
    from sana_wm.viz.overlay import HUD_KEY_LABELS, draw_hud

    last = controls.shape[0] - 1
    drawn = [
        draw_hud(frame, controls[min(first + i, last)], key_labels=HUD_KEY_LABELS[mapping])
        for i, frame in enumerate(frames)
    ]
    return np.stack(drawn) if drawn else frames


def _sidecar(
    job: StreamJob,
    request: Any,
    spec: Any,
    settings: StreamSettings,
    pipe: Pipeline,
    intrinsics_source: str,
    frames: int,
    timings: dict[str, Any],
) -> dict[str, Any]:
    camera = request.camera
    source = job.inputs.source
    return {
        "command": "stream",
        "video": f"{spec.name}.mp4",
        "image": job.inputs.image or "(the demo model's bundled first frame)",
        "prompt": request.prompt,
        "action": camera.action,
        "camera": camera.camera_file,
        "action_mapping": camera.action_mapping,
        "intrinsics_source": intrinsics_source,
        "intrinsics_convention": "pixels of the generated frames (after the resize + centre crop)",
        "num_frames_requested": spec.frames_requested,
        "num_frames": frames,
        "fps": spec.fps,
        "stream": dataclasses.asdict(settings),
        "refiner": (
            {
                "kv_max_frames": job.refiner_kv_max_frames,
                "seed": job.refiner_seed,
                "block_size": 3,
                "sink_size": 1,
            }
            if job.refine and job.inputs.source.demo_dir is None
            else None
        ),
        "action_overlay": spec.overlay,
        "model": source.kind,
        "model_path": source.model_path or str(source.demo_dir),
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "backend": pipe.backend,
        "quantize": job.inputs.runtime.quantize,
        "lora": job.inputs.runtime.lora,
        "lora_scale": job.inputs.runtime.lora_scale if job.inputs.runtime.lora else None,
        "timings_s": timings,
        "peak_memory_gib": (
            torch.cuda.max_memory_allocated(pipe.device) / 2**30 if pipe.device.type == "cuda" else None
        ),
    }
