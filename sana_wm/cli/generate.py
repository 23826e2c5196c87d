"""``sana-wm generate``: first image + prompt + camera path -> mp4, JSON sidecar and optionally the latents.

Flags and defaults follow the official ``inference_sana_wm.py`` (underscore names; hyphen aliases accepted).
Every input is checked before any weight is loaded, and nothing is written unless generation succeeds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from sana_wm.camera import align_num_frames, load_intrinsics
from sana_wm.cli._args import add_camera_path_args, flag
from sana_wm.cli.trajectory import camera_path
from sana_wm.demo import HUD_KEY_LABELS
from sana_wm.errors import InputError
from sana_wm.offload import OFFLOAD_MODES
from sana_wm.pipeline import DEFAULT_FLOW_SHIFT, DTYPES, SAMPLERS, check_settings, resolve_device
from sana_wm.utils.atomic import atomic_output
from sana_wm.utils.image import MODEL_HEIGHT, MODEL_WIDTH, load_image
from sana_wm.utils.prompt import read_prompt_file
from sana_wm.utils.video_io import VideoWriter, write_sidecar

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate a video from an image, a prompt and a camera path")
    p.add_argument(
        "--image", required=True, metavar="FILE", help="first-frame image (any size; cropped to 704x1280)"
    )
    text = p.add_mutually_exclusive_group(required=True)
    text.add_argument("--prompt", metavar="FILE", help="UTF-8 text file holding the prompt")
    text.add_argument(*flag("--prompt_text"), dest="prompt_text", metavar="TEXT", help="the prompt itself")
    add_camera_path_args(p, required=True)
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
        default=161,
        help="frames to generate (capped by the camera path, snapped to 8k+1; default 161 = 10 s at 16 fps)",
    )
    p.add_argument(*flag("--output_dir"), dest="output_dir", required=True, metavar="DIR")
    p.add_argument("--name", default="output", help="file name stem of the outputs (default: output)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--steps", "--step", dest="steps", type=int, default=60, help="sampling steps (default 60)"
    )
    p.add_argument(
        *flag("--cfg_scale"), dest="cfg_scale", type=float, default=5.0, help="guidance (default 5)"
    )
    p.add_argument(
        *flag("--flow_shift"), dest="flow_shift", type=float, default=DEFAULT_FLOW_SHIFT, help="default 9.8"
    )
    p.add_argument(*flag("--negative_prompt"), dest="negative_prompt", default="", metavar="TEXT")
    p.add_argument("--sampler", choices=sorted(SAMPLERS), default="ltx_euler", help="default ltx_euler")
    p.add_argument("--fps", type=float, default=16.0, help="frame rate of the mp4 (default 16)")
    p.add_argument("--height", type=int, default=MODEL_HEIGHT, help="the released model knows 704 only")
    p.add_argument("--width", type=int, default=MODEL_WIDTH, help="the released model knows 1280 only")
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
        help="also write the stage-1 latents as <name>_latents.safetensors",
    )
    weights = p.add_argument_group("weights (default: the official release, from the Hugging Face cache)")
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
    refiner = p.add_argument_group("stage-2 refiner (not implemented yet: the stage-1 video is written)")
    refiner.add_argument(*flag("--no_refiner"), dest="no_refiner", action="store_true")
    refiner.add_argument(*flag("--refiner_checkpoint"), dest="refiner_checkpoint", metavar="PATH")
    refiner.add_argument(*flag("--refiner_gemma_root"), dest="refiner_gemma_root", metavar="PATH")
    runtime = p.add_argument_group("runtime")
    runtime.add_argument("--device", help="default: cuda if available, else cpu")
    runtime.add_argument("--dtype", choices=sorted(DTYPES), help="default: bfloat16 on cuda, float32 on cpu")
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
    inputs = _check_inputs(args)
    if not args.no_refiner or args.refiner_checkpoint or args.refiner_gemma_root:
        log.warning("the stage-2 refiner is not implemented yet: writing the stage-1 video (as --no_refiner)")

    from sana_wm.pipeline import load_pipeline
    from sana_wm.weights import MissingWeightsError

    load_start = time.perf_counter()
    try:
        pipe = load_pipeline(
            args.model_path,
            config=args.config,
            vae_path=args.vae_path,
            text_encoder_path=args.text_encoder_path,
            device=args.device,
            dtype=args.dtype,
            offload=args.offload,
        )
    except MissingWeightsError as err:
        for line in str(err).splitlines():
            print(f"sana-wm generate: error: {line}", file=sys.stderr)
        return 2
    load_s = time.perf_counter() - load_start

    out = pipe(
        inputs["image"],
        inputs["prompt"],
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
        progress=not quiet,
    )

    out_dir = Path(args.output_dir)
    video_path = out_dir / f"{args.name}.mp4"
    frames = out.frames
    if not args.no_action_overlay:
        from sana_wm.viz.overlay import apply_overlay

        frames = apply_overlay(frames, out.c2w, key_labels=HUD_KEY_LABELS[args.action_mapping])
    write_start = time.perf_counter()
    with VideoWriter(video_path, fps=args.fps) as writer:
        writer.write_many(frames)
    timings = {"load": load_s, **out.timings}
    timings["write"] = time.perf_counter() - write_start - timings.get("decode", 0.0)

    latents_path = None
    if args.save_latents:
        latents_path = out_dir / f"{args.name}_latents.safetensors"
        _save_latents(latents_path, out.latents, seed=args.seed)

    timings["total"] = time.perf_counter() - started
    settings = _settings(args, inputs, out, pipe, timings, video_path, latents_path)
    write_sidecar(
        out_dir / f"{args.name}.json",
        c2w=out.c2w,
        intrinsics=out.intrinsics,
        settings=settings,
        seed=args.seed,
    )
    log.info(
        "wrote %s (%d frames at %g fps, %dx%d) and %s in %.1f s",
        video_path,
        out.num_frames,
        args.fps,
        args.width,
        args.height,
        video_path.with_suffix(".json"),
        timings["total"],
    )
    return 0


def _check_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Read and validate every user input before anything heavy happens."""
    check_settings(
        steps=args.steps,
        cfg_scale=args.cfg_scale,
        flow_shift=args.flow_shift,
        sampler=args.sampler,
        height=args.height,
        width=args.width,
        num_frames=args.num_frames,
    )
    resolve_device(args.device)
    if not (args.fps > 0 and args.fps < float("inf")):
        raise InputError(f"--fps: must be a positive number, got {args.fps}")
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--output_dir: {out_dir} exists and is not a folder")
    if not args.name or "/" in args.name or args.name in (".", ".."):
        raise InputError(f"--name: {args.name!r} is not a file name stem")
    image = load_image(args.image)
    if args.prompt is not None:
        prompt = read_prompt_file(args.prompt)
    else:
        prompt = args.prompt_text.strip()
        if not prompt:
            raise InputError("--prompt_text: the prompt is empty")
    c2w_F44 = camera_path(args)
    num_frames = align_num_frames(args.num_frames, len(c2w_F44))
    intrinsics = None
    if args.intrinsics is not None:
        intrinsics = load_intrinsics(args.intrinsics, num_frames, image_hw=(image.height, image.width))
    return {
        "image": image,
        "prompt": prompt,
        "c2w": c2w_F44[:num_frames],
        "num_frames": num_frames,
        "intrinsics": intrinsics,
    }


def _save_latents(path: Path, latents: Any, *, seed: int) -> None:
    from safetensors.torch import save_file

    metadata = {"format": "sana-wm-latents", "layout": "BCThw", "normalised": "true", "seed": str(seed)}
    with atomic_output(path) as tmp:
        save_file({"latents": latents.contiguous()}, str(tmp), metadata=metadata)


def _settings(
    args: argparse.Namespace,
    inputs: dict[str, Any],
    out: Any,
    pipe: Any,
    timings: dict[str, float],
    video_path: Path,
    latents_path: Path | None,
) -> dict[str, Any]:
    weights = pipe.weights
    return {
        "command": "generate",
        "video": video_path.name,
        "latents": latents_path.name if latents_path else None,
        "image": args.image,
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
        "intrinsics_source": out.intrinsics_source,
        "intrinsics_convention": "pixels of the generated frames (after the resize + centre crop)",
        "num_frames_requested": args.num_frames,
        "num_frames": out.num_frames,
        "height": args.height,
        "width": args.width,
        "fps": args.fps,
        "steps": args.steps,
        "cfg_scale": args.cfg_scale,
        "flow_shift": args.flow_shift,
        "sampler": args.sampler,
        "refiner": False,
        "action_overlay": not args.no_action_overlay,
        "model_path": str(weights.model) if weights else args.model_path,
        "config": str(weights.config) if weights and weights.config else args.config,
        "vae_path": str(weights.vae) if weights else args.vae_path,
        "text_encoder_path": str(weights.text_encoder) if weights else args.text_encoder_path,
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "offload": pipe.offload,
        "timings_s": timings,
        "peak_memory_gib": out.peak_memory_gib,
    }


def _silence_library_progress() -> None:
    """--quiet: turn off the download / weight-loading bars of the Hugging Face libraries too."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    for name in ("transformers", "diffusers"):
        module = sys.modules.get(f"{name}.utils.logging")
        if module is not None:
            module.disable_progress_bar()
