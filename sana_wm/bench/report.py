"""The benchmark report: its environment header, the JSON file, and markdown rows for BENCHMARKS.md."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
from typing import Any

import torch

from sana_wm.bench.settings import BenchSettings
from sana_wm.utils.atomic import atomic_output


def environment(settings: BenchSettings, command: str) -> dict[str, Any]:
    """Date, card, library versions and the command line of this run."""
    try:
        import diffusers

        diffusers_version: str | None = diffusers.__version__
    except ImportError:
        diffusers_version = None
    cuda = settings.device.type == "cuda"
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(settings.device) if cuda else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "diffusers": diffusers_version,
        "python": platform.python_version(),
        "command": command,
    }


def write_report(report: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``report`` as JSON at ``path`` (atomically: nothing is left behind on failure)."""
    text = json.dumps(report, indent=2, allow_nan=True) + "\n"
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def _side(entry: dict[str, Any], side: str) -> dict[str, Any] | str | None:
    return entry.get(side)


def _field(side: dict[str, Any] | str | None, key: str, digits: int = 2, scale: float = 1.0) -> str:
    if side is None:
        return "—"
    if isinstance(side, str):
        return side
    value = side.get(key)
    return _num(value * scale if isinstance(value, int | float) else value, digits)


def _percent(side: dict[str, Any] | str | None) -> str:
    return "%" if isinstance(side, dict) and side.get("mfu") is not None else ""


def _peak(side: dict[str, Any] | str | None) -> str:
    if not isinstance(side, dict):
        return _field(side, "peak_allocated_gib")
    alloc, device = side.get("peak_allocated_gib"), side.get("peak_device_gib")
    return f"{_num(alloc, 1)} / {_num(device, 1)}"


TRANSFORMER_HEADER = (
    "| frames (latent) | ours s/step | peer s/step | peer/ours | ours tokens/s "
    "| ours peak GiB (alloc / device) | peer peak GiB (alloc / device) | ours MFU | peer MFU "
    "| ours vs peer max rel / rel L2 |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)
PIPELINE_HEADER = (
    "| frames (latent) | steps | text encode s | VAE encode s | sampling s | s/step | decode s "
    "| peak GiB (alloc) | device peak GiB |\n|---|---|---|---|---|---|---|---|---|"
)


def transformer_rows(body: dict[str, Any]) -> list[str]:
    """One markdown row per length of a transformer report body."""
    rows = []
    for entry in body["lengths"]:
        ours, peer = _side(entry, "ours"), _side(entry, "peer")
        ratio = entry.get("peer_over_ours")
        err = entry.get("ours_vs_peer")
        err_text = f"{err['max_rel']:.2e} / {err['rel_l2']:.2e}" if err else "—"
        rows.append(
            f"| {entry['frames']} ({entry['latent_frames']}) | {_field(ours, 's_per_step')} "
            f"| {_field(peer, 's_per_step')} | {_num(ratio)}{'×' if ratio else ''} "
            f"| {_field(ours, 'tokens_per_s', 0)} | {_peak(ours)} | {_peak(peer)} "
            f"| {_field(ours, 'mfu', 1, 100.0)}{_percent(ours)} "
            f"| {_field(peer, 'mfu', 1, 100.0)}{_percent(peer)} | {err_text} |"
        )
    return rows


def pipeline_rows(body: dict[str, Any]) -> list[str]:
    """One markdown row per length of a pipeline report body."""
    rows = []
    for entry in body["lengths"]:
        if entry.get("result") == "oom":
            rows.append(f"| {entry['frames']} | {entry['steps']} | oom | oom | oom | oom | oom | oom | oom |")
            continue
        frames = f"{entry['frames_generated']} ({entry['latent_frames']})"
        t = entry["timings_s"]
        rows.append(
            f"| {frames} | {entry['steps']} | {_num(t.get('text_encode'))} | {_num(t.get('vae_encode'))} "
            f"| {_num(t.get('sampling'))} | {_num(t.get('sampling_per_step'))} | {_num(t.get('decode'))} "
            f"| {_num(entry.get('peak_allocated_max_gib'), 1)} | {_num(entry.get('peak_device_gib'), 1)} |"
        )
    return rows


STREAM_HEADER = (
    "| frames (chunks) | variant | first chunk s | steady s/chunk | real-time × | total s "
    "| setup peak GiB | stream peak alloc GiB (after chunk 2 / end) | device GiB |"
    "\n|---|---|---|---|---|---|---|---|---|"
)


def stream_rows(body: dict[str, Any]) -> list[str]:
    """One markdown row per length and variant of a stream report body."""
    rows = []
    for entry in body["lengths"]:
        peaks = entry.get("peak_allocated_gib_after_chunk") or []
        growth = f"{_num(peaks[1], 2)} / {_num(peaks[-1], 2)}" if len(peaks) > 1 else "n/a"
        rows.append(
            f"| {entry['frames']} ({entry['chunks']}) | {entry['variant']} "
            f"| {_num(entry['first_chunk_s'], 3)} | {_num(entry['steady_chunk_s'], 3)} "
            f"| {_num(entry['realtime_factor'])} | {_num(entry['total_s'])} "
            f"| {_num(entry.get('peak_setup_allocated_gib'), 2)} | {growth} "
            f"| {_num(entry.get('peak_device_gib'), 1)} |"
        )
    return rows


def markdown(report: dict[str, Any]) -> str:
    """The header and rows for BENCHMARKS.md, plus a line naming the card, date and matmul rate."""
    env = report["environment"]
    if report["settings"]["mode"] == "stream":
        table = [STREAM_HEADER, *stream_rows(report)]
        note = f"{env['date']}, {env['device']}, torch {env['torch']}"
    elif report["settings"]["mode"] == "pipeline":
        table = [PIPELINE_HEADER, *pipeline_rows(report)]
        note = f"{env['date']}, {env['device']}, torch {env['torch']}"
    else:
        table = [TRANSFORMER_HEADER, *transformer_rows(report)]
        note = (
            f"{env['date']}, {env['device']}, torch {env['torch']}, diffusers {env['diffusers']}, "
            f"measured matmul rate {report['matmul_tflops']:.3g} TFLOP/s"
        )
        ref = report.get("fp32_reference")
        if ref and "ours_vs_fp32" in ref:
            against = [
                f"{side} {ref[f'{side}_vs_fp32']['rel_l2']:.2e}"
                for side in ("ours", "peer")
                if f"{side}_vs_fp32" in ref
            ]
            note += f"; rel L2 vs ours fp32 at {ref['frames']} frames: " + ", ".join(against)
    return "\n".join([note, "", *table])
