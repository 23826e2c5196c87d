"""One demo-model training run, phase by phase, inside a wall-clock budget (see :mod:`demo_training`).

Phases and their share of the budget ``T`` (``minutes · 60``), all timed from the start of the run:

1. render (until ``render_fraction · T``): held-out clips and the demo world first, then training clips on the
   device; CPU worker processes render more training clips from the start until the end of phase 2;
2. VAE (until ``(render_fraction + vae_fraction) · T``), on everything rendered so far (growing);
3. encode every clip's four variants, set the VAE's latent statistics, save the VAE;
4. DiT with :class:`sana_wm.train.Trainer`: a short calibration run measures the step time, the main run
   resumes it with the step count that fills the time left before ``T − eval_reserve_s`` (and is stopped at
   that deadline in any case); the EMA weights are exported;
5. evaluate the saved files (:func:`sana_wm.inference.demo_model.load_demo_pipeline`), write the card.

A run may continue an earlier one (``init_from``): no VAE phase (its VAE is reused unchanged), new clips,
and the DiT starts from its weights, so the DiT gets a second budget. With ``chunk_causal`` it instead
fine-tunes that run's bidirectional DiT into the chunk-causal patch (:mod:`demo_training.chunk_causal`).

Run as a module from the repository root (the same arguments as ``scripts/train_demo_model.py``), e.g. the
chunk-causal patch of the bundled model on a GPU::

    python -m scripts.demo_training.run --device cuda --minutes 4 --init_from sana_wm/assets/demo \
        --chunk_causal --out /tmp/demo_chunk_causal
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from demo_training.data import (
    CpuRenderPool,
    LatentClips,
    RenderedClip,
    auto_workers,
    clip_settings,
    demo_world,
    render_clip,
    render_for,
)
from demo_training.evaluate import mirrored_action, motion_metrics
from demo_training.recipe import DemoRecipe, dit_run_config
from demo_training.vae_training import (
    build_vae,
    encode_clips,
    load_vae,
    normalise,
    reconstruction_psnr,
    set_latent_stats,
    train_vae,
)
from sana_wm.inference import CameraPath, GenerationRequest, generate
from sana_wm.inference.demo_model import (
    DEMO_DIR,
    FIRST_FRAME_FILE,
    METADATA_FILE,
    METADATA_FORMAT,
    MODEL_CARD_FILE,
    NULL_TEXT_TOKENS,
    PROMPT_NOTE,
    TRANSFORMER_FILE,
    VAE_SUBFOLDER,
    DemoSettings,
    load_demo_pipeline,
    read_demo_settings,
    read_metadata,
)
from sana_wm.models import load_transformer, save_transformer
from sana_wm.train import Trainer, export_inference, read_metrics
from sana_wm.utils.atomic import atomic_output
from sana_wm.utils.video_io import VideoWriter
from sana_wm.worlds import render

log = logging.getLogger("sana_wm")
SAMPLE_FILE = "sample.mp4"
_CARD_FIELD = re.compile(r"<!-- m:(\w+) -->.*?<!-- /m -->", re.DOTALL)


class Clock:
    """Seconds since the run began, and the deadline of a fraction of the budget."""

    def __init__(self, budget_s: float) -> None:
        self.start, self.budget = time.perf_counter(), budget_s

    def now(self) -> float:
        return time.perf_counter() - self.start

    def left_until(self, fraction: float, minus: float = 0.0) -> float:
        return fraction * self.budget - minus - self.now()


def train_demo_model(
    recipe: DemoRecipe,
    out_dir: Path,
    *,
    device: str,
    minutes: float,
    work_dir: Path,
    init_from: Path | None = None,
    chunk_causal: bool = False,
) -> dict[str, Any]:
    """Run every phase and write the demo files to ``out_dir``; returns the metadata written.

    ``init_from`` (the output folder of an earlier run of the same recipe) continues that run instead: its
    VAE is kept as it is (weights and latent statistics, so the latents mean what they meant), there is no
    VAE phase, and the DiT starts from its transformer, so a second budget goes to fresh renders and DiT
    steps. ``chunk_causal`` (with ``init_from``) writes only the chunk-causal patch of that run's
    transformer and its record (:func:`demo_training.chunk_causal.train_chunk_causal_patch`).
    """
    if chunk_causal:
        from demo_training.chunk_causal import train_chunk_causal_patch

        return train_chunk_causal_patch(
            recipe, out_dir, device=device, minutes=minutes, work_dir=work_dir, init_from=init_from
        )
    clock = Clock(minutes * 60.0)
    dev = setup_device(device, recipe.seed)
    previous = read_metadata(init_from) if init_from is not None else None
    threads = torch.get_num_threads()
    timings: dict[str, float] = {}
    heldout, demo_truth, demo_k, clips, gpu_clips, vae, vae_stats = data_and_vae(
        recipe, dev, clock, timings, init_from, clip_round=0 if init_from is None else 1
    )

    raw, camera, plucker = encode_clips(vae, clips, recipe, dev)
    latents = set_latent_stats(vae, raw) if previous is None else normalise(vae, raw)
    vae_psnr = reconstruction_psnr(vae, heldout, dev)
    _save_vae(vae, out_dir)
    del vae, raw
    _write_first_frame(out_dir, demo_truth[0])
    metadata = _metadata(recipe, demo_k[0])
    write_json(out_dir / METADATA_FILE, metadata)
    timings["encode"] = clock.now() - sum(timings.values())
    log.info(
        "encoded %d samples %s; held-out VAE PSNR %.2f dB", len(latents), tuple(latents.shape[1:]), vae_psnr
    )

    dataset = LatentClips(latents, camera, plucker, recipe.dit_caption_channels)
    start = None if init_from is None else str(init_from / TRANSFORMER_FILE)
    dit_stats = train_dit(recipe, dataset, work_dir / "dit", dev, clock, start)
    _export_transformer(work_dir / "dit", out_dir)
    timings["dit"] = clock.now() - sum(timings.values())

    pipe = load_demo_pipeline(dev, directory=out_dir)
    metrics = evaluate_generation(
        pipe, read_demo_settings(out_dir), heldout, demo_truth, out_dir / SAMPLE_FILE
    )
    timings["evaluate"] = clock.now() - sum(timings.values())
    timings["total"] = clock.now()
    torch.set_num_threads(threads)
    before = (previous or {}).get("metrics", {})
    dit_stats["dit_steps_total"] = dit_stats["dit_steps"] + before.get("dit_steps_total", 0)
    metadata.update(
        data={
            "train_clips": len(clips),
            "gpu_rendered": gpu_clips,
            "cpu_rendered": len(clips) - gpu_clips,
            "train_samples": len(dataset),
            "variants": ["as rendered", "mirrored", "reversed", "mirrored and reversed"],
            "heldout_clips": len(heldout),
        },
        metrics={"vae_heldout_psnr_db": vae_psnr, **vae_stats, **dit_stats, **metrics},
        params=_params(out_dir),
        bytes={
            p.relative_to(out_dir).as_posix(): p.stat().st_size
            for p in sorted(out_dir.rglob("*"))
            if p.is_file()
        },
        timings_s=timings,
        environment=environment(dev),
    )
    if previous is not None:
        metadata["continued_from"] = {k: previous[k] for k in ("data", "metrics", "timings_s", "environment")}
    write_json(out_dir / METADATA_FILE, metadata)
    _write_card(out_dir, metadata)
    return metadata


def setup_device(device: str, seed: int) -> torch.device:
    """The run's device (TF32 and cuDNN autotuning on CUDA), with the torch seed set."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)
    return dev


def data_and_vae(
    recipe: DemoRecipe,
    dev: torch.device,
    clock: Clock,
    timings: dict[str, float],
    init_from: Path | None,
    *,
    clip_round: int,
) -> tuple[list[RenderedClip], np.ndarray, np.ndarray, list[RenderedClip], int, Any, dict[str, Any]]:
    """Phases 1-2: held-out renders, training clips (device + CPU workers) and the trained (or loaded) VAE.

    ``clip_round`` picks the training clips' indices so that runs building on each other render different
    clips: the device renders from ``clip_round · max_gpu_clips``, the CPU workers from
    ``cpu_index_offset + clip_round · max_cpu_clips`` (0: a first run, 1: a continued run, 2: the
    chunk-causal patch). Returns the held-out clips, the demo world's frames and intrinsics, the training
    clips, how many of them the device rendered, the VAE (on ``dev``) and its training numbers.
    """
    s = recipe.settings
    train_settings = clip_settings(s.height, s.width, s.num_frames, recipe.train_seed, recipe.shadows)
    workers = auto_workers(recipe.cpu_workers)
    # The host only feeds the GPU, and render workers own the other cores: intra-op threads competing with
    # busy cores stall at every barrier (tens of times slower), so the main process keeps few.
    threads = torch.get_num_threads()
    torch.set_num_threads(min(4, threads) if dev.type == "cuda" else max(1, threads - workers))
    first = clip_round * recipe.max_gpu_clips
    offset = recipe.cpu_index_offset + clip_round * recipe.max_cpu_clips
    pool = CpuRenderPool(train_settings, offset, workers, recipe.max_cpu_clips)
    try:
        heldout, demo_truth, demo_k = _render_heldout(recipe, dev)
        left = clock.left_until(recipe.render_fraction)
        clips = render_for(train_settings, first, left, recipe.max_gpu_clips, dev)
        gpu_clips = len(clips)
        clips += pool.harvest()
        timings["render"] = clock.now()
        log.info(
            "rendered %d clips on %s (+%d by CPU workers) in %.0f s",
            gpu_clips,
            dev,
            len(clips) - gpu_clips,
            timings["render"],
        )
        if init_from is None:
            vae = build_vae(recipe, recipe.seed)
            seconds = max(1.0, clock.left_until(recipe.render_fraction + recipe.vae_fraction))
            stats = train_vae(vae, clips, recipe, device=dev, seconds=seconds, more_clips=pool.harvest)
        else:
            vae = load_vae(init_from / VAE_SUBFOLDER, recipe).to(dev)
            before = read_metadata(init_from)["metrics"]
            stats = {k: v for k, v in before.items() if k.startswith("vae_") and k != "vae_heldout_psnr_db"}
        clips += pool.stop()
    finally:
        pool.stop()
    timings["vae"] = clock.now() - timings["render"]
    return heldout, demo_truth, demo_k, clips, gpu_clips, vae, stats


def _render_heldout(
    recipe: DemoRecipe, dev: torch.device
) -> tuple[list[RenderedClip], np.ndarray, np.ndarray]:
    """The held-out clips, and the demo world's true frames ``(F, H, W, 3)`` and intrinsics ``(F, 4)``."""
    s = recipe.settings
    heldout_settings = clip_settings(s.height, s.width, s.num_frames, recipe.heldout_seed, recipe.shadows)
    heldout = [render_clip(heldout_settings, i, dev) for i in range(recipe.eval_clips)]
    world, c2w, intrinsics = demo_world(recipe.demo_world_seed, s.action, s.action_mapping, s.height, s.width)
    frames = render(
        world,
        c2w[: s.num_frames],
        intrinsics[: s.num_frames],
        s.height,
        s.width,
        shadows=recipe.shadows,
        device=dev,
    )
    return heldout, frames.rgb_FHW3.cpu().numpy(), intrinsics[: s.num_frames]


def train_dit(
    recipe: DemoRecipe,
    dataset: LatentClips,
    run_dir: Path,
    dev: torch.device,
    clock: Clock,
    init_from: str | None,
    *,
    chunk_causal: bool = False,
) -> dict:
    """Phase 4: a calibration run, then the main run sized to the time left (see the module docstring);
    ``chunk_causal``: the patch's fine-tune (:func:`demo_training.recipe.dit_run_config`)."""
    calibration = min(recipe.dit_calibration_steps, recipe.dit_max_steps)
    cfg = dit_run_config(
        recipe,
        run_dir,
        device=dev.type,
        max_steps=calibration,
        init_from=init_from,
        chunk_causal=chunk_causal,
    )
    Trainer(cfg, dataset=dataset).run()
    seconds_per_step = recipe.dit_batch / read_metrics(run_dir)[-1]["samples_per_s"]
    left = clock.left_until(1.0, recipe.eval_reserve_s)
    steps = min(recipe.dit_max_steps, calibration + max(0, int(0.97 * left / seconds_per_step)))
    log.info("DiT: %.3f s/step measured; %d steps fit the %.0f s left", seconds_per_step, steps, left)
    if steps > calibration:
        trainer = Trainer(dataclasses.replace(cfg, max_steps=steps), dataset=dataset)
        timer = threading.Timer(max(1.0, left), trainer.request_stop)
        timer.start()
        try:
            trainer.run()
        finally:
            timer.cancel()
    records = read_metrics(run_dir)
    tail = [r["loss"] for r in records[-5:]]
    return {
        "dit_steps": records[-1]["step"],
        "dit_samples_seen": records[-1]["step"] * recipe.dit_batch,
        "dit_loss_first": records[0]["loss"],
        "dit_loss_final": float(np.mean(tail)),
        "dit_seconds_per_step": float(np.median([recipe.dit_batch / r["samples_per_s"] for r in records])),
    }


def _export_transformer(run_dir: Path, out_dir: Path) -> None:
    """EMA weights of the run, stored as fp16 with the config in the metadata."""
    fp32 = run_dir / "transformer_fp32.safetensors"
    export_inference(run_dir, fp32, weights="ema")
    save_transformer(load_transformer(fp32, dtype=torch.float16), out_dir / TRANSFORMER_FILE)


def _save_vae(vae: Any, out_dir: Path) -> None:
    # half() rather than to(float16): diffusers' to() warns about modules kept in fp32 (there are none here).
    vae.cpu().half().save_pretrained(str(out_dir / VAE_SUBFOLDER), safe_serialization=True)


def _write_first_frame(out_dir: Path, frame_HW3: np.ndarray) -> None:
    with atomic_output(out_dir / FIRST_FRAME_FILE) as tmp:
        Image.fromarray(frame_HW3).save(tmp)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(_finite(data), indent=1, allow_nan=False) + "\n", encoding="utf-8")


def _metadata(recipe: DemoRecipe, intrinsics_4: np.ndarray) -> dict[str, Any]:
    settings = dataclasses.replace(recipe.settings, intrinsics=tuple(float(v) for v in intrinsics_4))
    return {
        "format": METADATA_FORMAT,
        "settings": settings.to_dict(),
        "text": {
            "kind": "null caption (sana_wm.inference.demo_model.null_text)",
            "tokens": NULL_TEXT_TOKENS,
            "caption_channels": recipe.dit_caption_channels,
            "note": PROMPT_NOTE,
        },
        "recipe": recipe.to_dict(),
    }


def _generate(pipe: Any, settings: DemoSettings, image: Image.Image, camera: CameraPath) -> np.ndarray:
    """Frames ``(F, H, W, 3)`` uint8 of one prompt-free generation with the demo settings."""
    request = GenerationRequest(image=image, prompt="", camera=camera, sampling=settings.sampling())
    return generate(pipe, request, progress=False).frames.numpy()


def evaluate_generation(
    pipe: Any, settings: DemoSettings, heldout: list[RenderedClip], demo_truth: np.ndarray, sample_path: Path
) -> dict:
    """Generate with ``pipe`` (built from the saved files): held-out clips along their true paths, the demo
    world with the default and the mirrored action; write the sample video (truth | default | mirrored)."""
    generated = [
        _generate(
            pipe,
            settings,
            Image.fromarray(c.frames_FHW3[0].numpy()),
            CameraPath(c2w_F44=c.c2w_F44, intrinsics=c.intrinsics_F4),
        )
        for c in heldout
    ]
    first = Image.fromarray(demo_truth[0])

    def along(action: str) -> CameraPath:
        return CameraPath.from_action(
            action, mapping=settings.action_mapping, intrinsics=settings.intrinsics_array()
        )

    demo = _generate(pipe, settings, first, along(settings.action))
    mirrored = _generate(
        pipe, settings, first, along(mirrored_action(settings.action, settings.action_mapping))
    )
    if importlib.util.find_spec("av") is None:
        log.warning("PyAV is not installed: %s not written", sample_path.name)
    else:
        with VideoWriter(sample_path, fps=settings.fps) as writer:
            writer.write_many(np.concatenate([demo_truth, demo, mirrored], axis=2))
    metrics = {
        f"heldout_{k}": v
        for k, v in motion_metrics(generated, [c.frames_FHW3.numpy() for c in heldout]).items()
    }
    metrics.update({f"demo_{k}": v for k, v in motion_metrics([demo], [demo_truth]).items()})
    metrics.update({f"mirrored_{k}": v for k, v in motion_metrics([mirrored], [demo_truth]).items()})
    for key, value in sorted(metrics.items()):
        log.info("eval %s = %.4f", key, value)
    return metrics


def _params(out_dir: Path) -> dict[str, int]:
    """Parameter counts of the saved transformer and VAE (buffers such as the latent statistics excluded)."""
    from diffusers import AutoencoderKLLTX2Video

    transformer = load_transformer(out_dir / TRANSFORMER_FILE)
    vae = AutoencoderKLLTX2Video.from_pretrained(str(out_dir / VAE_SUBFOLDER))
    return {
        "transformer": sum(p.numel() for p in transformer.parameters()),
        "vae": sum(p.numel() for p in vae.parameters()),
        "vae_encoder": sum(p.numel() for p in vae.encoder.parameters()),
        "vae_decoder": sum(p.numel() for p in vae.decoder.parameters()),
    }


def environment(dev: torch.device) -> dict[str, str]:
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "diffusers": importlib.metadata.version("diffusers"),
    }


def fill_model_card(template: str, values: dict[str, Any]) -> str:
    """Replace every ``<!-- m:NAME -->...<!-- /m -->`` field of ``template`` whose NAME is in ``values``; the
    markers stay, so the filled card is still a template for the next run."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        if isinstance(value, bool) or value is None:
            text = str(value)
        elif isinstance(value, int):
            text = f"{value:,}"
        elif isinstance(value, float):
            text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        else:
            text = str(value)
        return f"<!-- m:{name} -->{text}<!-- /m -->"

    return _CARD_FIELD.sub(fill, template)


def _write_card(out_dir: Path, metadata: dict[str, Any]) -> None:
    template = DEMO_DIR / MODEL_CARD_FILE
    if not template.is_file():
        log.warning("no model card template at %s: %s not written", template, MODEL_CARD_FILE)
        return
    values: dict[str, Any] = {**metadata["metrics"], **metadata["data"], **metadata["params"]}
    values.update({f"time_{k}_s": v for k, v in metadata["timings_s"].items()})
    values.update(metadata["environment"])
    values["total_mb"] = (
        sum(metadata["bytes"].get(k, 0) for k in metadata["bytes"] if k.endswith(".safetensors")) / 1e6
    )
    with atomic_output(out_dir / MODEL_CARD_FILE) as tmp:
        tmp.write_text(fill_model_card(template.read_text(encoding="utf-8"), values), encoding="utf-8")


if __name__ == "__main__":
    # ``python -m scripts.demo_training.run ARGS`` is ``python scripts/train_demo_model.py ARGS``. The script
    # runs as ``__main__`` itself, so the CPU render workers (spawned) start from that light script instead of
    # importing this module's diffusers and torch again.
    import runpy

    runpy.run_path(str(Path(__file__).resolve().parents[1] / "train_demo_model.py"), run_name="__main__")
