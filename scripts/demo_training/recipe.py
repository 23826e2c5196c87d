"""The demo model's recipe as data: sizes, time budgets and optimiser settings (full run and tiny check).

Everything the training run does is a function of a :class:`DemoRecipe` and the wall-clock budget, so the
recipe below *is* the documentation of how the bundled model was made (``scripts/train_demo_model.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sana_wm.inference.demo_model import DEMO_SETTINGS, DemoSettings
from sana_wm.models import SanaWMConfig
from sana_wm.train.checkpoint import CheckpointConfig
from sana_wm.train.config import RunConfig
from sana_wm.train.ema import EMAConfig
from sana_wm.train.losses import LossConfig
from sana_wm.train.metrics import MetricsConfig
from sana_wm.train.optim import OptimConfig
from sana_wm.train.parallel import ParallelConfig

# The tensors the chunk-causal patch fine-tunes (``RunConfig.trainable`` patterns; every other tensor stays
# the bidirectional model's, so only these are stored: ``sana_wm.inference.demo_patch``). For the demo
# transformer (width 224, 6 blocks) they are 1,238,776 parameters, 2.48 MB in fp16. Why these: chunk-causal
# execution keeps every weight's meaning but changes what each token *sees* (no later chunk: the GDN
# backward scan, the short conv's and the FFN's right taps stop at the chunk end, softmax keys stop at it)
# and, with diffusion forcing, which noise levels meet in one clip (earlier chunks cleaner than later
# ones; the bidirectional model only ever saw one level beside the clean frame 0). So the patch holds
#
# - the attention *output* path of every block, ``proj((main + out_proj_cam(cam)) · SiLU(output_gate(a)))``:
#   the three matrices that read the self-attention's result, whose statistics the missing future changes
#   most (fewer keys, shorter backward scans), and decide per token how much of it to use (302,400 each);
# - ``t_block``: the map from each frame's timestep to the six adaLN vectors of every block, the one
#   tensor through which per-frame noise levels steer the whole network (302,400);
# - what is cheap and scales those paths: every block's adaLN table, the self-attention's Q/K RMSNorm gains
#   (attention temperature, now over fewer keys), the GDN blocks' decay/β gates (how long the forward state,
#   now the only carrier of earlier chunks, remembers) and short convs on K (whose right taps are cut at
#   chunk ends), and the final layer (about 29 k together).
#
# Left frozen: the Q/K/V projections (what is stored and retrieved: the bidirectional model's matching of
# content along the camera path is what the patch must keep), the FFNs (1.8 M of pointwise and temporal
# convolutions; their temporal conv loses one tap at three frames of eleven), the cross-attention (a constant
# for the null caption), the Plücker and patch embedders.
CHUNK_CAUSAL_TRAINABLE: tuple[str, ...] = (
    "blocks.*.attn.proj.*",
    "blocks.*.attn.output_gate.*",
    "blocks.*.attn.out_proj_cam.*",
    "t_block.*",
    "blocks.*.scale_shift_table",
    "blocks.*.attn.?_norm*",
    "blocks.*.attn.A_log",
    "blocks.*.attn.dt_bias",
    "blocks.*.attn.beta_proj.*",
    "blocks.*.attn.gate_proj.*",
    "blocks.*.attn.conv_k*",
    "final_layer.*",
)


@dataclass(frozen=True)
class DemoRecipe:
    """One demo-model training run.

    Data: clips of ``settings.num_frames`` frames at ``settings.height x settings.width`` from
    ``ClipSettings(seed=train_seed)``; the GPU renders indices 0, 1, ... for ``render_fraction`` of the
    budget, CPU worker processes render indices ``cpu_index_offset + i`` until the VAE phase ends. Every
    clip is used four times (as is, mirrored left-right, reversed in time, both). Held out: ``eval_clips``
    clips of ``ClipSettings(seed=heldout_seed)`` and the demo world ``demo_world_seed`` built around the
    default action's path.

    VAE: ``AutoencoderKLLTX2Video`` with the ``vae_*`` sizes, trained on batches of ``vae_image_batch``
    random single frames for the first ``vae_image_fraction`` of its time, then on ``vae_batch`` random
    ``vae_window_frames``-frame windows, with L1 + ``vae_grad_weight`` x L1 of image gradients
    + ``vae_lowpass_weight`` x L1 of 8 x 8 block means + ``vae_chroma_weight`` x L1 of their chroma
    + ``vae_kl_weight`` x KL (per-element means; :func:`demo_training.vae_training.vae_loss`),
    AdamW, linear warm-up then cosine to 10 % over its time budget, from diffusers' initialisation with the
    decoder output started at the mean colour.

    DiT: :class:`SanaWMConfig` from the ``dit_*`` sizes, trained by :class:`sana_wm.train.Trainer` on the
    normalised latents (flow matching, logit-normal timesteps with ``settings.flow_shift``, frame 0 always
    the clean condition, the null caption), AdamW with warm-up and cosine decay to 10 %, EMA of the weights.

    Chunk-causal patch (``--chunk_causal``, a continuation of a bidirectional run): the same DiT with
    ``chunk_size = causal_chunk_size`` (chunks ``[0, cs + 1)``, then every ``cs`` frames), trained with the
    official diffusion-forcing timestep mixture over the same chunks, only ``causal_trainable``
    (:data:`CHUNK_CAUSAL_TRAINABLE`) trainable, from the bidirectional weights, at ``causal_lr`` after
    ``causal_warmup_steps``; everything else as the DiT phase.
    """

    settings: DemoSettings = DEMO_SETTINGS
    train_seed: int = 0
    heldout_seed: int = 1_000_000  # sana_wm.eval's EVAL_SEED_BASE: training seeds stay below it
    demo_world_seed: tuple[int, int] = (7777, 4)
    shadows: bool = True
    # budget: fractions of the whole run's wall clock (the DiT gets what is left before eval_reserve_s)
    render_fraction: float = 0.10
    vae_fraction: float = 0.23
    eval_reserve_s: float = 30.0
    max_gpu_clips: int = 4000
    cpu_workers: int = -1  # -1: all cores but three
    cpu_index_offset: int = 1_000_000
    max_cpu_clips: int = 1000
    eval_clips: int = 6
    # VAE
    latent_channels: int = 32
    vae_encoder_channels: tuple[int, int, int, int] = (32, 64, 64, 128)
    vae_encoder_layers: tuple[int, int, int, int, int] = (1, 1, 1, 1, 1)
    vae_decoder_channels: tuple[int, int, int] = (24, 48, 96)
    vae_decoder_layers: tuple[int, int, int, int] = (1, 2, 2, 2)
    vae_image_fraction: float = 0.5
    vae_image_batch: int = 64
    vae_window_frames: int = 17
    vae_batch: int = 8
    vae_lr: float = 5e-4
    vae_warmup_steps: int = 100
    vae_kl_weight: float = 1e-5
    vae_grad_weight: float = 0.5
    vae_lowpass_weight: float = 1.0
    vae_chroma_weight: float = 2.0
    vae_max_steps: int = 1_000_000
    encode_batch: int = 16
    # DiT
    dit_hidden: int = 224
    dit_depth: int = 6
    dit_head_dim: int = 112
    # Alternating GDN / softmax (the release has one softmax block in four): at 726 tokens softmax attention
    # is cheap, and its exact retrieval lets a from-scratch model learn to move content with the camera.
    dit_softmax_every_n: int = 2
    dit_mlp_ratio: float = 2.0
    dit_caption_channels: int = 8
    dit_batch: int = 32
    dit_lr: float = 4e-4
    dit_warmup_steps: int = 100
    dit_ema_decay: float = 0.995
    dit_calibration_steps: int = 40
    dit_max_steps: int = 1_000_000
    dit_log_every: int = 20
    # chunk-causal patch (--chunk_causal)
    causal_chunk_size: int = 3
    causal_trainable: tuple[str, ...] = CHUNK_CAUSAL_TRAINABLE
    causal_lr: float = 2e-4
    causal_warmup_steps: int = 20
    seed: int = 3407

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def full() -> DemoRecipe:
    """The recipe of the bundled model (one H100/H200, about 8.5 minutes)."""
    return DemoRecipe()


def tiny() -> DemoRecipe:
    """A few-second CPU run of the whole procedure on 64 x 96 clips of 17 frames (tests)."""
    return DemoRecipe(
        settings=dataclasses.replace(DEMO_SETTINGS, height=64, width=96, num_frames=17, steps=2),
        shadows=False,
        max_gpu_clips=4,
        cpu_workers=0,
        eval_clips=1,
        eval_reserve_s=0.0,
        latent_channels=8,
        vae_encoder_channels=(8, 16, 16, 32),
        vae_decoder_channels=(8, 16, 32),
        vae_decoder_layers=(1, 1, 1, 1),
        vae_image_batch=4,
        vae_window_frames=9,
        vae_batch=2,
        vae_warmup_steps=2,
        vae_max_steps=3,
        encode_batch=2,
        dit_hidden=32,
        dit_depth=3,
        dit_head_dim=16,
        dit_batch=4,
        dit_warmup_steps=2,
        dit_ema_decay=0.5,
        dit_calibration_steps=3,
        dit_max_steps=3,
        dit_log_every=1,
        causal_chunk_size=1,  # 3 latent frames: chunks [0, 2) and [2, 3)
        causal_warmup_steps=1,
    )


def vae_config(recipe: DemoRecipe) -> dict[str, Any]:
    """Constructor arguments of the demo ``AutoencoderKLLTX2Video``.

    LTX-2's block layout (patch 4, down: spatial, temporal, spatio-temporal x2; up: spatio-temporal x3 with
    residual upsamplers), so the compression is 8 x 32 x 32 as in the release; the ratios are passed
    explicitly because diffusers would otherwise derive 16 / 64 from this layout.
    """
    return {
        "latent_channels": recipe.latent_channels,
        "block_out_channels": recipe.vae_encoder_channels,
        "layers_per_block": recipe.vae_encoder_layers,
        "decoder_block_out_channels": recipe.vae_decoder_channels,
        "decoder_layers_per_block": recipe.vae_decoder_layers,
        "patch_size": 4,
        "encoder_causal": True,
        "decoder_causal": False,
        "spatial_compression_ratio": 32,
        "temporal_compression_ratio": 8,
        "scaling_factor": 1.0,
    }


def dit_config(recipe: DemoRecipe) -> SanaWMConfig:
    """The demo transformer: ``dit_depth`` blocks, softmax in every ``dit_softmax_every_n``-th, else GDN."""
    return SanaWMConfig(
        in_channels=recipe.latent_channels,
        hidden_size=recipe.dit_hidden,
        depth=recipe.dit_depth,
        head_dim=recipe.dit_head_dim,
        cross_attn_heads=recipe.dit_hidden // recipe.dit_head_dim,
        caption_channels=recipe.dit_caption_channels,
        mlp_ratio=recipe.dit_mlp_ratio,
        softmax_every_n=recipe.dit_softmax_every_n,
        plucker_blocks=recipe.dit_depth,
    )


def causal_dit_config(recipe: DemoRecipe) -> SanaWMConfig:
    """The chunk-causal demo transformer: :func:`dit_config` with ``causal_chunk_size`` (official layout)."""
    return dataclasses.replace(dit_config(recipe), chunk_size=recipe.causal_chunk_size)


def dit_run_config(
    recipe: DemoRecipe,
    run_dir: Path,
    *,
    device: str,
    max_steps: int,
    init_from: str | None = None,
    chunk_causal: bool = False,
) -> RunConfig:
    """The :class:`RunConfig` of the DiT phase (the dataset is passed to the trainer directly);
    ``init_from`` continues from a saved transformer instead of the official initialisation.
    ``chunk_causal``: the chunk-causal patch's fine-tune (:class:`DemoRecipe`'s ``causal_*`` fields).

    Differences from the official stage-1 recipe, all for a from-scratch run of a few minutes: flow shift
    ``settings.flow_shift`` (a 6 x 11 x 11 latent needs far less shift than 22 x 40 x 21), every sample
    image-conditioned, no caption dropout (there is one caption), higher learning rate with warm-up and
    cosine decay, weight decay 0.01, clipping 1.0, EMA, no activation checkpointing.
    """
    chunks = recipe.causal_chunk_size if chunk_causal else None
    return RunConfig(
        model=causal_dit_config(recipe) if chunk_causal else dit_config(recipe),
        loss=LossConfig(
            flow_shift=recipe.settings.flow_shift,
            image_condition_prob=1.0,
            caption_dropout_prob=0.0,
            null_caption="zeros",
            chunk_size=chunks,
            chunk_strategy="first_chunk_plus_one",
            chunk_mode="mixture",
        ),
        optim=OptimConfig(
            lr=recipe.causal_lr if chunk_causal else recipe.dit_lr,
            betas=(0.9, 0.99),
            eps=1e-8,
            weight_decay=0.01,
            grad_clip=1.0,
            warmup_steps=recipe.causal_warmup_steps if chunk_causal else recipe.dit_warmup_steps,
            schedule="cosine",
            min_lr_ratio=0.1,
        ),
        ema=EMAConfig(decay=recipe.dit_ema_decay),
        parallel=ParallelConfig(activation_checkpointing=False),
        checkpoint=CheckpointConfig(every=0, keep_last=1),
        metrics=MetricsConfig(log_every=recipe.dit_log_every, tensorboard=False),
        out_dir=str(run_dir),
        seed=recipe.seed,
        max_steps=max_steps,
        global_batch_size=recipe.dit_batch,
        device="cuda" if device.startswith("cuda") else "cpu",
        init_from=init_from,
        trainable=recipe.causal_trainable if chunk_causal else (),
    )
