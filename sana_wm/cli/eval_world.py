"""``sana-wm eval-world``: the model against ground-truth renders of held-out procedural worlds.

The model is the bundled demo model (:mod:`sana_wm.demo_model`) when it is installed and trained and no
weight flag is given; its size, frame count and sampling settings (``demo_model.json``) are then the
defaults. With ``--model_path`` / ``--config`` / ``--vae_path`` / ``--text_encoder_path`` (or without the
demo model) it is loaded like ``sana-wm generate`` loads it, with the release's defaults (:data:`RELEASE`).
The evaluation itself is :func:`sana_wm.eval.evaluate_worlds`.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

from sana_wm.camera import MAPPINGS
from sana_wm.cli._args import flag
from sana_wm.cli.worlds import parse_size
from sana_wm.errors import InputError
from sana_wm.pipeline import DEFAULT_FLOW_SHIFT, DTYPES, SAMPLERS, check_settings, resolve_device

log = logging.getLogger("sana_wm")

DEMO_MODULE = "sana_wm.demo_model"
# Defaults for a model other than the demo one: the release's size (the only one it knows) and sampling.
RELEASE = {
    "size": "704x1280",
    "frames": 121,
    "steps": 60,
    "cfg_scale": 5.0,
    "flow_shift": DEFAULT_FLOW_SHIFT,
    "sampler": "ltx_euler",
}
EVAL_SEED_BASE = 1_000_000  # sana_wm.eval.EVAL_SEED_BASE, spelled out: --help must not import OpenCV


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval-world", help="evaluate a model against ground-truth renders of held-out procedural worlds"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (eval.json, plot, videos/)")
    p.add_argument(*flag("--num_clips"), dest="num_clips", type=int, default=8, help="clips (default 8)")
    p.add_argument("--frames", type=int, help=f"frames per clip, 8k+1 ({_default('frames')})")
    p.add_argument("--size", metavar="HxW", help=f"frame size ({_default('size')})")
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
        *flag("--num_videos"), dest="num_videos", type=int, help="side-by-side videos (default: 3 at most)"
    )
    p.add_argument("--fps", type=float, default=16.0, help="frame rate of the videos (default 16)")
    gen = p.add_argument_group("generation")
    gen.add_argument("--seed", type=int, default=0, help="noise seed of clip 0; clip i uses seed + i")
    gen.add_argument("--steps", type=int, help=f"sampling steps ({_default('steps')})")
    gen.add_argument(*flag("--cfg_scale"), dest="cfg_scale", type=float, help=_default("cfg_scale"))
    gen.add_argument(*flag("--flow_shift"), dest="flow_shift", type=float, help=_default("flow_shift"))
    gen.add_argument("--sampler", choices=sorted(SAMPLERS), help=_default("sampler"))
    gen.add_argument(*flag("--negative_prompt"), dest="negative_prompt", default="", metavar="TEXT")
    weights = p.add_argument_group("weights (default: the demo model if trained, else the official release)")
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
        *flag("--eval_device"),
        dest="eval_device",
        help="device of the ray-caster, PSNR and SSIM (default: --device)",
    )
    p.set_defaults(func=run)


def _default(name: str) -> str:
    return f"default: the demo model's, else {RELEASE[name]}"


def use_demo_model(args: argparse.Namespace) -> bool:
    """The demo model when no weight flag is given and :mod:`sana_wm.demo_model` holds a trained model."""
    given = (args.model_path, args.config, args.vae_path, args.text_encoder_path)
    if any(v is not None for v in given) or importlib.util.find_spec(DEMO_MODULE) is None:
        return False
    from sana_wm.demo_model import demo_available

    return demo_available()


def fill_defaults(args: argparse.Namespace, demo: bool) -> None:
    """Fill the size, frame and sampling flags left unset: the demo model's settings, or :data:`RELEASE`."""
    defaults = dict(RELEASE)
    if demo:
        from sana_wm.demo_model import read_demo_settings

        d = read_demo_settings()
        defaults = {
            "size": f"{d.height}x{d.width}",
            "frames": d.num_frames,
            "steps": d.steps,
            "cfg_scale": d.cfg_scale,
            "flow_shift": d.flow_shift,
            "sampler": d.sampler,
        }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def run(args: argparse.Namespace) -> int:
    demo = use_demo_model(args)
    fill_defaults(args, demo)
    height, width = parse_size(args.size)
    check_settings(
        steps=args.steps,
        cfg_scale=args.cfg_scale,
        flow_shift=args.flow_shift,
        sampler=args.sampler,
        height=height,
        width=width,
        num_frames=args.frames,
    )
    device = resolve_device(args.device)
    eval_device = resolve_device(args.eval_device) if args.eval_device else device

    from sana_wm.eval import EvalSettings, evaluate_worlds, pipeline_generate_fn
    from sana_wm.eval.world_eval import check_eval_settings

    settings = EvalSettings(
        num_clips=args.num_clips,
        num_frames=args.frames,
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
    )
    check_eval_settings(settings)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise InputError(f"--out: {args.out} exists and is not a folder")
    pipe = load_model(args, demo, device)
    if pipe is None:
        return 2
    generate = pipeline_generate_fn(
        pipe,
        steps=args.steps,
        cfg_scale=args.cfg_scale,
        flow_shift=args.flow_shift,
        sampler=args.sampler,
        negative_prompt=args.negative_prompt,
        progress=not getattr(args, "quiet", False),
    )
    report = evaluate_worlds(generate, settings, args.out, info=_info(args, pipe, demo))
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
    return 0


def load_model(args: argparse.Namespace, demo: bool, device: Any) -> Any:
    """The pipeline under test, or None after printing why the weights are missing."""
    if demo:
        from sana_wm.demo_model import load_demo_pipeline

        if args.dtype is None:
            return load_demo_pipeline(device)
        return load_demo_pipeline(device, dtype=DTYPES[args.dtype])
    from sana_wm.pipeline import load_pipeline
    from sana_wm.weights import MissingWeightsError

    try:
        return load_pipeline(
            args.model_path,
            config=args.config,
            vae_path=args.vae_path,
            text_encoder_path=args.text_encoder_path,
            device=device,
            dtype=args.dtype,
        )
    except MissingWeightsError as err:
        for line in str(err).splitlines():
            print(f"sana-wm eval-world: error: {line}", file=sys.stderr)
        return None


def _number(value: float | None) -> float:
    """A report number (None where it was not finite) for %-formatting."""
    return float("nan") if value is None else value


def _info(args: argparse.Namespace, pipe: Any, demo: bool) -> dict[str, Any]:
    weights = getattr(pipe, "weights", None)
    if demo:
        model = DEMO_MODULE
    elif weights is not None:
        model = str(weights.model)
    else:
        model = args.model_path
    return {
        "model": model,
        "steps": args.steps,
        "cfg_scale": args.cfg_scale,
        "flow_shift": args.flow_shift,
        "sampler": args.sampler,
        "negative_prompt": args.negative_prompt,
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).removeprefix("torch."),
    }
