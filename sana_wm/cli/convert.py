"""``sana-wm convert``: a transformer checkpoint (the streaming ``model.pt`` too) -> our safetensors file.

Examples::

    sana-wm convert SANA-WM_streaming/sana_dit/model.pt --out sana_wm_streaming.safetensors
    sana-wm convert dit/sana_wm_chunk_causal_1600m_720p.safetensors --out chunk_causal.safetensors
"""

from __future__ import annotations

import argparse
import logging

from sana_wm.cli._args import flag

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="a transformer checkpoint (official, diffusers, training model.pt) -> one .safetensors (ours)",
    )
    p.add_argument(
        "input",
        metavar="INPUT",
        help="official file, diffusers folder, our file, or a training checkpoint (.pt: tensors only)",
    )
    p.add_argument("--out", required=True, metavar="FILE.safetensors", help="where to write (atomically)")
    p.add_argument(
        "--config",
        metavar="CONFIG",
        help="official config.yaml, our/diffusers .json, or a preset name (default: what the input carries, "
        "a config.yaml beside it, or for a training checkpoint the streaming release's: chunk_size 3)",
    )
    p.add_argument(
        *flag("--chunk_size"),
        dest="chunk_size",
        type=int,
        metavar="N",
        help="override the config's chunk size (latent frames per causal chunk)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sana_wm.models.convert import convert_checkpoint

    log.info("reading %s", args.input)
    summary = convert_checkpoint(args.input, args.out, config=args.config, chunk_size=args.chunk_size)
    dtypes = ", ".join(f"{count} {name}" for name, count in summary.dtypes.items())
    what = summary.kind + (f", {summary.detail}" if summary.detail else "")
    cfg = summary.config
    causal = (
        f"chunk-causal, chunk_size {cfg.chunk_size} ({cfg.chunk_strategy})"
        if cfg.chunk_causal
        else "bidirectional"
    )
    log.info("read %s (%s)", args.input, what)
    log.info(
        "config: depth %d, width %d, %s; from %s", cfg.depth, cfg.hidden_size, causal, summary.config_source
    )
    log.info(
        "wrote %s: %d tensors (%s), %.2f GB of weights",
        summary.out,
        summary.tensors,
        dtypes,
        summary.nbytes / 1e9,
    )
    return 0
