"""``sana-wm train``: run (or resume) a training run, export its weights for inference.

Examples::

    sana-wm train run --recipe recipes/debug.py optim.lr=3e-4 max_steps=100
    torchrun --nproc_per_node=8 -m sana_wm train run --config run.yaml out_dir=runs/a
    sana-wm train export runs/a weights.safetensors
"""

from __future__ import annotations

import argparse
import json
import logging

from sana_wm.cli._args import flag

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the stage-1 transformer; export checkpoints for inference")
    actions = p.add_subparsers(dest="train_command", metavar="ACTION")
    actions.required = True

    r = actions.add_parser(
        "run",
        help="train (resumes from the newest checkpoint in out_dir); launch under torchrun for several GPUs",
    )
    source = r.add_mutually_exclusive_group()
    source.add_argument(
        "--recipe", metavar="FILE.py[:FUNC]", help="recipe function (e.g. recipes/debug.py or 'debug')"
    )
    source.add_argument(
        "--config", metavar="FILE", help="run config as .json (e.g. a run_config.json) or .yaml"
    )
    r.add_argument(
        *flag("--print_config"),
        dest="print_config",
        action="store_true",
        help="print the resolved config as JSON and exit",
    )
    r.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. optim.lr=1e-4 loss.chunk_size=3")
    r.set_defaults(func=run)

    e = actions.add_parser("export", help="checkpoint -> one inference .safetensors (EMA weights by default)")
    e.add_argument("checkpoint", metavar="CKPT_DIR", help="a checkpoint folder or a run folder (newest)")
    e.add_argument("out", metavar="OUT.safetensors")
    e.add_argument(
        "--weights",
        choices=["ema", "model", "critic", "lora", "lora_ema"],
        default="ema",
        help="EMA (default), raw weights, a self-forcing DMD run's critic, or a LoRA run's adapters alone "
        "(lora: raw, lora_ema: their EMA; ema/model of a LoRA run merge them into the base)",
    )
    e.set_defaults(func=export)


def run(args: argparse.Namespace) -> int:
    from sana_wm.train.config import RunConfig, apply_overrides, load_config_file, load_recipe

    if args.recipe:
        cfg = load_recipe(args.recipe)
    elif args.config:
        cfg = load_config_file(args.config)
    else:
        cfg = RunConfig()
    cfg = apply_overrides(cfg, args.overrides)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from sana_wm.train.trainer import train

    train(cfg)
    return 0


def export(args: argparse.Namespace) -> int:
    from sana_wm.train.checkpoint import export_inference

    used = export_inference(args.checkpoint, args.out, weights=args.weights)
    log.info("wrote %s (%s weights of %s)", args.out, args.weights, used)
    return 0
