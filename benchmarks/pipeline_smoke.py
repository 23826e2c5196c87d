"""Full-size smoke run of ``sana_wm.pipeline`` with random weights: time per stage and peak GPU memory.

Needs no download: Gemma-2 with the gemma-2-2b(-it) architecture, the LTX-2 VAE with the released architecture
and our ``sana_wm_1600m_720p`` transformer are built with random weights directly on the device, the tokenizer
is a character-level Gemma tokenizer built in-process (so token counts differ from the real one; the text
encoder still sees 300-token prompts plus the chi prefix). The numbers measure speed and memory only: the
video is noise.

    python benchmarks/pipeline_smoke.py --out bench.json                   # GPU: bf16, 161 frames, 60 steps
    python benchmarks/pipeline_smoke.py --steps 4 --offload model --out b.json       # quick, low memory
    python benchmarks/pipeline_smoke.py --tiny --device cpu --steps 2 --out s.json   # CPU smoke test

Prints one line per stage and writes a JSON report to ``--out``: per-stage seconds (text encode, VAE encode,
sampling total and per step, decode, mp4 write), per-stage peak ``torch.cuda.max_memory_allocated`` (GiB),
parameter counts and the settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sana_wm.camera import default_intrinsics
from sana_wm.models import SanaWMTransformer, sana_wm_1600m_720p, tiny
from sana_wm.pipeline import DTYPES, Pipeline, resolve_device, resolve_dtype
from sana_wm.text_encoder import TextEncoder
from sana_wm.tiny import tiny_gemma2_config, tiny_ltx2_vae, tiny_tokenizer
from sana_wm.utils.video_io import VideoWriter
from sana_wm.vae import VideoVAE

DEFAULT_ACTION = "w-80,jw-40,w-40,lw-60,w-100"
PROMPT = (
    "A first-person drive along a winding coastal road at golden hour, cliffs on the left, the sea "
    "glittering on the right, long shadows from roadside pines, light haze over distant headlands."
)

# gemma-2-2b(-it) as released (these are also transformers' Gemma2Config defaults).
GEMMA2_2B = dict(
    vocab_size=256000,
    hidden_size=2304,
    intermediate_size=9216,
    num_hidden_layers=26,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=256,
    query_pre_attn_scalar=256,
    sliding_window=4096,
    attn_logit_softcapping=50.0,
    final_logit_softcapping=30.0,
    max_position_embeddings=8192,
)
# LTX-2 VAE as released (hub Lightricks/LTX-2 vae/config.json, also SANA-WM's vae/).
LTX2_VAE = dict(
    latent_channels=128,
    block_out_channels=(256, 512, 1024, 2048),
    decoder_block_out_channels=(256, 512, 1024),
    layers_per_block=(4, 6, 6, 2, 2),
    decoder_layers_per_block=(5, 5, 5, 5),
    downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_type=("spatiotemporal",) * 3,
    upsample_residual=(True,) * 3,
    upsample_factor=(2, 2, 2),
    patch_size=4,
    patch_size_t=1,
    encoder_causal=True,
    decoder_causal=False,
    decoder_spatial_padding_mode="reflect",
    timestep_conditioning=False,
    scaling_factor=1.0,
    spatial_compression_ratio=32,
    temporal_compression_ratio=8,
)


def build_pipeline(*, small: bool, device: torch.device, dtype: torch.dtype, offload: str) -> Pipeline:
    """Random-weight components built on ``device`` (fast init), then handed to :class:`Pipeline`."""
    from diffusers import AutoencoderKLLTX2Video
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # parameters are created in the compute dtype, never in float32 first
    try:
        with torch.device(device):
            gemma = Gemma2Model(tiny_gemma2_config() if small else Gemma2Config(**GEMMA2_2B)).eval()
            # seed=None: the tiny VAE continues the RNG stream after Gemma, as the full-size one does.
            vae = tiny_ltx2_vae(16, seed=None) if small else AutoencoderKLLTX2Video(**LTX2_VAE).eval()
    finally:
        torch.set_default_dtype(default_dtype)
    with torch.device("meta"):
        transformer = SanaWMTransformer(tiny() if small else sana_wm_1600m_720p())
    transformer = transformer.to(dtype=dtype).to_empty(device=device)
    transformer.init_weights()
    return Pipeline(
        transformer.eval(),
        TextEncoder(gemma, tiny_tokenizer(chi_prompt=True)),
        VideoVAE(vae),
        device=device,
        offload=offload,
    )


def first_frame(height: int, width: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 37.0 + y / 23.0)], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny components at 64x96, 17 frames (CPU smoke test)")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--num_frames", type=int, help="default 161 (17 with --tiny)")
    p.add_argument("--offload", choices=("none", "model", "group"), default="none")
    p.add_argument("--action", default=DEFAULT_ACTION)
    p.add_argument("--video", help="keep the mp4 here (default: written to a temporary file and deleted)")
    p.add_argument("--out", required=True, help="JSON report")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    height, width = (64, 96) if args.tiny else (704, 1280)
    num_frames = args.num_frames or (17 if args.tiny else 161)
    cuda = device.type == "cuda"

    start = time.perf_counter()
    pipe = build_pipeline(small=args.tiny, device=device, dtype=dtype, offload=args.offload)
    build_s = time.perf_counter() - start
    params = {
        "transformer": count_params(pipe.transformer),
        "text_encoder": count_params(pipe.text_encoder.model),
        "vae": count_params(pipe.vae.vae),
    }

    image = first_frame(height, width)
    out = pipe(
        image,
        PROMPT,
        action=args.action,
        intrinsics=default_intrinsics((height, width)),
        num_frames=num_frames,
        steps=args.steps,
        height=height,
        width=width,
        progress=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(args.video) if args.video else Path(tmp) / "smoke.mp4"
        write_start = time.perf_counter()
        with VideoWriter(video, fps=16) as writer:
            writer.write_many(out.frames)
        frames_written = writer.frames_written
        write_total = time.perf_counter() - write_start
    timings = {"build_random_weights": build_s, **out.timings, "write": write_total - out.timings["decode"]}
    memory = dict(out.peak_memory_gib)
    if memory:
        memory["max"] = max(memory.values())

    report = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "offload": pipe.offload,
        "tiny": args.tiny,
        "height": height,
        "width": width,
        "num_frames": out.num_frames,
        "frames_written": frames_written,
        "latent_shape": list(out.latents.shape),
        "steps": args.steps,
        "params": params,
        "timings_s": timings,
        "peak_memory_gib": memory,
    }
    for name, seconds in timings.items():
        peak = f"   peak {memory[name]:.2f} GiB" if name in memory else ""
        print(f"{name:>22}: {seconds:9.3f} s{peak}")
    if memory:
        print(f"{'peak (all stages)':>22}: {memory['max']:.2f} GiB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
