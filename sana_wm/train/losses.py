"""Stage-1 training objective: rectified-flow velocity matching with SANA-WM's conditioning recipe.

Shape letters: docs/conventions.md. In the prose below ``K`` and ``L`` are counts of chunks, not dimensions.

Per sample (official ``train_sana_wm_stage1.py``, task "df"):

1. Integer timesteps ``t ∈ {0..999}`` per latent frame: one base draw ``t = ⌊1000·sigmoid(N(μ, s²))⌋``
   (logit-normal, μ = 0, s = 1), spread over the chunks by a chunk-timestep mode (below); without chunking
   every frame gets the base draw.
2. Image-to-video with probability 0.9: frame 0 gets ``t = 0`` (exactly clean) and leaves the loss.
3. Caption dropout with probability 0.1: the caption embedding is replaced by a fixed (non-trainable) null
   embedding, officially the encoded empty prompt; the sample's text mask is kept (the official caption
   embedder swaps only the embedding).
4. ``σ = shift(t/1000)`` with the static shift ``s·σ/(1 + (s−1)·σ)`` (s = 9.95), ``x_σ = (1−σ)·x0 + σ·ε``,
   the model gets ``1000·σ`` per frame, the target is ``ε − x0``.
5. Loss: squared error averaged over each frame's tokens, then over the sample's loss frames, then over the
   batch. The official recipe trains one sample per rank, where this equals its "mean over valid tokens";
   normalising per sample keeps the loss identical for any split of a global batch over ranks.

Chunk-timestep modes (official ``chunk_mixture_probs``; every mode is a pure function of the frame count,
the chunk starts and a ``numpy`` generator, returning per-frame integer timesteps):

- ``same_t``: every chunk gets the base draw;
- ``incremental``: the base draw sits at a uniformly chosen anchor chunk and the other chunks get a
  non-decreasing sequence (earlier chunks never noisier) drawn uniformly among all such sequences through
  the anchor;
- ``last_chunk_anchor``: the same with the last chunk as anchor;
- ``clean_prefix`` (official name ``teacher_forcing_clean``): ``last_chunk_anchor``, then a prefix of
  ``L ∈ [1, K−1]`` chunks set to 0 (clean context).

Chunk starts follow the official ``chunk_index_from_chunk_size`` (``first_chunk_plus_one`` with size 3 for
SANA-WM). Note that ``sana_wm.models`` is bidirectional: the modes give per-frame timesteps (diffusion
forcing) but no chunk-causal attention mask.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.samplers.chunked import chunk_starts as sampler_chunk_starts
from sana_wm.samplers.flow import interpolate, velocity_target
from sana_wm.samplers.schedules import shift_sigmas

NUM_TRAIN_TIMESTEPS = 1000
ChunkMode = Literal["mixture", "same_t", "incremental", "last_chunk_anchor", "clean_prefix"]
ChunkStrategy = Literal["uniform", "first_frame", "first_chunk_plus_one"]
TimestepSampler = Callable[[np.random.Generator], int]


@dataclass(kw_only=True, frozen=True)
class ChunkMixture:
    """Probabilities of the chunk-timestep modes under ``chunk_mode = "mixture"`` (normalised on use)."""

    same_t: float = 0.1
    incremental: float = 0.4
    last_chunk_anchor: float = 0.4
    clean_prefix: float = 0.1

    def __post_init__(self) -> None:
        values = (self.same_t, self.incremental, self.last_chunk_anchor, self.clean_prefix)
        if min(values) < 0 or sum(values) <= 0:
            raise InputError(
                f"loss.chunk_mixture: probabilities must be >= 0 with a positive sum, got {values}"
            )


@dataclass(kw_only=True, frozen=True)
class LossConfig:
    """The training objective (defaults: the official stage-1 recipe).

    Attributes:
        flow_shift: static timestep shift applied to the drawn timesteps (official training 9.95).
        timestep_sampling: base draw: ``logit_normal`` (official), ``uniform`` over {0..999}, or ``fixed``
            (always ``fixed_t``; for debugging).
        logit_mean, logit_std: parameters of the logit-normal draw.
        fixed_t: the unshifted timestep in {0..999} used by ``fixed``.
        image_condition_prob: probability that frame 0 is the clean conditioning frame (official 0.9).
        caption_dropout_prob: probability that a sample's caption is replaced by the null embedding.
        null_caption: the fixed (not learned) null embedding: ``zeros``; ``empty_prompt``, the encoding of
            the empty prompt with the chi prefix by ``data.text_encoder`` (the official ``null_embed.pth``,
            which the official caption embedder holds as a non-trainable buffer); or a ``.safetensors`` file
            with a tensor ``text`` (L, D).
        chunk_size: latent frames per chunk for chunk-wise timesteps; None = one chunk (bidirectional).
        chunk_strategy: how chunk starts are laid out (see :func:`chunk_starts`).
        chunk_mode: one mode for every sample, or ``mixture`` (drawn per sample with ``chunk_mixture``).
        mask_clean_frames: also exclude from the loss every frame drawn at ``t = 0`` (the clean prefix of
            ``clean_prefix``); the official recipe masks only the conditioning frame 0.
        fixed_noise: key every random draw of a sample (noise, timesteps, image condition, caption
            dropout) on its dataset index alone instead of (step, position), so each visit of a clip sees the
            same noisy input; for overfitting checks.
    """

    flow_shift: float = 9.95
    timestep_sampling: Literal["logit_normal", "uniform", "fixed"] = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    fixed_t: int = 500
    image_condition_prob: float = 0.9
    caption_dropout_prob: float = 0.1
    null_caption: str = "zeros"
    chunk_size: int | None = None
    chunk_strategy: ChunkStrategy = "first_chunk_plus_one"
    chunk_mode: ChunkMode = "mixture"
    chunk_mixture: ChunkMixture = field(default_factory=ChunkMixture)
    mask_clean_frames: bool = False
    fixed_noise: bool = False

    def __post_init__(self) -> None:
        if not self.flow_shift > 0:
            raise InputError(f"loss.flow_shift: must be > 0, got {self.flow_shift}")
        if not self.logit_std > 0:
            raise InputError(f"loss.logit_std: must be > 0, got {self.logit_std}")
        if not 0 <= self.fixed_t < NUM_TRAIN_TIMESTEPS:
            raise InputError(f"loss.fixed_t: must be in [0, {NUM_TRAIN_TIMESTEPS - 1}], got {self.fixed_t}")
        for name in ("image_condition_prob", "caption_dropout_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"loss.{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise InputError(f"loss.chunk_size: must be >= 1 or none, got {self.chunk_size}")

    def base_sampler(self) -> TimestepSampler:
        """The base timestep draw as a function of a generator."""
        if self.timestep_sampling == "fixed":
            return lambda rng: self.fixed_t
        if self.timestep_sampling == "uniform":
            return lambda rng: int(rng.integers(NUM_TRAIN_TIMESTEPS))
        return lambda rng: logit_normal_t(rng, self.logit_mean, self.logit_std)


def logit_normal_t(rng: np.random.Generator, mean: float = 0.0, std: float = 1.0) -> int:
    """``⌊1000·sigmoid(N(mean, std²))⌋`` in {0..999} (official ``logit_normal`` weighting)."""
    u = 1.0 / (1.0 + math.exp(-(mean + std * float(rng.standard_normal()))))
    return min(int(NUM_TRAIN_TIMESTEPS * u), NUM_TRAIN_TIMESTEPS - 1)


def chunk_starts(num_frames: int, chunk_size: int | None, strategy: ChunkStrategy) -> list[int]:
    """Start frame of every chunk (official ``chunk_index_from_chunk_size``); ``[0]`` without chunking.

    :func:`sana_wm.samplers.chunked.chunk_starts` (the one definition, which the chunk-causal model also
    uses) under the official strategy names: ``uniform``, ``first_frame``, ``first_chunk_plus_one`` (T = 121,
    cs = 3: 0, 4, 7, ..., 118, 40 chunks).
    """
    if chunk_size is None or num_frames <= 1:
        return [0]
    if strategy not in ("uniform", "first_frame", "first_chunk_plus_one"):
        raise InputError(f"loss.chunk_strategy: unknown strategy {strategy!r}")
    ours = "first_plus_one" if strategy == "first_chunk_plus_one" else strategy
    return sampler_chunk_starts(num_frames, chunk_size, ours)


@functools.cache
def _log_factorials(size: int) -> np.ndarray:
    """``log(n!)`` for n in [0, size), float64."""
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, size, dtype=np.float64)))])


def _log_comb(n: np.ndarray, r: int) -> np.ndarray:
    """``log C(n, r)`` elementwise for an integer array ``n >= r >= 0`` (float64)."""
    table = _log_factorials(int(n.max()) + 1)
    return table[n] - table[r] - table[n - r]


def _draw(rng: np.random.Generator, candidates: np.ndarray, log_weights: np.ndarray) -> int:
    p = np.exp(log_weights - log_weights.max())
    return int(candidates[rng.choice(len(candidates), p=p / p.sum())])


def monotone_through_anchor(
    num_chunks: int, anchor: int, value: int, rng: np.random.Generator, num_values: int = NUM_TRAIN_TIMESTEPS
) -> list[int]:
    """A non-decreasing sequence in {0..num_values−1} with ``seq[anchor] = value``, uniform over all such.

    Right of the anchor, chunk j draws from ``[seq[j−1], num_values)`` weighted by the number of
    non-decreasing completions of the remaining ``r`` chunks, ``C(num_values − x + r − 1, r)``; left of it,
    from ``[0, seq[j+1]]`` weighted by ``C(y + j, j)`` (the official ``IncrementalTimesteps`` path counts).
    """
    seq = [0] * num_chunks
    seq[anchor] = value
    for j in range(anchor + 1, num_chunks):
        remaining = num_chunks - 1 - j
        x = np.arange(seq[j - 1], num_values)
        seq[j] = _draw(rng, x, _log_comb(num_values - x + remaining - 1, remaining))
    for j in range(anchor - 1, -1, -1):
        y = np.arange(0, seq[j + 1] + 1)
        seq[j] = _draw(rng, y, _log_comb(y + j, j))
    return seq


def _per_frame(chunk_t: Sequence[int], starts: Sequence[int], num_frames: int) -> np.ndarray:
    bounds = [*starts, num_frames]
    return np.concatenate(
        [np.full(bounds[k + 1] - bounds[k], chunk_t[k], dtype=np.int64) for k in range(len(starts))]
    )


def same_t_timesteps(
    num_frames: int,
    starts: Sequence[int],
    rng: np.random.Generator,
    sample_t: TimestepSampler = logit_normal_t,
) -> np.ndarray:
    """Every frame gets one base draw. Returns ``(T,)`` int64."""
    return _per_frame([sample_t(rng)] * len(starts), starts, num_frames)


def incremental_timesteps(
    num_frames: int,
    starts: Sequence[int],
    rng: np.random.Generator,
    sample_t: TimestepSampler = logit_normal_t,
) -> np.ndarray:
    """Base draw at a uniformly random anchor chunk, a uniform monotone sequence around it. ``(T,)`` int64."""
    base = sample_t(rng)
    anchor = int(rng.integers(len(starts)))
    return _per_frame(monotone_through_anchor(len(starts), anchor, base, rng), starts, num_frames)


def last_chunk_anchor_timesteps(
    num_frames: int,
    starts: Sequence[int],
    rng: np.random.Generator,
    sample_t: TimestepSampler = logit_normal_t,
) -> np.ndarray:
    """Base draw at the last chunk, a uniform non-decreasing sequence before it. ``(T,)`` int64."""
    base = sample_t(rng)
    return _per_frame(monotone_through_anchor(len(starts), len(starts) - 1, base, rng), starts, num_frames)


def clean_prefix_timesteps(
    num_frames: int,
    starts: Sequence[int],
    rng: np.random.Generator,
    sample_t: TimestepSampler = logit_normal_t,
) -> np.ndarray:
    """``last_chunk_anchor``, then the first ``L ∈ [1, K−1]`` chunks set to 0 (K > 1). ``(T,)`` int64."""
    base = sample_t(rng)
    num_chunks = len(starts)
    seq = monotone_through_anchor(num_chunks, num_chunks - 1, base, rng)
    if num_chunks > 1:
        prefix = int(rng.integers(1, num_chunks))
        seq[:prefix] = [0] * prefix
    return _per_frame(seq, starts, num_frames)


CHUNK_MODES: dict[str, Callable[..., np.ndarray]] = {
    "same_t": same_t_timesteps,
    "incremental": incremental_timesteps,
    "last_chunk_anchor": last_chunk_anchor_timesteps,
    "clean_prefix": clean_prefix_timesteps,
}


def frame_timesteps(num_frames: int, cfg: LossConfig, rng: np.random.Generator) -> np.ndarray:
    """Integer timesteps ``(T,)`` in {0..999} for one sample under ``cfg``'s chunk settings.

    With ``mixture`` the mode is drawn first (one draw), then the mode runs on the same generator.
    """
    starts = chunk_starts(num_frames, cfg.chunk_size, cfg.chunk_strategy)
    mode = cfg.chunk_mode
    if mode == "mixture":
        mix = cfg.chunk_mixture
        probs = np.array([mix.same_t, mix.incremental, mix.last_chunk_anchor, mix.clean_prefix])
        mode = list(CHUNK_MODES)[int(rng.choice(4, p=probs / probs.sum()))]
    return CHUNK_MODES[mode](num_frames, starts, rng, cfg.base_sampler())


@dataclass
class FlowInputs:
    """One batch ready for the model and the loss.

    Attributes:
        noisy: ``x_σ`` (B, C, T, h, w).
        timestep: model timesteps ``1000·σ`` (B, 1, T), float32.
        target: velocity target ``ε − x0`` (B, C, T, h, w).
        loss_mask: (B, T) float32, 1 for frames in the loss.
        text: caption embeddings after dropout (B, L, D).
    """

    noisy: Tensor
    timestep: Tensor
    target: Tensor
    loss_mask: Tensor
    text: Tensor


def sample_draws(num_frames: int, cfg: LossConfig, rng: np.random.Generator) -> tuple[np.ndarray, bool, bool]:
    """All discrete random choices of one sample, in a fixed order: frame timesteps ``(T,)``, whether frame
    0 is the clean condition, whether the caption is dropped."""
    t_T = frame_timesteps(num_frames, cfg, rng)
    image_condition = bool(rng.random() < cfg.image_condition_prob)
    drop_caption = bool(rng.random() < cfg.caption_dropout_prob)
    if image_condition:
        t_T[0] = 0
    return t_T, image_condition, drop_caption


def flow_inputs(
    x0_BCThw: Tensor,
    text_BLD: Tensor,
    null_text_LD: Tensor,
    cfg: LossConfig,
    rngs: Sequence[np.random.Generator],
) -> FlowInputs:
    """Noise a batch following the module recipe; sample ``b`` takes every draw from ``rngs[b]``.

    The Gaussian noise of sample ``b`` comes from a ``torch.Generator`` on the latents' device seeded by
    one 63-bit draw of ``rngs[b]`` after its discrete choices.
    """
    batch, _, num_frames = x0_BCThw.shape[:3]
    if len(rngs) != batch:
        raise InputError(f"rngs: expected {batch} generators, got {len(rngs)}")
    if null_text_LD.shape != text_BLD.shape[1:]:
        raise InputError(
            f"loss.null_caption: shape {tuple(null_text_LD.shape)} does not match the captions' "
            f"{tuple(text_BLD.shape[1:])}"
        )
    device = x0_BCThw.device
    t_rows, mask_rows, noise_rows, text_rows = [], [], [], []
    for b, rng in enumerate(rngs):
        t_T, image_condition, drop = sample_draws(num_frames, cfg, rng)
        mask_T = torch.ones(num_frames)
        if image_condition:
            mask_T[0] = 0.0
        if cfg.mask_clean_frames:
            mask_T[torch.from_numpy(t_T == 0)] = 0.0
        gen = torch.Generator(device=device).manual_seed(int(rng.integers(2**63 - 1)))
        noise_rows.append(torch.randn(x0_BCThw.shape[1:], generator=gen, device=device, dtype=torch.float32))
        t_rows.append(torch.from_numpy(t_T))
        mask_rows.append(mask_T)
        text_rows.append(null_text_LD.to(text_BLD) if drop else text_BLD[b])
    sigma_BT = shift_sigmas(torch.stack(t_rows).double() / NUM_TRAIN_TIMESTEPS, cfg.flow_shift).float()
    sigma_BT = sigma_BT.to(device)
    x0 = x0_BCThw.float()
    noise = torch.stack(noise_rows)
    return FlowInputs(
        noisy=interpolate(x0, noise, sigma_BT[:, None, :, None, None]),
        timestep=(sigma_BT * NUM_TRAIN_TIMESTEPS)[:, None, :],
        target=velocity_target(x0, noise),
        loss_mask=torch.stack(mask_rows).to(device),
        text=torch.stack(text_rows),
    )


def flow_loss(pred_BCThw: Tensor, target_BCThw: Tensor, loss_mask_BT: Tensor) -> Tensor:
    """Masked velocity MSE in fp32: per frame over (C, h, w), per sample over its loss frames, then the
    batch mean. A sample without loss frames contributes 0."""
    err_BT = (pred_BCThw.float() - target_BCThw.float()).square().mean(dim=(1, 3, 4))
    per_sample = (err_BT * loss_mask_BT).sum(1) / loss_mask_BT.sum(1).clamp_min(1.0)
    return per_sample.mean()


def load_null_caption(spec: str, tokens: int, channels: int) -> Tensor:
    """The fixed null caption ``(L, D)`` float32: zeros, or tensor ``text`` of a safetensors file."""
    if spec == "zeros":
        return torch.zeros(tokens, channels)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        text = load_file(spec)["text"]
    except (OSError, KeyError, SafetensorError) as err:
        raise InputError(f"loss.null_caption: cannot read tensor 'text' from {spec!r} ({err})") from None
    if text.ndim == 3 and text.shape[0] == 1:
        text = text[0]
    if tuple(text.shape) != (tokens, channels):
        raise InputError(f"loss.null_caption: expected shape ({tokens}, {channels}), got {tuple(text.shape)}")
    return text.float()
