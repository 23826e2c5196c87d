"""``sana-wm generate``: first image + prompt + camera path -> mp4, JSON sidecar and optionally the latents.

Two models: with no weight flags it runs the bundled demo model (``inference.demo_model``: CPU-sized, trained
on procedural worlds, prompt-free, no refiner; without ``--image`` it starts from the bundled held-out first
frame along the default action string). ``--official`` or any weight flag selects the released SANA-WM,
whose flags and defaults follow the official ``inference_sana_wm.py`` (underscore names; hyphen aliases
accepted).
By default stage 1 is followed by the stage-2 refiner (``inference.two_stage``): F requested frames give
an F - 1 frame video whose poses are ``c2w[1:F]``; ``--no_refiner`` writes the F stage-1 frames instead.
Every input is checked and every weight file found before any weight is loaded, and nothing is written
unless generation succeeds.
"""

from __future__ import annotations

import argparse
import logging

from sana_wm.cli._args import (
    add_camera_path_args,
    add_runtime_args,
    flag,
    job_fields,
    model_source,
    runtime_settings,
    silence_library_progress,
)
from sana_wm.inference.offload import prefer_expandable_segments
from sana_wm.inference.request import OFFLOAD_MODES, REFINER_MODES, SAMPLER_NAMES

log = logging.getLogger("sana_wm")


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
    p.add_argument("--seed", type=int, help="noise seed (default 42)")
    p.add_argument("--steps", "--step", dest="steps", type=int, help="sampling steps (default 60; demo 30)")
    p.add_argument(*flag("--cfg_scale"), dest="cfg_scale", type=float, help="guidance (default 5; demo 1)")
    p.add_argument(*flag("--flow_shift"), dest="flow_shift", type=float, help="default 9.8 (demo 3)")
    p.add_argument(*flag("--negative_prompt"), dest="negative_prompt", default="", metavar="TEXT")
    p.add_argument("--sampler", choices=SAMPLER_NAMES, help="default ltx_euler")
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
    add_runtime_args(
        p,
        offload=OFFLOAD_MODES,
        offload_help="model: whole components on the GPU only while used; group: stream transformer blocks",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sana_wm.inference.job import GenerateJob, run_job

    quiet = bool(getattr(args, "quiet", False))
    if quiet:
        silence_library_progress()
    prefer_expandable_segments(args.offload)  # before anything touches CUDA
    source = model_source(args)
    refiner = {
        "mode": args.refiner_mode,
        "sink_size": args.sink_size,
        "block_size": args.refiner_block_size,
        "kv_max_frames": args.refiner_kv_max_frames,
        "seed": args.refiner_seed,
        "fp8": args.refiner_fp8,
    }
    job = GenerateJob(
        source=source,
        runtime=runtime_settings(args),
        output_dir=args.output_dir,
        name=args.name,
        prompt_file=args.prompt,
        prompt_text=args.prompt_text,
        negative_prompt=args.negative_prompt,
        overlay=not args.no_action_overlay,
        save_latents=args.save_latents,
        save_stage1=args.save_stage1,
        refine=not args.no_refiner,
        refiner=refiner,
        **job_fields(args),
    )
    result = run_job(job, progress=not quiet)
    request = result.request
    print(
        f"wrote {result.video} ({result.output.num_frames} frames at {request.fps:g} fps, "
        f"{request.sampling.width}x{request.sampling.height}) and {result.sidecar} "
        f"in {result.timings['total']:.1f} s"
    )
    return 0
