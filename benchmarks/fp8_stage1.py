"""fp8 weight storage for the stage-1 transformer at full size (random weights, GPU): the weights' memory,
seconds per forward (= one denoising step, CFG batch 2) and the output's error against the same model in
bf16, per clip length. Prints a markdown table and writes JSON.

    python benchmarks/fp8_stage1.py --frames 161,961 --out fp8.json

The model is the release architecture (``sana_wm_1600m_720p``) with the bench's random weights; bf16 is
measured first, then the same model is quantised in place (``sana_wm.models.quant.quantize_fp8_``) and
measured again on the same inputs. Memory: bytes of the parameters and buffers, and the allocator's peak
during the timed forwards. The ``triton`` backend.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from sana_wm.bench.build import build_ours, cast_inputs, make_inputs, rel_l2
from sana_wm.bench.timing import time_forward
from sana_wm.latent_shape import latent_frames
from sana_wm.models import preset
from sana_wm.models.quant import quantize_fp8_


def _bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", default="161,961")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="sana_wm_1600m_720p", help="tiny: a CPU check of this script")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = preset(args.preset)
    backend = "triton" if device.type == "cuda" else "torch"
    cuda = device.type == "cuda"
    model = build_ours(cfg, device, seed=0).to(torch.bfloat16)
    lengths = [int(f) for f in args.frames.split(",")]
    inputs = {
        f: cast_inputs(make_inputs(cfg, 2, latent_frames(f), 22, 40, seed=1), device, torch.bfloat16)
        for f in lengths
    }
    rows: dict[str, dict] = {"bf16": {"weights_gib": _bytes(model) / 2**30}, "fp8": {}}
    outputs = {}
    for name in ("bf16", "fp8"):
        if name == "fp8":
            start = time.perf_counter()
            report = quantize_fp8_(model)
            if cuda:
                torch.cuda.synchronize()
            rows["fp8"] = {
                "weights_gib": _bytes(model) / 2**30,
                "quantize_s": time.perf_counter() - start,
                "modules": report.modules,
                "params": report.params,
            }
        for f in lengths:

            def forward(f: int = f) -> torch.Tensor:
                return model(**inputs[f], backend=backend)

            timing = time_forward(forward, device, warmup=1, repeats=args.repeats)
            out = timing.output.float().cpu()
            entry = {
                "s_per_step": min(timing.seconds),
                "peak_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else 0.0,
            }
            if name == "bf16":
                outputs[f] = out
            else:
                entry["rel_l2_vs_bf16"] = rel_l2(out, outputs[f])
            rows[name][str(f)] = entry
            del out, timing
            if cuda:
                torch.cuda.empty_cache()
    print("| weights | GiB | " + " | ".join(f"{f} fr: s/step, peak GiB, err vs bf16" for f in lengths) + " |")
    for name, row in rows.items():
        cells = [
            f"{row[str(f)]['s_per_step']:.3f} s, {row[str(f)]['peak_allocated_gib']:.1f}, "
            f"{row[str(f)].get('rel_l2_vs_bf16', 0.0):.2e}"
            for f in lengths
        ]
        print(f"| {name} | {row['weights_gib']:.2f} | " + " | ".join(cells) + " |")
    env = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
        "command": sys.argv,
    }
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump({"environment": env, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
