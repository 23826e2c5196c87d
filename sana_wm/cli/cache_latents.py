"""``sana-wm cache-latents``: encode a dataset's clips with a video VAE into the latent shards."""

from __future__ import annotations

import argparse
import logging

from sana_wm.cli._args import flag
from sana_wm.utils.device import DTYPES

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache-latents", help="fill a dataset's latent zips (<key>.npz, z in (C,T,H,W))")
    p.add_argument(
        "dir", metavar="DIR", help="dataset directory: reads DIR/raw/*.zip, writes DIR/latents/*.zip"
    )
    p.add_argument(
        "--vae",
        required=True,
        metavar="PATH",
        help="diffusers AutoencoderKLLTX2Video folder (with config.json) or a model folder/repo with vae/",
    )
    p.add_argument(*flag("--raw_dir"), dest="raw_dir", help="raw shards (default DIR/raw)")
    p.add_argument(*flag("--latent_dir"), dest="latent_dir", help="latent shards (default DIR/latents)")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="VAE compute dtype")
    p.add_argument(
        *flag("--latent_dtype"), dest="latent_dtype", choices=["float32", "float16"], default="float32"
    )
    p.add_argument("--overwrite", action="store_true", help="re-encode shards that already have latents")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sana_wm.data.latents import cache_dataset_latents

    written, latent_dir = cache_dataset_latents(
        args.dir,
        args.vae,
        raw_dir=args.raw_dir,
        latent_dir=args.latent_dir,
        device=args.device,
        dtype=args.dtype,
        latent_dtype=args.latent_dtype,
        overwrite=args.overwrite,
    )
    log.info("wrote %d latent shard(s) under %s", len(written), latent_dir)
    return 0
