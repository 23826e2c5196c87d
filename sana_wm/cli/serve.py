"""``sana-wm serve``: a live world in the browser, walked with the keyboard (FastAPI + uvicorn).

With no weight flags it serves the bundled demo model on the CPU; ``--model_path`` (or ``--official``)
serves the streaming release (stage 1 + decode). Binds 127.0.0.1; another ``--host`` needs ``--token``.
The library side is :mod:`sana_wm.serve`; the protocol is in the README.
"""

from __future__ import annotations

import argparse

from sana_wm.cli._args import add_runtime_args, flag, model_source, runtime_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a live world in the browser, driven with the keyboard")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)")
    p.add_argument("--port", type=int, default=7860, help="default 7860")
    p.add_argument(
        "--token",
        help="secret every request and socket must carry (?token=, a Bearer header or the page's cookie); "
        "required with a non-loopback --host; 'generate' makes and prints a random one",
    )
    limits = p.add_argument_group("limits")
    limits.add_argument(
        *flag("--max_upload_mb"), dest="max_upload_mb", type=float, default=8.0, help="upload size (8)"
    )
    limits.add_argument(
        *flag("--max_upload_pixels"),
        dest="max_upload_pixels",
        type=int,
        default=4096 * 4096,
        help="upload width x height (16.8 M)",
    )
    limits.add_argument(
        *flag("--max_chunks"),
        dest="max_chunks",
        type=int,
        default=13,
        help="chunks per session, 1.5 s each (13: the official demo's 40 latent frames)",
    )
    limits.add_argument(
        *flag("--max_side"), dest="max_side", type=int, default=1280, help="frame side (1280)"
    )
    limits.add_argument(*flag("--max_steps"), dest="max_steps", type=int, default=100, help="steps per chunk")
    limits.add_argument(
        *flag("--max_queue"), dest="max_queue", type=int, default=8, help="sessions waiting (8)"
    )
    limits.add_argument(
        *flag("--idle_timeout"),
        dest="idle_timeout",
        type=float,
        default=120.0,
        help="seconds a paused session may hold the device while others wait (120)",
    )
    p.add_argument(
        *flag("--decode_lookahead"),
        dest="decode_lookahead",
        type=int,
        default=1,
        help="latent frames a non-causal VAE (the demo's) holds back: 0 fastest, 3 exact (default 1)",
    )
    weights = p.add_argument_group(
        "weights (default: the demo model; --official or a weight flag: the release)"
    )
    weights.add_argument(
        "--official", action="store_true", help="SANA-WM_streaming from the Hugging Face cache"
    )
    weights.add_argument(*flag("--demo_dir"), dest="demo_dir", metavar="DIR", help="a demo-model folder")
    weights.add_argument(*flag("--model_path"), dest="model_path", metavar="PATH", help="as for stream")
    weights.add_argument("--config", help="config.yaml (path or hf://) or a preset name")
    weights.add_argument(*flag("--vae_path"), dest="vae_path", metavar="DIR", help="causal LTX-2 VAE folder")
    weights.add_argument(
        *flag("--text_encoder_path"), dest="text_encoder_path", metavar="DIR", help="Gemma-2 folder"
    )
    add_runtime_args(
        p, offload=("none", "group"), offload_help="group: blocks streamed from pinned CPU memory"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sana_wm.errors import InputError
    from sana_wm.serve.protocol import ServeLimits
    from sana_wm.serve.server import ServeConfig, serve

    if not args.max_upload_mb > 0 or args.max_upload_mb > 1024:
        raise InputError(f"--max_upload_mb: must be in (0, 1024], got {args.max_upload_mb}")
    limits = ServeLimits(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_upload_pixels=args.max_upload_pixels,
        max_chunks=args.max_chunks,
        max_side=args.max_side,
        max_steps=args.max_steps,
        max_queue=args.max_queue,
        idle_timeout_s=args.idle_timeout,
    )
    config = ServeConfig(
        host=args.host,
        port=args.port,
        token=args.token,
        limits=limits,
        decode_lookahead=args.decode_lookahead,
    )
    serve(config, model_source(args), runtime_settings(args))
    return 0
