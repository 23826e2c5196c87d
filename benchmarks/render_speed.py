"""Frames per second of the procedural-world ray-caster (``sana_wm.worlds.render``) on CPU and CUDA.

Renders the camera paths of a few seeded clips (the worlds ``sana-wm worlds render`` makes) at 176 x 320
by default, with and without shadows, and reports frames per second per device: one warm-up pass over all
clips, then ``--repeats`` timed passes; the best pass and the median are reported (the best is the
number to compare on a shared machine). CUDA timings are synchronised.

    python benchmarks/render_speed.py                         # CPU, and CUDA when available
    python benchmarks/render_speed.py --devices cuda --frames 121 --clips 8 --out render_speed.json

Prints one line per (device, shadows) and optionally writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from sana_wm.worlds import ClipSettings, make_clip, render


def measure(
    device: str, clips: list, height: int, width: int, shadows: bool, repeats: int, rays_per_batch: int
) -> dict:
    """Frames per second of the fastest and the median of ``repeats`` timed passes over ``clips``."""

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def one_pass() -> None:
        for clip in clips:
            path = clip.path
            render(
                clip.world, path.c2w_F44, path.intrinsics_F4, height, width, shadows=shadows, device=device
            )

    one_pass()  # warm-up
    sync()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        one_pass()
        sync()
        seconds.append(time.perf_counter() - start)
    frames = sum(len(c.path.c2w_F44) for c in clips)
    return {
        "device": device,
        "shadows": shadows,
        "rays_per_batch": rays_per_batch,
        "frames_per_pass": frames,
        "pass_seconds": seconds,
        "fps_best": frames / min(seconds),
        "fps_median": frames / statistics.median(seconds),
    }


def compare_with_cpu(device: str, clip, height: int, width: int) -> dict:
    """How far ``device``'s pixels and depths are from the CPU's for one clip (float rounding differs)."""
    path = clip.path
    ref = render(clip.world, path.c2w_F44, path.intrinsics_F4, height, width)
    out = render(clip.world, path.c2w_F44, path.intrinsics_F4, height, width, device=device)
    diff = (out.rgb_FHW3.cpu().int() - ref.rgb_FHW3.int()).abs()
    finite = torch.isfinite(ref.depth_FHW)
    same_sky = torch.equal(finite, torch.isfinite(out.depth_FHW.cpu()))
    depth_rel = ((out.depth_FHW.cpu() - ref.depth_FHW).abs() / ref.depth_FHW)[finite]
    check = {
        "device": device,
        "check": "vs cpu",
        "rgb_max_abs": int(diff.max()),
        "rgb_frac_pixels_over_2": float((diff.max(dim=-1).values > 2).float().mean()),
        "same_sky_mask": same_sky,
        "depth_median_rel": float(depth_rel.median()),
    }
    print(f"{device} vs cpu: {check}")
    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="176x320", metavar="HxW")
    parser.add_argument("--frames", type=int, default=33, help="frames per clip")
    parser.add_argument("--clips", type=int, default=4, help="clips (seeded worlds and paths)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (best and median reported)")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda if available")
    parser.add_argument("--rays_per_batch", type=int, nargs="+", default=[1 << 18], help="one run per value")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", metavar="FILE.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.size.lower().split("x"))
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    settings = ClipSettings(num_frames=args.frames, height=height, width=width, seed=0)
    clips = [make_clip(settings, i) for i in range(args.clips)]
    objects = sum(c.world.num_objects for c in clips) / len(clips)
    results = []
    for device in devices:
        name = (
            torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "cpu"
        )
        if device != "cpu":
            results.append(compare_with_cpu(device, clips[0], height, width))
        for rays_per_batch in args.rays_per_batch:
            for shadows in (True, False):
                r = measure(device, clips, height, width, shadows, args.repeats, rays_per_batch)
                r.update(device_name=name, threads=torch.get_num_threads(), size=f"{height}x{width}")
                results.append(r)
                print(
                    f"{device:5s} ({name}, {r['threads']} threads) {height}x{width} shadows={shadows!s:5s} "
                    f"rays/batch={rays_per_batch}: {r['fps_best']:7.1f} frames/s best, "
                    f"{r['fps_median']:7.1f} median of {args.repeats} passes "
                    f"({r['frames_per_pass']} frames, {objects:.1f} objects per world)"
                )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
