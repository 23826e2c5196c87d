"""Full-size smoke run of the stage-2 refiner with random weights: time and peak memory.

Needs no download. The parts have the release architecture and random values:

- the LTX-2 refiner DiT with diffusers' default (= LTX-2 19B) config, built on ``meta``, its audio stream
  dropped (13.0 of 18.9 billion parameters remain), then materialised on the device with small random values;
- ``LTX2TextConnectors`` with the default (LTX-2) config, built the same way (1.4 billion parameters);
- Gemma-3-12B's text stack (``Gemma3TextModel``, 11.8 billion parameters, no vision tower: the refiner only
  runs the text path) built directly on the device in the compute dtype, with a character-level tokenizer
  built in-process (so the prompt tokenises differently; it is still padded to 1024 tokens). With
  ``--text_encoder standin`` Gemma is skipped and random hidden states of the right shape (1, 1024, 3840, 49)
  go through the connectors instead (for GPUs without room for the 23.5 GB encoder).

The parts are built on the compute device even with ``--offload`` (the refiner then moves them to the
CPU), which needs about 55 GB of GPU memory for a moment. The run follows the intended pipeline order:
build all three, encode the prompt, release Gemma, refine random stage-1 latents ``(1, 128, T, 22, 40)``
(161 frames -> T = 21) with the 3 distilled steps. Timings of each DiT call come from forward hooks with
CUDA synchronisation: the sink capture, the 3 denoising steps (and in chunk-causal mode the per-block
history captures). The numbers measure speed and memory only.

    python benchmarks/refiner_smoke.py --out refiner.json                      # GPU: bf16, 161 frames
    python benchmarks/refiner_smoke.py --fp8 --out refiner_fp8.json            # fp8 weight storage
    python benchmarks/refiner_smoke.py --offload group --out refiner_group.json
    python benchmarks/refiner_smoke.py --tiny --device cpu --out s.json        # CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from sana_wm.bench.build import materialize
from sana_wm.inference.offload import on_device
from sana_wm.inference.refiner import Refiner, RefinerPrompt, video_only
from sana_wm.inference.request import REFINER_MODES
from sana_wm.text_encoder import RefinerTextEncoder
from sana_wm.tiny import (
    tiny_gemma3_text_config,
    tiny_refiner_connectors,
    tiny_refiner_transformer,
    tiny_tokenizer,
)
from sana_wm.utils.device import DTYPES, resolve_device, resolve_dtype

PROMPT = (
    "A first-person drive along a winding coastal road at golden hour, cliffs on the left, the sea "
    "glittering on the right, long shadows from roadside pines, light haze over distant headlands."
)

# Gemma-3-12B's text stack as released (rope settings left at the defaults: they do not change the cost).
GEMMA3_12B = dict(
    vocab_size=262208,
    hidden_size=3840,
    intermediate_size=15360,
    num_hidden_layers=48,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=256,
    query_pre_attn_scalar=256,
    sliding_window=1024,
)


def build_parts(*, small: bool, device: torch.device, dtype: torch.dtype, gemma: bool):
    from diffusers import SanaWMLTX2RefinerTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from transformers import Gemma3TextConfig, Gemma3TextModel

    # diffusers' defaults are the LTX-2 release; the tiny variants keep every kind of module.
    with torch.device("meta"):
        if small:
            transformer = tiny_refiner_transformer(perturb_seed=None)
            connectors = tiny_refiner_connectors(perturb_seed=None)
        else:
            transformer = SanaWMLTX2RefinerTransformer3DModel()
            connectors = LTX2TextConnectors()
    for module in (transformer, connectors):
        if any(True for _ in module.buffers()):
            raise AssertionError(f"{type(module).__name__} has buffers: to_empty would leave them undefined")
    # Dropping the audio stream on meta means its 5.8 billion parameters are never allocated.
    transformer = materialize(video_only(transformer), device, dtype, seed=0)
    connectors = materialize(connectors, device, dtype, seed=1)
    text_encoder = None
    if gemma:
        torch.manual_seed(2)
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # parameters created in the compute dtype, never in float32 first
        try:
            with torch.device(device):
                config = tiny_gemma3_text_config() if small else Gemma3TextConfig(**GEMMA3_12B)
                model = Gemma3TextModel(config).eval()
        finally:
            torch.set_default_dtype(default_dtype)
        text_encoder = RefinerTextEncoder(model, tiny_tokenizer())
    return transformer, connectors, text_encoder


class CallTimer:
    """Times every DiT call (CUDA-synchronised), keyed by its KV-cache mode."""

    NAMES = {
        "capture_pre_rope": "sink_capture",
        "inject": "step",
        "inject_and_capture_post_rope": "history_capture",
    }

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.calls: dict[str, list[float]] = defaultdict(list)
        self._start = 0.0
        module.register_forward_pre_hook(self._before, with_kwargs=True)
        module.register_forward_hook(self._after, with_kwargs=True)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _before(self, module, args, kwargs) -> None:
        self._sync()
        self._start = time.perf_counter()

    def _after(self, module, args, kwargs, output) -> None:
        self._sync()
        self.calls[self.NAMES[kwargs["kv_cache_mode"]]].append(time.perf_counter() - self._start)


def stage(device: torch.device):
    """(start, stop) closures measuring seconds and peak allocated GiB of one stage."""
    cuda = device.type == "cuda"

    def start() -> float:
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        return time.perf_counter()

    def stop(began: float) -> tuple[float, float | None]:
        if cuda:
            torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
        return time.perf_counter() - began, peak

    return start, stop


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny parts, 5 latent frames of 2x3 (CPU smoke test)")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--num_frames", type=int, help="pixel frames 8k+1 (default 161; 33 with --tiny)")
    p.add_argument("--mode", choices=REFINER_MODES, default="single_shot")
    p.add_argument("--fp8", action="store_true", help="float8 (e4m3) weight storage for the DiT")
    p.add_argument("--offload", choices=("none", "model", "group"), default="none")
    p.add_argument("--text_encoder", choices=("gemma", "standin"), default="gemma")
    p.add_argument("--out", required=True, help="JSON report")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    num_frames = args.num_frames or (33 if args.tiny else 161)
    if (num_frames - 1) % 8:
        p.error(f"--num_frames must be 8k+1, got {num_frames}")
    grid = (2, 3) if args.tiny else (22, 40)
    text_length = 64 if args.tiny else 1024
    cuda = device.type == "cuda"
    start, stop = stage(device)
    timings: dict[str, float] = {}
    memory: dict[str, float] = {}

    def record(name: str, began: float) -> None:
        seconds, peak = stop(began)
        timings[name] = seconds
        if peak is not None:
            memory[name] = peak

    began = start()
    transformer, connectors, text_encoder = build_parts(
        small=args.tiny, device=device, dtype=dtype, gemma=args.text_encoder == "gemma"
    )
    params = {
        "transformer_video_only": sum(q.numel() for q in transformer.parameters()),
        "connectors": sum(q.numel() for q in connectors.parameters()),
        "text_encoder": sum(q.numel() for q in text_encoder.model.parameters()) if text_encoder else 0,
    }
    refiner = Refiner(
        transformer,
        connectors,
        text_encoder,
        device=device,
        offload=args.offload,
        fp8=args.fp8,
        text_max_length=text_length,
    )
    record("build_random_weights", began)
    weights_gib = {
        name: sum(q.numel() * q.element_size() for q in module.parameters()) / 2**30
        for name, module in (("transformer", transformer), ("connectors", connectors))
    }
    if text_encoder is not None:
        weights_gib["text_encoder"] = (
            sum(q.numel() * q.element_size() for q in text_encoder.model.parameters()) / 2**30
        )
    if cuda:
        memory["weights_after_build"] = torch.cuda.memory_allocated(device) / 2**30

    began = start()
    if text_encoder is not None:
        prompt = refiner.encode_prompt(PROMPT)
    else:
        config = connectors.config
        shape = (1, text_length, config.caption_channels, config.text_proj_in_factor)
        hidden = torch.randn(
            shape, generator=torch.Generator(device).manual_seed(3), device=device, dtype=dtype
        )
        mask = torch.zeros(1, text_length, dtype=torch.int64, device=device)
        mask[:, -40:] = 1
        with on_device(connectors, device, offload=args.offload != "none"), torch.no_grad():
            embeds, _, mask = connectors(hidden, mask, padding_side="left")
        prompt = RefinerPrompt(embeds, mask)
    del text_encoder  # the refiner holds the last reference: releasing it frees Gemma
    refiner.release_text_encoder()
    record("text_encode", began)

    latent_frames = (num_frames - 1) // 8 + 1
    latents = torch.randn(1, transformer.config.in_channels, latent_frames, *grid, device=device, dtype=dtype)
    timer = CallTimer(transformer, device)
    began = start()
    refined = refiner(latents, prompt, mode=args.mode, progress=True)
    record("refine", began)

    calls = {name: values for name, values in timer.calls.items()}
    report = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "mode": args.mode,
        "fp8": args.fp8,
        "offload": args.offload,
        "text_encoder": args.text_encoder,
        "tiny": args.tiny,
        "num_frames": num_frames,
        "output_frames": num_frames - 1,
        "latent_shape": list(latents.shape),
        "text_tokens": text_length,
        "params": params,
        "weights_gib": weights_gib,
        "timings_s": {
            **timings,
            "dit_calls": calls,
            "step_mean": sum(calls["step"]) / len(calls["step"]),
        },
        "peak_memory_gib": memory,
        "output_finite": bool(torch.isfinite(refined.float()).all()),
    }
    for name, seconds in timings.items():
        peak = f"   peak {memory[name]:.2f} GiB" if name in memory else ""
        print(f"{name:>22}: {seconds:9.3f} s{peak}")
    for name, values in calls.items():
        print(f"{name:>22}: {', '.join(f'{v:.3f}' for v in values)} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
