"""Training on N GPUs (torchrun + FSDP2) against one: the same loss curve, and throughput per GPU.

Runs the same run config twice with the real CLI, ``python -m sana_wm train run --config CFG`` (one
process) and ``torchrun --standalone --nproc_per_node=N -m sana_wm train run --config CFG``, on synthetic
clips, then compares the two ``metrics.jsonl`` loss curves step by step and reports samples/s and tokens/s
per GPU (mean over the steps after ``--warmup``) and rank 0's peak memory.

Sizes: ``small`` is the demo recipe's model (width 896, 8 blocks, ~177 M parameters) on 16 x 11 x 20
latents with 300 x 2304 text (the worlds demo's shapes); ``debug`` is the tests' two-block model.

    python benchmarks/train_fsdp_gpu.py --nproc 2 --steps 30 --out $OUT/train_fsdp.json
    python benchmarks/train_fsdp_gpu.py --device cpu --size debug --steps 3     # gloo smoke test

On CUDA both runs compute under bf16 autocast with fp32 weights (``parallel.param_dtype=auto``), so the
curves agree to reduction-order rounding; ``parallel.param_dtype=bf16`` gathers bf16 weights under FSDP2
(opt-in, see ``sana_wm/train/parallel.py``). Extra ``KEY=VALUE`` arguments
are applied to both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_config(
    size: str, device: str, steps: int, batch: int, extra: list[str], out_dir: Path
) -> dict[str, Any]:
    """The benchmark's run config (debug recipe edited) as a dict."""
    from sana_wm.train.config import apply_overrides, load_recipe

    overrides = [
        f"device={device}",
        f"max_steps={steps}",
        f"global_batch_size={batch}",
        f"data.num_clips={max(8, 2 * batch)}",
        "checkpoint.every=0",
        "metrics.log_every=1",
        "ema.decay=0",
        f"out_dir={out_dir}",
    ]
    if size == "small":
        overrides += [
            "model.in_channels=128",
            "model.hidden_size=896",
            "model.depth=8",
            "model.head_dim=112",
            "model.cross_attn_heads=8",
            "model.caption_channels=2304",
            "model.mlp_ratio=3.0",
            "model.softmax_every_n=4",
            "model.plucker_blocks=8",
            "data.frames=16",
            "data.height=11",
            "data.width=20",
            "data.text_tokens=300",
            "optim.lr=1e-4",
            "cpu_threads=0",
        ]
    return apply_overrides(load_recipe(str(REPO / "recipes" / "debug.py")), overrides + extra).to_dict()


def launch(cmd: list[str], env: dict[str, str]) -> None:
    print("+", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, env=env, cwd=REPO)
    if done.returncode:
        sys.exit(f"command failed with exit code {done.returncode}")


def summary(out_dir: Path, warmup: int, world: int) -> dict[str, Any]:
    from sana_wm.train.metrics import read_metrics

    records = read_metrics(out_dir)
    timed = records[warmup:] or records
    mean = lambda key: sum(r[key] for r in timed) / len(timed)  # noqa: E731
    return {
        "losses": [r["loss"] for r in records],
        "samples_per_s": mean("samples_per_s"),
        "samples_per_s_per_gpu": mean("samples_per_s") / world,
        "tokens_per_s_per_gpu": mean("tokens_per_s") / world,
        "peak_mem_gb_rank0": max(r["mem_gb"] for r in records),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--size", choices=["small", "debug"], default="small")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=None, help="global batch (default 2 per process)")
    parser.add_argument("--warmup", type=int, default=5, help="logged steps left out of the throughput mean")
    parser.add_argument("--tol", type=float, default=None, help="max |loss difference| (default 1e-5 on cpu)")
    parser.add_argument("--work_dir", default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    batch = args.batch or 2 * args.nproc
    tol = args.tol if args.tol is not None else (1e-5 if args.device == "cpu" else 2e-2)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="train_fsdp_"))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}

    results: dict[str, Any] = {"device": args.device, "size": args.size, "nproc": args.nproc, "batch": batch}
    for name, world in (("one", 1), ("many", args.nproc)):
        out_dir = work / name
        cfg_path = work / f"{name}.json"
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        cfg = run_config(args.size, args.device, args.steps, batch, args.overrides, out_dir)
        cfg_path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
        if world == 1:
            cmd = [sys.executable, "-m", "sana_wm", "--quiet", "train", "run", "--config", str(cfg_path)]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}"]
            cmd += ["-m", "sana_wm", "--quiet", "train", "run", "--config", str(cfg_path)]
        launch(cmd, env)
        results[name] = summary(out_dir, args.warmup, world)

    one, many = results["one"]["losses"], results["many"]["losses"]
    diffs = [abs(a - b) for a, b in zip(one, many, strict=True)]
    results["max_abs_loss_diff"] = max(diffs)
    results["max_rel_loss_diff"] = max(d / max(abs(a), 1e-12) for d, a in zip(diffs, one, strict=True))
    print(
        f"loss curves over {len(one)} steps: max |diff| {results['max_abs_loss_diff']:.3g}, "
        f"max rel {results['max_rel_loss_diff']:.3g} (tolerance {tol:g})"
    )
    for name, world in (("one", 1), ("many", args.nproc)):
        r = results[name]
        print(
            f"{world} process(es): {r['samples_per_s_per_gpu']:.3f} samples/s/GPU, "
            f"{r['tokens_per_s_per_gpu']:.0f} tokens/s/GPU, peak {r['peak_mem_gb_rank0']:.2f} GB (rank 0)"
        )
    if args.out:
        from sana_wm.utils.atomic import atomic_output

        with atomic_output(args.out) as tmp:
            Path(tmp).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0 if results["max_rel_loss_diff" if args.device == "cuda" else "max_abs_loss_diff"] <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
