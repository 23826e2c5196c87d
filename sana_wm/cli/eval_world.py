"""``sana-wm eval-world``: the model against ground-truth renders of held-out procedural worlds.

The model is chosen by the same rule as ``sana-wm generate`` (:func:`sana_wm.inference.choose_model`: the
bundled demo model unless ``--official`` or a weight flag), and its size, frame count and sampling settings
are that model's defaults. The evaluation itself is :func:`sana_wm.eval.evaluate_worlds`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from sana_wm.camera import MAPPINGS
from sana_wm.cli._args import add_lora_args, flag, model_source, runtime_settings
from sana_wm.cli.worlds import parse_size
from sana_wm.errors import InputError
from sana_wm.inference.request import SAMPLER_NAMES, SamplingSettings
from sana_wm.utils.device import DTYPES, resolve_device

log = logging.getLogger("sana_wm")

EVAL_SEED_BASE = 1_000_000  # sana_wm.eval.EVAL_SEED_BASE, spelled out: --help must not import OpenCV


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval-world", help="evaluate a model against ground-truth renders of held-out procedural worlds"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (eval.json, plot, videos/)")
    p.add_argument(*flag("--num_clips"), dest="num_clips", type=int, default=8, help="clips (default 8)")
    p.add_argument("--frames", type=int, help="frames per clip, 8k+1 (default: the model's)")
    p.add_argument("--size", metavar="HxW", help="frame size (default: the model's)")
    p.add_argument(
        *flag("--world_seed"),
        dest="world_seed",
        type=int,
        default=EVAL_SEED_BASE,
        help=f"clip i is drawn from (world_seed, i); seeds >= {EVAL_SEED_BASE} are never used in training",
    )
    p.add_argument(*flag("--first_clip"), dest="first_clip", type=int, default=0, help="first clip index")
    p.add_argument("--trajectory", choices=["actions", "smooth", "mixed"], default="mixed")
    p.add_argument(
        "--mapping", choices=[*sorted(MAPPINGS), "mixed"], default="mixed", help="of action-string paths"
    )
    p.add_argument(*flag("--no_shadows"), dest="no_shadows", action="store_true")
    p.add_argument(
        "--streaming",
        action="store_true",
        help="generate through the streaming pipeline (chunk-causal model, chunk by chunk with its cache, as "
        "`stream`); clips of 24k+1 frames (default: the model's length snapped down)",
    )
    p.add_argument(
        *flag("--num_videos"), dest="num_videos", type=int, help="side-by-side videos (default: 3 at most)"
    )
    p.add_argument("--fps", type=float, default=16.0, help="frame rate of the videos (default 16)")
    p.add_argument(
        *flag("--camera_accuracy"),
        dest="camera_accuracy",
        action="store_true",
        help="also re-estimate the poses of the model's and the ground-truth videos with the annotator's SfM "
        "(needs pycolmap; slow on a CPU) and report rotation / translation error and CamMC",
    )
    gen = p.add_argument_group("generation")
    gen.add_argument("--seed", type=int, default=0, help="noise seed of clip 0; clip i uses seed + i")
    gen.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    gen.add_argument(*flag("--cfg_scale"), dest="cfg_scale", type=float, help="default: the model's")
    gen.add_argument(*flag("--flow_shift"), dest="flow_shift", type=float, help="default: the model's")
    gen.add_argument("--sampler", choices=SAMPLER_NAMES, help="default: the model's")
    gen.add_argument(*flag("--negative_prompt"), dest="negative_prompt", default="", metavar="TEXT")
    weights = p.add_argument_group(
        "weights (default: the bundled demo model; --official or a weight flag: the release)"
    )
    weights.add_argument(
        "--official", action="store_true", help="the released SANA-WM from the Hugging Face cache"
    )
    weights.add_argument(
        *flag("--demo_dir"), dest="demo_dir", metavar="DIR", help="another demo-model folder"
    )
    weights.add_argument(*flag("--model_path"), dest="model_path", metavar="FILE", help="stage-1 transformer")
    weights.add_argument("--config", help="transformer config: config.yaml (path or hf://) or a preset name")
    weights.add_argument(*flag("--vae_path"), dest="vae_path", metavar="DIR", help="LTX-2 VAE folder")
    weights.add_argument(
        *flag("--text_encoder_path"), dest="text_encoder_path", metavar="DIR", help="Gemma-2 folder"
    )
    runtime = p.add_argument_group("runtime")
    runtime.add_argument("--device", help="default: cuda if available, else cpu")
    runtime.add_argument("--dtype", choices=sorted(DTYPES), help="default: bfloat16 on cuda, float32 on cpu")
    runtime.add_argument(
        "--quantize", choices=("none", "fp8"), default="none", help="fp8: the transformer's weights in float8"
    )
    add_lora_args(runtime)
    runtime.add_argument(
        *flag("--eval_device"),
        dest="eval_device",
        help="device of the ray-caster, PSNR and SSIM (default: --device)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = model_source(args)
    defaults = source.defaults()
    height, width = parse_size(args.size) if args.size else (defaults.height, defaults.width)

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    num_frames = pick(args.frames, defaults.num_frames)
    if args.streaming:
        from sana_wm.inference.streaming import snap_stream_frames

        if args.frames is not None and args.frames != snap_stream_frames(args.frames):
            raise InputError(
                f"--frames: with --streaming, 24k+1 frames (e.g. {snap_stream_frames(args.frames)})"
            )
        num_frames = snap_stream_frames(num_frames)
    sampling = SamplingSettings(
        num_frames=num_frames,
        steps=pick(args.steps, defaults.steps),
        cfg_scale=pick(args.cfg_scale, defaults.cfg_scale),
        flow_shift=pick(args.flow_shift, defaults.flow_shift),
        sampler=pick(args.sampler, defaults.sampler),
        negative_prompt=args.negative_prompt,
        height=height,
        width=width,
    )
    runtime = runtime_settings(args)
    eval_device = resolve_device(
        args.eval_device or args.device, "--eval_device" if args.eval_device else "--device"
    )

    from sana_wm.eval import EvalSettings, evaluate_worlds, pipeline_generate_fn
    from sana_wm.eval.world_eval import check_eval_settings
    from sana_wm.inference import run as inference

    settings = EvalSettings(
        num_clips=args.num_clips,
        num_frames=sampling.num_frames,
        height=height,
        width=width,
        world_seed=args.world_seed,
        first_clip=args.first_clip,
        trajectory=args.trajectory,
        mapping=args.mapping,
        shadows=not args.no_shadows,
        seed=args.seed,
        fps=args.fps,
        num_videos=min(3, args.num_clips) if args.num_videos is None else args.num_videos,
        device=str(eval_device),
        camera_accuracy=args.camera_accuracy,
    )
    check_eval_settings(settings)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise InputError(f"--out: {args.out} exists and is not a folder")
    if args.streaming:
        from sana_wm.eval import stream_generate_fn
        from sana_wm.inference.stream_job import load_stream_pipeline
        from sana_wm.inference.streaming import StreamSettings
        from sana_wm.samplers.chunked import STUDENT_STEPS

        pipe, _ = load_stream_pipeline(source, runtime)
        stream = StreamSettings(
            step_list=None if source.is_demo else STUDENT_STEPS,
            steps=sampling.steps,
            flow_shift=sampling.flow_shift,
            cfg_scale=sampling.cfg_scale,
            negative_prompt=sampling.negative_prompt,
        )
        generate = stream_generate_fn(pipe, stream)
    else:
        pipe = inference.load(source, runtime)
        generate = pipeline_generate_fn(pipe, sampling, progress=not getattr(args, "quiet", False))
    info = {
        "model": str(pipe.weights.model) if pipe.weights else source.model_path or str(source.demo_dir),
        "steps": sampling.steps,
        "cfg_scale": sampling.cfg_scale,
        "flow_shift": sampling.flow_shift,
        "sampler": sampling.sampler,
        "negative_prompt": sampling.negative_prompt,
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "streaming": args.streaming,
    }
    report = evaluate_worlds(generate, settings, args.out, info=info)
    summary = report["summary"]
    log.info(
        "%d clips: PSNR model %.2f dB, repeat-first %.2f dB, camera-blind %.2f dB; SSIM model %.3f; "
        "camera following model %.3f, camera-blind %.3f; wrote %s/eval.json",
        summary["num_clips"],
        summary["model"]["psnr_db"],
        summary["repeat_first"]["psnr_db"],
        summary["camera_blind"]["psnr_db"],
        summary["model"]["ssim"],
        _number(summary["model"]["camera_following"]),
        _number(summary["camera_blind"]["camera_following"]),
        args.out,
    )
    if args.camera_accuracy:
        for video, row in report["camera_accuracy"].items():
            log.info(
                "camera accuracy (SfM), %s: rotation error %.2f deg, translation error %.3f m, CamMC %.3f, "
                "%d clip(s) reconstructed, %d failed",
                video.replace("_", " "),
                *(_number(row[name]) for name in ("rot_err_deg", "trans_err", "cammc")),
                row["reconstructed"],
                row["failed"],
            )
    return 0


def _number(value: float | None) -> float:
    """A report number (None where it was not finite) for %-formatting."""
    return float("nan") if value is None else value
