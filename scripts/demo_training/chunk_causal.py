"""The chunk-causal patch of a trained demo model: fine-tune its bidirectional DiT to run chunk-causally and
store only the tensors that changed (``sana_wm.inference.demo_patch``).

``python scripts/train_demo_model.py --init_from DIR --chunk_causal --out OUT`` (or ``python -m
scripts.demo_training.run`` with the same arguments) runs, in the wall-clock budget ``T``:

1. render fresh clips (the third index range of the recipe: neither the first run's nor a continued run's)
   and the held-out clips, as a continued run does; the VAE of ``DIR`` is loaded, not trained;
2. encode them with that VAE and its latent statistics (training and held-out clips, four variants each);
3. train the DiT with :class:`sana_wm.train.Trainer` from ``DIR/transformer.safetensors`` with
   ``model.chunk_size = causal_chunk_size`` (3: chunks ``[0, 4), [4, 7), [7, 11)`` of the 11 latent frames),
   ``loss.chunk_size`` the same with the official diffusion-forcing timestep mixture, and only
   ``causal_trainable`` trainable (:data:`demo_training.recipe.CHUNK_CAUSAL_TRAINABLE`): a calibration run,
   then the steps that fit until ``T − eval_reserve_s``; the EMA weights are kept;
4. write the patch (the trained tensors, fp16 like the base, with the base's SHA-256) and evaluate it: the
   held-out flow loss on fixed draws of the same mixture (and of its clean-prefix mode alone, the
   streaming case) for the bidirectional model, for its weights run chunk-causally without the patch and for
   the patched model, and generation with the demo settings through ``sana_wm.inference.generate`` (which
   samples a chunk-causal model with the official diffusion-forcing staircase, ``ChunkFlowEuler``) against
   the true renders. The staircase makes more (shorter) model calls than the bidirectional sampler, so this
   evaluation may outlast ``eval_reserve_s`` by some seconds.

Writes to ``OUT``: ``transformer_chunk_causal.safetensors``, ``demo_model.json`` (``DIR``'s, unchanged but for
a new ``"chunk_causal"`` entry: recipe, patch, data, steps, losses, metrics, timings),
``sample_chunk_causal.mp4`` (true render | generated | mirrored action) and ``train_log.txt``. Copy the first
two into ``sana_wm/assets/demo/``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from demo_training.data import LatentClips
from demo_training.recipe import DemoRecipe, causal_dit_config, dit_config, dit_run_config
from demo_training.run import (
    Clock,
    data_and_vae,
    environment,
    evaluate_generation,
    setup_device,
    train_dit,
    write_json,
)
from demo_training.vae_training import encode_clips, normalise
from sana_wm.errors import InputError
from sana_wm.inference.demo_model import (
    METADATA_FILE,
    TRANSFORMER_FILE,
    load_demo_pipeline,
    read_demo_settings,
    read_metadata,
)
from sana_wm.inference.demo_patch import (
    PATCH_FILE,
    PATCH_FORMAT,
    load_chunk_causal_demo_transformer,
    write_patch,
)
from sana_wm.models import load_transformer
from sana_wm.models.checkpoint_io import read_checkpoint
from sana_wm.train import export_inference
from sana_wm.train.config import config_to_dict
from sana_wm.train.losses import LossConfig, flow_inputs, flow_loss
from sana_wm.train.parallel import ParallelConfig, autocast_context, trainable_names

log = logging.getLogger("sana_wm")
SAMPLE_FILE = "sample_chunk_causal.mp4"
METADATA_KEY = "chunk_causal"
CLIP_ROUND = 2  # training-clip indices past the first and the continued run's


def train_chunk_causal_patch(
    recipe: DemoRecipe,
    out_dir: Path,
    *,
    device: str,
    minutes: float,
    work_dir: Path,
    init_from: Path | None,
) -> dict[str, Any]:
    """Fine-tune ``init_from``'s DiT chunk-causally and write its patch to ``out_dir`` (module docstring);
    returns the metadata written (``init_from``'s with the ``"chunk_causal"`` entry)."""
    if init_from is None:
        raise InputError("--chunk_causal: needs --init_from, the trained bidirectional demo model to patch")
    base_file = Path(init_from) / TRANSFORMER_FILE
    metadata = read_metadata(init_from)
    base_config = read_checkpoint(base_file).config
    if base_config != dit_config(recipe):
        raise InputError(
            f"--chunk_causal: {base_file} is not this recipe's bidirectional DiT (a chunk-causal or "
            "differently sized model; --tiny patches only a --tiny run's output)"
        )
    clock = Clock(minutes * 60.0)
    dev = setup_device(device, recipe.seed)
    threads = torch.get_num_threads()
    timings: dict[str, float] = {}
    heldout, demo_truth, _, clips, gpu_clips, vae, _ = data_and_vae(
        recipe, dev, clock, timings, init_from, clip_round=CLIP_ROUND
    )
    raw, camera, plucker = encode_clips(vae, clips, recipe, dev)
    dataset = LatentClips(normalise(vae, raw), camera, plucker, recipe.dit_caption_channels)
    raw, camera, plucker = encode_clips(vae, heldout, recipe, dev)
    heldout_set = LatentClips(normalise(vae, raw), camera, plucker, recipe.dit_caption_channels)
    del vae, raw
    timings["encode"] = clock.now() - sum(timings.values())
    log.info("encoded %d training and %d held-out samples", len(dataset), len(heldout_set))

    run_dir = work_dir / "dit_chunk_causal"
    dit_stats = train_dit(recipe, dataset, run_dir, dev, clock, str(base_file), chunk_causal=True)
    fp32 = run_dir / "transformer_fp32.safetensors"
    export_inference(run_dir, fp32, weights="ema")
    trained = load_transformer(fp32)
    keys = trainable_names(trained.config, recipe.causal_trainable)
    patch = write_patch(base_file, trained, keys, out_dir / PATCH_FILE)
    del trained
    timings["dit"] = clock.now() - sum(timings.values())
    log.info("patch: %d tensors, %d parameters -> %s", len(patch.tensors), patch.num_params, PATCH_FILE)

    loss_cfg = dit_run_config(recipe, run_dir, device=dev.type, max_steps=1, chunk_causal=True).loss
    patched = load_chunk_causal_demo_transformer(
        init_from, dev, torch.float32, patch_path=out_dir / PATCH_FILE
    )
    models = {
        "bidirectional": load_transformer(base_file, device=dev, dtype=torch.float32),
        "base_chunk_causal": load_transformer(
            base_file, device=dev, dtype=torch.float32, config=causal_dit_config(recipe)
        ),
        "chunk_causal": patched,
    }
    # The training mixture, and its clean-prefix mode alone (earlier chunks clean: what streaming feeds).
    modes = {"": loss_cfg, "clean_prefix_": dataclasses.replace(loss_cfg, chunk_mode="clean_prefix")}
    metrics = {
        f"heldout_loss_{mode}{name}": heldout_loss(model, heldout_set, cfg, recipe, dev)
        for mode, cfg in modes.items()
        for name, model in models.items()
    }
    del models
    pipe = load_demo_pipeline(dev, directory=init_from)
    pipe.transformer = patched.eval()
    metrics.update(
        evaluate_generation(pipe, read_demo_settings(init_from), heldout, demo_truth, out_dir / SAMPLE_FILE)
    )
    timings["evaluate"] = clock.now() - sum(timings.values())
    timings["total"] = clock.now()
    torch.set_num_threads(threads)
    for key in sorted(k for k in metrics if k.startswith("heldout_loss")):
        log.info("eval %s = %.4f", key, metrics[key])

    metadata[METADATA_KEY] = {
        "file": PATCH_FILE,
        "format": PATCH_FORMAT,
        "base_file": patch.base_file,
        "base_sha256": patch.base_sha256,
        "config": patch.config.to_dict(),
        "trainable": list(recipe.causal_trainable),
        "tensors": len(patch.tensors),
        "params": patch.num_params,
        "bytes": (out_dir / PATCH_FILE).stat().st_size,
        "loss": config_to_dict(loss_cfg),
        "recipe": recipe.to_dict(),
        "data": {
            "train_clips": len(clips),
            "gpu_rendered": gpu_clips,
            "cpu_rendered": len(clips) - gpu_clips,
            "train_samples": len(dataset),
            "heldout_clips": len(heldout),
            "heldout_samples": len(heldout_set),
        },
        "metrics": {**dit_stats, **metrics},
        "timings_s": timings,
        "environment": environment(dev),
        "note": (
            "generation metrics: sana_wm.inference.generate with the demo settings (a chunk-causal model "
            "samples with the ChunkFlowEuler staircase); heldout_loss_* is the flow loss of the training "
            "mixture (heldout_loss_clean_prefix_*: its clean-prefix mode) on fixed draws, the same for every "
            "model"
        ),
    }
    write_json(out_dir / METADATA_FILE, metadata)
    return metadata


@torch.no_grad()
def heldout_loss(
    model: torch.nn.Module, data: LatentClips, loss_cfg: LossConfig, recipe: DemoRecipe, dev: torch.device
) -> float:
    """Mean per-sample flow loss of ``model`` on ``data`` under ``loss_cfg``; sample ``i`` takes every draw
    (chunk timesteps, noise) from ``numpy.random.default_rng([recipe.heldout_seed, i])``, so every model
    sees the same inputs. Computed as the trainer does (bf16 autocast on CUDA)."""
    model.eval()
    total, batch = 0.0, recipe.dit_batch
    for start in range(0, len(data), batch):
        index = range(start, min(start + batch, len(data)))
        items = [data[i] for i in index]

        def stack(key: str, items: list[dict[str, torch.Tensor]] = items) -> torch.Tensor:
            return torch.stack([item[key] for item in items]).to(dev)

        text = stack("text")
        rngs = [np.random.default_rng([recipe.heldout_seed, i]) for i in index]
        inputs = flow_inputs(stack("latents"), text, torch.zeros_like(text[0]), loss_cfg, rngs)
        with autocast_context(ParallelConfig(), dev):
            pred = model(
                inputs.noisy,
                inputs.timestep,
                inputs.text,
                stack("text_mask"),
                stack("camera_conditions"),
                stack("chunk_plucker"),
            )
        total += float(flow_loss(pred, inputs.target, inputs.loss_mask)) * len(items)
    return total / len(data)
