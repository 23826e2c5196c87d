"""``sana-wm generate``: first image + prompt + camera path -> mp4, JSON sidecar and optionally the latents.

Two models: with no weight flags it runs the bundled demo model (:mod:`sana_wm.demo_model`: CPU-sized, trained
on procedural worlds, prompt-free, no refiner; without ``--image`` it starts from the bundled held-out first
frame along the default action string). ``--official`` or any weight flag selects the released SANA-WM,
whose flags and defaults follow the official ``inference_sana_wm.py`` (underscore names; hyphen aliases
accepted).
By default stage 1 is followed by the stage-2 refiner (:mod:`sana_wm.two_stage`): F requested frames give
an F - 1 frame video whose poses are ``c2w[1:F]``; ``--no_refiner`` writes the F stage-1 frames instead.
Every input is checked and every weight file found before any weight is loaded, and nothing is written
unless generation succeeds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sana_wm.camera import align_num_frames, load_intrinsics
from sana_wm.cli._args import add_camera_path_args, flag
from sana_wm.cli.trajectory import camera_path
from sana_wm.demo import HUD_KEY_LABELS
from sana_wm.errors import InputError
from sana_wm.offload import OFFLOAD_MODES, prefer_expandable_segments
from sana_wm.pipeline import DEFAULT_FLOW_SHIFT, DTYPES, SAMPLERS, check_settings, resolve_device
from sana_wm.utils.atomic import atomic_output
from sana_wm.utils.image import MODEL_HEIGHT, MODEL_WIDTH, load_image
from sana_wm.utils.prompt import read_prompt_file
from sana_wm.utils.video_io import VideoWriter, write_sidecar

if TYPE_CHECKING:
    import torch

    from sana_wm.demo_model import DemoSettings

log = logging.getLogger("sana_wm")
# sana_wm.refiner.MODES, spelled out: importing the refiner (and diffusers) would slow every sana-wm command.
REFINER_MODES = ("single_shot", "chunk_causal")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate a video from an image, a prompt and a camera path")
    p.add_argument(
        "--image",
        metavar="FILE",
        help="first-frame image (any size; resized and centre-cropped); required for the released model, "
        "default for the demo model: its bundled held-out frame",
    )
    text = p.add_mutually_exclusive_group()
    text.add_argument("--prompt", metavar="FILE", help="UTF-8 text file holding the prompt")
    text.add_argument(*flag("--prompt_text"), dest="prompt_text", metavar="TEXT", help="the prompt itself")
    add_camera_path_args(p, required=False)
    p.add_argument(
        "--intrinsics",
        metavar="FILE.npy",
        help="(4,) [fx,fy,cx,cy], (3,3), (F,4) or (F,3,3) in pixels of --image "
        "(default: EXIF focal length, else Pi3X if installed, else a 60 deg horizontal FOV)",
    )
    p.add_argument(
        *flag("--num_frames"),
        dest="num_frames",
        type=int,
        help="frames to generate (capped by the camera path, snapped to 8k+1; default 161 = 10 s at 16 fps, "
        "demo model 81)",
    )
    p.add_argument(*flag("--output_dir"), dest="output_dir", required=True, metavar="DIR")
    p.add_argument("--name", default="output", help="file name stem of the outputs (default: output)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--steps", "--step", dest="steps", type=int, help="sampling steps (default 60; demo 30)")
    p.add_argument(*flag("--cfg_scale"), dest="cfg_scale", type=float, help="guidance (default 5; demo 1)")
    p.add_argument(*flag("--flow_shift"), dest="flow_shift", type=float, help="default 9.8 (demo 3)")
    p.add_argument(*flag("--negative_prompt"), dest="negative_prompt", default="", metavar="TEXT")
    p.add_argument("--sampler", choices=sorted(SAMPLERS), help="default ltx_euler")
    p.add_argument("--fps", type=float, help="frame rate of the mp4 (default 16)")
    p.add_argument("--height", type=int, help="default 704, the only height the release knows (demo 192)")
    p.add_argument("--width", type=int, help="default 1280, the only width the release knows (demo 352)")
    p.add_argument(
        *flag("--no_action_overlay"),
        dest="no_action_overlay",
        action="store_true",
        help="skip rendering the WASD + joystick overlay",
    )
    p.add_argument(
        *flag("--save_latents"),
        dest="save_latents",
        action="store_true",
        help="also write the latents of each video: <name>_latents.safetensors (refined unless "
        "--no_refiner), with --save_stage1 also <name>_stage1_latents.safetensors",
    )
    weights = p.add_argument_group(
        "weights (default: the bundled demo model; --official or any weight flag: the released SANA-WM)"
    )
    weights.add_argument(
        "--official",
        action="store_true",
        help="the released SANA-WM from the Hugging Face cache (downloaded if missing, ~96 GB)",
    )
    weights.add_argument(
        *flag("--demo_dir"),
        dest="demo_dir",
        metavar="DIR",
        help="a demo-model folder written by scripts/train_demo_model.py (default: the bundled one)",
    )
    weights.add_argument(
        *flag("--model_path"),
        dest="model_path",
        metavar="FILE",
        help="stage-1 transformer: file, folder or hf://",
    )
    weights.add_argument(
        "--config", help="transformer config: official config.yaml (path or hf://) or a preset name"
    )
    weights.add_argument(
        *flag("--vae_path"), dest="vae_path", metavar="DIR", help="LTX-2 VAE (diffusers folder)"
    )
    weights.add_argument(
        *flag("--text_encoder_path"),
        dest="text_encoder_path",
        metavar="DIR",
        help="Gemma-2 + tokenizer folder",
    )
    refiner = p.add_argument_group(
        "stage-2 refiner (released model only, on by default: F frames requested give F - 1, the first "
        "decoded frame is dropped; the demo model has no stage 2)"
    )
    refiner.add_argument(
        *flag("--no_refiner"), dest="no_refiner", action="store_true", help="write the stage-1 video"
    )
    refiner.add_argument(
        *flag("--save_stage1"),
        dest="save_stage1",
        action="store_true",
        help="also write the stage-1 video <name>_stage1.mp4 (F frames) and its sidecar",
    )
    refiner.add_argument(
        *flag("--refiner_checkpoint"),
        dest="refiner_checkpoint",
        metavar="DIR",
        help="folder (or hf://) holding transformer/ and connectors/ (default: the release's refiner/)",
    )
    refiner.add_argument(
        *flag("--refiner_gemma_root"),
        dest="refiner_gemma_root",
        metavar="DIR",
        help="Gemma-3 folder with its tokenizer (default: the release's refiner/text_encoder)",
    )
    refiner.add_argument(
        *flag("--refiner_mode"),
        dest="refiner_mode",
        choices=REFINER_MODES,
        default="single_shot",
        help="single_shot (default: refined frames see the whole video) or chunk_causal (blocks in order)",
    )
    refiner.add_argument(
        *flag("--refiner_seed"), dest="refiner_seed", type=int, default=42, help="default 42"
    )
    refiner.add_argument(
        *flag("--sink_size"), dest="sink_size", type=int, default=1, help="clean sink latent frames (1)"
    )
    refiner.add_argument(
        *flag("--refiner_block_size"),
        dest="refiner_block_size",
        type=int,
        default=3,
        help="latent frames per chunk_causal block (3)",
    )
    refiner.add_argument(
        *flag("--refiner_kv_max_frames"),
        dest="refiner_kv_max_frames",
        type=int,
        default=11,
        help="sink + history latent frames a chunk_causal block attends to (11)",
    )
    refiner.add_argument(
        *flag("--refiner_fp8"),
        dest="refiner_fp8",
        action="store_true",
        help="store the refiner transformer's weights in float8 (half the bfloat16 weight memory)",
    )
    runtime = p.add_argument_group("runtime")
    runtime.add_argument("--device", help="default: cuda if available, else cpu")
    runtime.add_argument("--dtype", choices=sorted(DTYPES), help="default: bfloat16 on cuda, float32 on cpu")
    runtime.add_argument(
        "--backend",
        choices=("auto", "torch", "triton", "reference"),
        default="auto",
        help="the transformer's ops: auto (default) = triton on CUDA when installed, else torch",
    )
    runtime.add_argument(
        "--offload",
        choices=OFFLOAD_MODES,
        default="none",
        help="model: whole components on the GPU only while used; group: stream transformer blocks",
    )
    runtime.add_argument(
        "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars, warnings only"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    quiet = bool(getattr(args, "quiet", False))
    if quiet:
        _silence_library_progress()
    started = time.perf_counter()
    prefer_expandable_segments(args.offload)  # before anything touches CUDA
    demo = _use_demo_model(args)
    inputs = _check_inputs(args, demo)
    refine = not args.no_refiner
    if args.no_refiner and args.save_stage1:
        log.warning("--save_stage1: ignored with --no_refiner (the video is the stage-1 video)")

    from sana_wm.pipeline import load_pipeline
    from sana_wm.weights import MissingWeightsError

    load_start = time.perf_counter()
    try:
        pipe = (
            _load_demo(args, inputs["backend"])
            if demo is not None
            else load_pipeline(
                args.model_path,
                config=args.config,
                vae_path=args.vae_path,
                text_encoder_path=args.text_encoder_path,
                device=args.device,
                dtype=args.dtype,
                offload=args.offload,
                backend=inputs["backend"],
                refiner=refine,
                refiner_checkpoint=args.refiner_checkpoint,
                refiner_gemma_root=args.refiner_gemma_root,
            )
        )
    except MissingWeightsError as err:
        for line in str(err).splitlines():
            print(f"sana-wm generate: error: {line}", file=sys.stderr)
        return 2
    load_s = time.perf_counter() - load_start

    stage1_kwargs = dict(
        c2w=inputs["c2w"],
        intrinsics=inputs["intrinsics"],
        num_frames=inputs["num_frames"],
        seed=args.seed,
        steps=args.steps,
        cfg_scale=args.cfg_scale,
        flow_shift=args.flow_shift,
        negative_prompt=args.negative_prompt,
        sampler=args.sampler,
        height=args.height,
        width=args.width,
    )
    if refine:
        from sana_wm.two_stage import generate_two_stage

        out = generate_two_stage(
            pipe,
            inputs["image"],
            inputs["prompt"],
            settings=inputs["refiner"],
            fps=args.fps,
            progress=not quiet,
            **stage1_kwargs,
        )
    else:
        out = pipe(inputs["image"], inputs["prompt"], progress=not quiet, **stage1_kwargs)

    out_dir = Path(args.output_dir)
    videos = [(args.name, out)]
    if out.stage1 is not None and args.save_stage1:
        videos.append((f"{args.name}_stage1", out.stage1))
    timings = {"load": load_s, **out.timings}
    for stem, video in videos:
        suffix = "" if video is out else "_stage1"
        write_start = time.perf_counter()
        _write_video(out_dir / f"{stem}.mp4", video, args)
        timings[f"decode{suffix}"] = video.timings.get("decode", 0.0)
        timings[f"write{suffix}"] = time.perf_counter() - write_start - timings[f"decode{suffix}"]
        if args.save_latents:
            _save_latents(out_dir / f"{stem}_latents.safetensors", video, seed=args.seed)

    memory = dict(out.peak_memory_gib)
    if len(videos) > 1 and "decode" in out.stage1.peak_memory_gib:
        memory["decode_stage1"] = out.stage1.peak_memory_gib["decode"]
    timings["total"] = time.perf_counter() - started
    for stem, video in videos:
        settings = _settings(args, inputs, video, pipe, timings, memory, stem)
        write_sidecar(
            out_dir / f"{stem}.json",
            c2w=video.c2w,
            intrinsics=video.intrinsics,
            settings=settings,
            seed=args.seed,
        )
    log.info(
        "wrote %s (%d frames at %g fps, %dx%d) and %s in %.1f s",
        out_dir / f"{args.name}.mp4",
        out.num_frames,
        args.fps,
        args.width,
        args.height,
        out_dir / f"{args.name}.json",
        timings["total"],
    )
    return 0


def _write_video(path: Path, video: Any, args: argparse.Namespace) -> None:
    """Decode ``video`` (a GenerationOutput) into an mp4, with the HUD of its own poses unless disabled."""
    frames = video.frames
    if not args.no_action_overlay:
        from sana_wm.viz.overlay import apply_overlay

        frames = apply_overlay(frames, video.c2w, key_labels=HUD_KEY_LABELS[args.action_mapping])
    with VideoWriter(path, fps=args.fps) as writer:
        writer.write_many(frames)


RELEASE_DEFAULTS: dict[str, Any] = {
    "num_frames": 161,
    "steps": 60,
    "cfg_scale": 5.0,
    "flow_shift": DEFAULT_FLOW_SHIFT,
    "sampler": "ltx_euler",
    "fps": 16.0,
    "height": MODEL_HEIGHT,
    "width": MODEL_WIDTH,
}
_WEIGHT_FLAGS = ("model_path", "config", "vae_path", "text_encoder_path")


def _use_demo_model(args: argparse.Namespace) -> DemoSettings | None:
    """The demo model's settings unless ``--official`` or a weight flag asks for the release (None); fills
    unset defaults from the chosen model."""
    demo = not args.official and all(getattr(args, name) is None for name in _WEIGHT_FLAGS)
    if args.demo_dir is not None and not demo:
        raise InputError("--demo_dir: cannot be combined with --official or the release's weight flags")
    defaults = dict(RELEASE_DEFAULTS)
    settings = None
    if demo:
        from sana_wm.demo_model import DEMO_DIR, demo_available, read_demo_settings

        folder = Path(args.demo_dir) if args.demo_dir is not None else DEMO_DIR
        if not demo_available(folder):
            where = "--demo_dir" if args.demo_dir is not None else "the bundled demo model"
            raise InputError(
                f"{where}: {folder} holds no complete demo model (pass --official for the released weights)"
            )
        args.demo_dir = str(folder)
        settings = read_demo_settings(folder)
        defaults = {name: getattr(settings, name) for name in RELEASE_DEFAULTS}
        if args.camera is None and args.action is None:
            args.action, args.action_mapping = settings.action, settings.action_mapping
        args.no_refiner = True  # the demo model has no stage 2 (its card and --help say so)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return settings


def _load_demo(args: argparse.Namespace, backend: str | None) -> Any:
    from sana_wm.demo_model import load_demo_pipeline
    from sana_wm.pipeline import DTYPES

    extra = {"dtype": DTYPES[args.dtype]} if args.dtype else {}
    # device None: cuda if any; backend None: the demo model's own choice
    return load_demo_pipeline(args.device, directory=args.demo_dir, backend=backend, **extra)


def _resolve_backend(args: argparse.Namespace, device: torch.device, demo: bool) -> str | None:
    """``--backend`` checked; ``auto``: the fastest here (for the demo model its own default, None)."""
    from sana_wm.ops import check_backend, fastest_backend

    if args.backend == "auto":
        return None if demo else fastest_backend(device)
    check_backend(args.backend)
    if args.backend == "triton" and device.type != "cuda":
        raise InputError("--backend triton: the kernels need a CUDA device (use auto or torch here)")
    return args.backend


def _check_inputs(args: argparse.Namespace, demo: DemoSettings | None) -> dict[str, Any]:
    """Read and validate every user input before anything heavy happens."""
    if demo is None:
        if args.image is None:
            raise InputError("--image: required for the released model (only the demo model has a default)")
        if args.prompt is None and args.prompt_text is None:
            raise InputError("--prompt / --prompt_text: the released model needs a prompt")
        if args.camera is None and args.action is None:
            raise InputError("--action / --camera: the released model needs a camera path")
    backend = _resolve_backend(args, resolve_device(args.device), demo is not None)
    check_settings(
        steps=args.steps,
        cfg_scale=args.cfg_scale,
        flow_shift=args.flow_shift,
        sampler=args.sampler,
        height=args.height,
        width=args.width,
        num_frames=args.num_frames,
    )
    if not (args.fps > 0 and args.fps < float("inf")):
        raise InputError(f"--fps: must be a positive number, got {args.fps}")
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--output_dir: {out_dir} exists and is not a folder")
    if not args.name or "/" in args.name or args.name in (".", ".."):
        raise InputError(f"--name: {args.name!r} is not a file name stem")
    if args.image is not None:
        image = load_image(args.image)
    else:
        from sana_wm.demo_model import demo_first_frame

        image = demo_first_frame(args.demo_dir)
    if args.prompt is not None:
        prompt = read_prompt_file(args.prompt)
    elif args.prompt_text is not None:
        prompt = args.prompt_text.strip()
        if not prompt and demo is None:
            raise InputError("--prompt_text: the prompt is empty")
    else:
        prompt = ""
    c2w_F44 = camera_path(args)
    num_frames = align_num_frames(args.num_frames, len(c2w_F44))
    intrinsics = None
    if args.intrinsics is not None:
        intrinsics = load_intrinsics(args.intrinsics, num_frames, image_hw=(image.height, image.width))
    elif demo is not None:
        from sana_wm.demo_model import SYNTHETIC_NOTE, centred_intrinsics

        if args.image is None:
            intrinsics = demo.intrinsics_array()
        else:
            log.warning(SYNTHETIC_NOTE)
            intrinsics = centred_intrinsics(image.height, image.width)
    refiner = None
    if not args.no_refiner:
        # Imports diffusers (seconds): only once everything cheaper has been checked.
        from sana_wm.two_stage import RefinerSettings, check_refiner_settings

        refiner = RefinerSettings(
            mode=args.refiner_mode,
            sink_size=args.sink_size,
            block_size=args.refiner_block_size,
            kv_max_frames=args.refiner_kv_max_frames,
            seed=args.refiner_seed,
            fp8=args.refiner_fp8,
        )
        check_refiner_settings(refiner, num_frames, fps=args.fps)
    return {
        "image": image,
        "prompt": prompt,
        "c2w": c2w_F44[:num_frames],
        "num_frames": num_frames,
        "intrinsics": intrinsics,
        "refiner": refiner,
        "backend": backend,
    }


def _save_latents(path: Path, video: Any, *, seed: int) -> None:
    from safetensors.torch import save_file

    metadata = {
        "format": "sana-wm-latents",
        "layout": "BCThw",
        "normalised": "true",
        "seed": str(seed),
        "stage": "stage1" if video.stage1 is None else "refined",
    }
    with atomic_output(path) as tmp:
        save_file({"latents": video.latents.contiguous()}, str(tmp), metadata=metadata)


def _settings(
    args: argparse.Namespace,
    inputs: dict[str, Any],
    video: Any,
    pipe: Any,
    timings: dict[str, float],
    memory: dict[str, float],
    stem: str,
) -> dict[str, Any]:
    """The sidecar's settings for ``video`` (the refined or the stage-1 result); timings are the run's."""
    weights = pipe.weights
    refined = video.stage1 is not None
    return {
        "command": "generate",
        "video": f"{stem}.mp4",
        "latents": f"{stem}_latents.safetensors" if args.save_latents else None,
        "image": args.image or "(the demo model's bundled first frame)",
        "image_size_hw": [inputs["image"].height, inputs["image"].width],
        "prompt": inputs["prompt"],
        "negative_prompt": args.negative_prompt,
        "action": args.action,
        "camera": args.camera,
        "action_mapping": args.action_mapping,
        "translation_speed": args.translation_speed,
        "rotation_speed_deg": args.rotation_speed_deg,
        "pitch_limit_deg": args.pitch_limit_deg,
        "intrinsics_file": args.intrinsics,
        "intrinsics_source": video.intrinsics_source,
        "intrinsics_convention": "pixels of the generated frames (after the resize + centre crop)",
        "num_frames_requested": args.num_frames,
        "num_frames": video.num_frames,
        "num_frames_stage1": inputs["num_frames"],
        "height": args.height,
        "width": args.width,
        "fps": args.fps,
        "steps": args.steps,
        "cfg_scale": args.cfg_scale,
        "flow_shift": args.flow_shift,
        "sampler": args.sampler,
        "refiner": refined,
        "refiner_settings": _refiner_settings(inputs["refiner"], pipe.refiner_weights),
        "action_overlay": not args.no_action_overlay,
        "model": "demo" if args.demo_dir else "release",
        "model_path": str(weights.model) if weights else (args.model_path or args.demo_dir),
        "config": str(weights.config) if weights and weights.config else args.config,
        "vae_path": str(weights.vae) if weights else args.vae_path,
        "text_encoder_path": str(weights.text_encoder) if weights else args.text_encoder_path,
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "offload": pipe.offload,
        "backend": pipe.backend,
        "timings_s": timings,
        "peak_memory_gib": memory,
    }


def _refiner_settings(settings: Any, paths: Any) -> dict[str, Any] | None:
    """How the refiner ran (the same in both sidecars of a run), or None with --no_refiner."""
    if settings is None:
        return None
    return {
        "mode": settings.mode,
        "sink_size": settings.sink_size,
        "block_size": settings.block_size if settings.mode == "chunk_causal" else None,
        "kv_max_frames": settings.kv_max_frames if settings.mode == "chunk_causal" else None,
        "seed": settings.seed,
        "fp8": settings.fp8,
        "checkpoint": str(paths.transformer.parent) if paths else None,
        "gemma_root": str(paths.text_encoder) if paths else None,
        "dropped_frames": "the first decoded frame; poses and intrinsics are those of stage-1 frames 1..F-1",
    }


def _silence_library_progress() -> None:
    """--quiet: turn off the download / weight-loading bars of the Hugging Face libraries too."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    for name in ("transformers", "diffusers"):
        module = sys.modules.get(f"{name}.utils.logging")
        if module is not None:
            module.disable_progress_bar()
