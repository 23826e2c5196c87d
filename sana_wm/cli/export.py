"""``sana-wm export``: our weights as a diffusers folder or the official single file (argument parsing only).

Examples::

    sana-wm export --format diffusers --out sana_wm_demo_diffusers        # the bundled demo model
    sana-wm export --format diffusers --model_path run.safetensors --out run_diffusers
    sana-wm export --format official --model_path chunk_causal.safetensors --out chunk_causal_official

Both read back through ``--model_path`` (the folder, or ``<out>/dit/<file>.safetensors`` for ``official``).
"""

from __future__ import annotations

import argparse
import logging

from sana_wm.cli._args import flag

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="our weights -> a diffusers folder (transformer or SanaWMPipeline) or the official file",
    )
    p.add_argument(
        "--format",
        dest="fmt",
        choices=("diffusers", "official"),
        default="diffusers",
        help="diffusers: config.json + diffusion_pytorch_model.safetensors (a SanaWMPipeline root when the "
        "source has a VAE or text encoder); official: dit/<name>.safetensors + config.yaml",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder; written atomically")
    p.add_argument(
        "--dtype",
        choices=("keep", "float32", "bfloat16", "float16"),
        default="keep",
        help="cast the weights (default: keep the stored dtypes)",
    )
    weights = p.add_argument_group(
        "source (default: the bundled demo model; --official or any weight flag: the released SANA-WM)"
    )
    weights.add_argument("--official", action="store_true", help="the whole released SANA-WM (HF cache)")
    weights.add_argument(
        *flag("--demo_dir"), dest="demo_dir", metavar="DIR", help="another demo-model folder"
    )
    weights.add_argument(
        *flag("--model_path"),
        dest="model_path",
        metavar="PATH",
        help="transformer: our .safetensors (e.g. from sana-wm train export), an official file, a diffusers "
        "folder, or hf://; alone it exports the transformer only",
    )
    weights.add_argument(
        "--config", help="transformer config: official config.yaml (path or hf://) or a preset"
    )
    weights.add_argument(
        *flag("--vae_path"), dest="vae_path", metavar="DIR", help="LTX-2 VAE folder to include (copied)"
    )
    weights.add_argument(
        *flag("--text_encoder_path"),
        dest="text_encoder_path",
        metavar="DIR",
        help="Gemma-2 folder with its tokenizer to include (copied)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sana_wm.export import export_model
    from sana_wm.inference.source import choose_model

    source = choose_model(
        official=args.official,
        demo_dir=args.demo_dir,
        model_path=args.model_path,
        config=args.config,
        vae_path=args.vae_path,
        text_encoder_path=args.text_encoder_path,
    )
    summary = export_model(source, args.out, fmt=args.fmt, dtype=args.dtype)
    cfg = summary.config
    log.info("read %s: depth %d, width %d", summary.source, cfg.depth, cfg.hidden_size)
    for name, state in summary.components.items():
        log.info("  %s: %s", name, state)
    log.info(
        "wrote %s (%s layout): %d files, %d tensors, %.3f GB of transformer weights",
        summary.out,
        summary.layout,
        len(summary.files),
        summary.tensors,
        summary.nbytes / 1e9,
    )
    return 0
