"""The chunk-causal refinement loop of the stage-2 refiner, as a stepper for streaming.

:class:`RefinerStream` refines stage-1 latents block after block (the recipe is in the docstring of
:mod:`sana_wm.inference.refiner`): the sink's pre-RoPE K/V are captured once at sigma 0; each block of
``block_size`` latent frames is noised with its own draw and denoised by Euler steps over ``sigmas`` while
attending to the sink (re-rotated to sit right before the history window), to the post-RoPE K/V of at most
``kv_max_frames - sink_size`` already refined frames, and to itself; one timestep-0 pass then captures its
K/V for the blocks after it. :func:`refine_latents` runs a whole latent tensor through one stream (with one
block after the sink it is the single-shot refiner).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers import SanaWMLTX2RefinerTransformer3DModel
from diffusers.models.transformers.transformer_sana_wm_refiner import SanaWMRefinerKVCache
from tqdm import tqdm

from sana_wm.errors import InputError
from sana_wm.inference.request import RefinerSettings
from sana_wm.samplers.flow import euler_step, velocity_from_x0, x0_from_velocity

REFINER_SIGMAS: tuple[float, ...] = (0.909375, 0.725, 0.421875, 0.0)


@dataclass(frozen=True)
class RefinerPrompt:
    """Connector output for one prompt: ``embeds_1LD`` (caption width of the DiT) and 0/1 ``mask_1L``."""

    embeds_1LD: torch.Tensor
    mask_1L: torch.Tensor


def refine_latents(
    transformer: SanaWMLTX2RefinerTransformer3DModel,
    prompt: RefinerPrompt,
    latents_BCThw: torch.Tensor,
    *,
    sink_size: int,
    block_size: int,
    kv_max_frames: int,
    sigmas: Sequence[float],
    generator: torch.Generator,
    fps: float,
    progress: bool = False,
) -> torch.Tensor:
    """The refinement loop (arguments already validated; see the module docstring for the recipe): the
    frames of ``latents_BCThw`` through one :class:`RefinerStream`, block after block.

    ``block_size >= T - sink_size`` is the single-shot refiner. Noise: one draw per block, in block order,
    of the block's shape in the latents' dtype. The returned tensor is a new one in the latents' dtype.
    """
    num_frames = latents_BCThw.shape[2]
    starts = range(sink_size, num_frames, block_size)
    bar = tqdm(total=len(starts) * (len(sigmas) - 1), desc="refine", unit="step", disable=not progress)
    stream = RefinerStream(
        transformer,
        prompt,
        sink_size=sink_size,
        block_size=block_size,
        kv_max_frames=kv_max_frames,
        sigmas=sigmas,
        generator=generator,
        fps=fps,
        device=latents_BCThw.device,
        dtype=latents_BCThw.dtype,
        on_step=bar.update,
    )
    parts_BCThw = [stream.start(latents_BCThw[:, :, :sink_size])]
    for start in starts:
        parts_BCThw.append(stream.refine_block(latents_BCThw[:, :, start : start + block_size]))
    bar.close()
    return torch.cat(parts_BCThw, dim=2)


class RefinerStream:
    """The chunk-causal refiner one block at a time, for streaming; its state stays bounded.

    Created once per generation. :meth:`start` takes the ``sink_size`` stage-1 sink frames (captures their
    pre-RoPE K/V at sigma 0; the sink itself is output verbatim), then every :meth:`refine_block` takes the
    next ``block_size`` stage-1 latent frames and returns them refined. The last block may be shorter; no
    block follows it. Blocks streamed this way equal :func:`refine_latents` on their concatenation (the same
    code runs): the noise is one draw per block, in block order, of the block's shape in ``dtype``, from one
    generator seeded with ``seed`` on ``device`` (or ``generator``).

    State: the sink's K/V, the post-RoPE K/V of at most ``kv_max_frames - sink_size`` refined frames per
    layer, and the last refined block, whose K/V capture pass (one more forward at sigma 0) runs lazily at
    the start of the next :meth:`refine_block` or by :meth:`capture_history`. The last block's is never run,
    as in :func:`refine_latents`. Memory does not grow with the number of blocks (:meth:`nbytes`).

    Args:
        transformer: the refiner DiT (video only, on ``device`` or streamed to it by offload hooks).
        prompt: the encoded refiner prompt, on ``device``.
        sink_size, block_size, kv_max_frames, sigmas, fps: as in :meth:`~.refiner.Refiner.__call__`.
        seed: seed of the noise generator; ``generator`` (on ``device``) is used instead when given.
        device: compute device (default: the transformer's).
        dtype: compute dtype of the latents (default: the prompt embeddings'; the transformer's parameters
            may be stored in float8).
        on_step: called after every Euler step (a progress bar's ``update``).
    """

    def __init__(
        self,
        transformer: SanaWMLTX2RefinerTransformer3DModel,
        prompt: RefinerPrompt,
        *,
        sink_size: int = 1,
        block_size: int = 3,
        kv_max_frames: int = 11,
        sigmas: Sequence[float] = REFINER_SIGMAS,
        seed: int = 42,
        generator: torch.Generator | None = None,
        fps: float = 16.0,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        on_step: Callable[[], object] | None = None,
    ) -> None:
        settings = RefinerSettings(
            mode="chunk_causal",
            sink_size=sink_size,
            block_size=block_size,
            kv_max_frames=kv_max_frames,
            seed=seed,
        )
        settings.check_frames(sink_size + 1)
        check_schedule(sigmas, fps)
        self.transformer = transformer
        self.prompt = prompt
        self.sink_size, self.block_size, self.kv_max_frames = sink_size, block_size, kv_max_frames
        # The schedule as float32 values, as the official code and diffusers hold it.
        self.sigmas: list[float] = torch.tensor(list(sigmas), dtype=torch.float32).tolist()
        self.fps = float(fps)
        self.device = torch.device(device) if device is not None else next(transformer.parameters()).device
        self.dtype = dtype if dtype is not None else prompt.embeds_1LD.dtype
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.generator = generator
        self.on_step = on_step
        self._cache = SanaWMRefinerKVCache(len(transformer.transformer_blocks))
        self._like_BChw: tuple[int, int, int, int] | None = None  # batch, channels, height, width
        self._next_frame = 0  # absolute latent frame where the next block starts
        self._history_frames = 0  # refined frames whose K/V the next block attends to
        self._pending: tuple[torch.Tensor, int] | None = None  # last refined block, its first frame
        self._ended = False

    @property
    def next_frame(self) -> int:
        """Absolute latent frame index of the next block's first frame."""
        return self._next_frame

    @torch.no_grad()
    def start(self, sink_latents_1CShw: torch.Tensor) -> torch.Tensor:
        """Capture the sink's pre-RoPE K/V (frames ``[0, sink_size)`` at sigma 0); returns the sink unchanged
        (on the device, in the compute dtype)."""
        if self._like_BChw is not None:
            raise RuntimeError("RefinerStream.start: already started")
        if sink_latents_1CShw.ndim != 5 or sink_latents_1CShw.shape[2] != self.sink_size:
            raise ValueError(
                f"RefinerStream.start: expected (B, C, {self.sink_size}, h, w), "
                f"got {tuple(sink_latents_1CShw.shape)}"
            )
        sink_1CShw = sink_latents_1CShw.to(self.device, self.dtype)
        batch, channels, _, height, width = sink_1CShw.shape
        self._like_BChw = (batch, channels, height, width)
        self._forward(sink_1CShw, 0, 0.0, "capture_pre_rope")
        for layer_cache in self._cache.layer_caches:
            layer_cache.store_sink(*layer_cache.get_captured_pre_rope())
        self._next_frame = self.sink_size
        return sink_1CShw

    @torch.no_grad()
    def refine_block(self, stage1_block_1CThw: torch.Tensor) -> torch.Tensor:
        """Refine the next ``1 <= T <= block_size`` stage-1 latent frames (frames ``[next_frame,
        next_frame + T)``); returns a new ``(B, C, T, h, w)`` tensor in the compute dtype on the device."""
        block_1CThw = self._check_block(stage1_block_1CThw).to(self.device, self.dtype)
        self.capture_history()
        first, sigmas = self._next_frame, self.sigmas
        # The sink keeps its K/V but moves to the position right before the history window.
        sink_at = first - self._history_frames - self.sink_size
        self._cache.sink_pe = _rope(
            self.transformer, block_1CThw, range(sink_at, sink_at + self.sink_size), self.fps
        )
        dtype = self.dtype
        eps = torch.randn(block_1CThw.shape, generator=self.generator, device=block_1CThw.device, dtype=dtype)
        x = ((1.0 - sigmas[0]) * block_1CThw.float() + sigmas[0] * eps.float()).to(dtype)
        for sigma, sigma_next in itertools.pairwise(sigmas):
            v = self._forward(x, first, sigma, "inject")
            # x0 rounded to the model dtype before the Euler step, as in the official code.
            x0 = x0_from_velocity(x.float(), v.float(), sigma).to(dtype)
            x = euler_step(x.float(), velocity_from_x0(x.float(), x0.float(), sigma), sigma, sigma_next).to(
                dtype
            )
            if self.on_step is not None:
                self.on_step()
        frames = x.shape[2]
        self._pending = (x, first)
        self._next_frame = first + frames
        self._ended = frames < self.block_size
        return x.clone()  # the caller may change it; the capture pass reads the original

    @torch.no_grad()
    def capture_history(self) -> None:
        """Run the last refined block's K/V capture pass now (:meth:`refine_block` runs it otherwise) and
        trim the history to ``kv_max_frames - sink_size`` frames; a no-op when there is none pending."""
        if self._pending is None:
            return
        x_1CThw, first = self._pending
        self._pending = None
        # Under the window (sink position and history) the block was refined with.
        self._forward(x_1CThw, first, 0.0, "inject_and_capture_post_rope")
        self._history_frames = min(
            self._history_frames + x_1CThw.shape[2], self.kv_max_frames - self.sink_size
        )
        keep = self._history_frames * x_1CThw.shape[3] * x_1CThw.shape[4]
        for layer_cache in self._cache.layer_caches:
            new_k, new_v = layer_cache.get_captured_post_rope()
            old = layer_cache.get_history()
            layer_cache.store_history(
                _keep_last(None if old is None else old[0], new_k, keep),
                _keep_last(None if old is None else old[1], new_v, keep),
            )

    def state_tensors(self) -> list[torch.Tensor]:
        """Every tensor the stream holds between calls: per layer the sink's and the history's K/V, the
        sink's RoPE and the last refined block."""
        held = []
        for layer_cache in self._cache.layer_caches:
            held += [layer_cache.get_sink() or (), layer_cache.get_history() or ()]
        held += [self._cache.sink_pe or (), self._pending[:1] if self._pending else ()]
        return [t for group in held for t in group]

    def nbytes(self) -> int:
        """Bytes of storage behind :meth:`state_tensors` (each storage once); no device synchronisation."""
        storages = {
            t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in self.state_tensors()
        }
        return sum(storages.values())

    def _check_block(self, block: torch.Tensor) -> torch.Tensor:
        if self._like_BChw is None:
            raise RuntimeError("RefinerStream.refine_block: call start() with the sink frames first")
        if self._ended:
            raise RuntimeError(
                "RefinerStream.refine_block: the previous block was shorter, so it was the last"
            )
        batch, channels, height, width = self._like_BChw
        if block.ndim != 5 or (block.shape[0], block.shape[1], *block.shape[3:]) != self._like_BChw:
            raise ValueError(
                f"RefinerStream.refine_block: expected ({batch}, {channels}, T, {height}, {width}), "
                f"got {tuple(block.shape)}"
            )
        if not 1 <= block.shape[2] <= self.block_size:
            raise ValueError(
                f"RefinerStream.refine_block: T must be in [1, {self.block_size}], got {block.shape[2]}"
            )
        return block

    def _forward(
        self, x_BCThw: torch.Tensor, first_frame: int, sigma: float, cache_mode: str
    ) -> torch.Tensor:
        return _forward(
            self.transformer, x_BCThw, first_frame, sigma, self.prompt, self.fps, self._cache, cache_mode
        )


def _keep_last(old_BND: torch.Tensor | None, new_BND: torch.Tensor, keep: int) -> torch.Tensor:
    """The last ``keep`` tokens of ``[old, new]`` in a tensor of its own (no view of a larger storage)."""
    fresh = new_BND.shape[1]
    if keep <= fresh or old_BND is None:
        return new_BND if keep >= fresh else new_BND[:, fresh - keep :].clone()
    return torch.cat([old_BND[:, old_BND.shape[1] - (keep - fresh) :], new_BND], dim=1)


def _forward(
    transformer: SanaWMLTX2RefinerTransformer3DModel,
    x_BCThw: torch.Tensor,
    first_frame: int,
    sigma: float,
    prompt: RefinerPrompt,
    fps: float,
    cache: SanaWMRefinerKVCache,
    cache_mode: str,
) -> torch.Tensor:
    """One DiT call on frames ``[first_frame, first_frame + T)`` at ``sigma``; velocity ``(B, C, T, h, w)``"""
    batch, channels, frames, height, width = x_BCThw.shape
    tokens_BLC = x_BCThw.permute(0, 2, 3, 4, 1).reshape(batch, -1, channels)
    scale = float(transformer.config.timestep_scale_multiplier)
    timestep_BL = torch.full(tokens_BLC.shape[:2], sigma * scale, dtype=torch.float32, device=x_BCThw.device)
    v_BLC = transformer(
        hidden_states=tokens_BLC,
        encoder_hidden_states=prompt.embeds_1LD,
        timestep=timestep_BL,
        video_rotary_emb=_rope(transformer, x_BCThw, range(first_frame, first_frame + frames), fps),
        encoder_attention_mask=prompt.mask_1L,
        kv_cache=cache,
        kv_cache_mode=cache_mode,
        return_dict=False,
    )[0]
    return v_BLC.reshape(batch, frames, height, width, -1).permute(0, 4, 1, 2, 3)


def _rope(
    transformer: SanaWMLTX2RefinerTransformer3DModel, like_BCThw: torch.Tensor, frames: range, fps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    batch, _, _, height, width = like_BCThw.shape
    return transformer.build_rotary_emb_for_absolute_positions(
        batch_size=batch,
        frame_positions=list(frames),
        height=height,
        width=width,
        device=like_BCThw.device,
        fps=float(fps),
    )


def check_schedule(sigmas: Sequence[float], fps: float) -> None:
    """:class:`InputError` unless ``sigmas`` decrease in (0, 1] and end at 0.0, and ``fps > 0``."""
    values = list(sigmas)
    decreasing = all(a > b for a, b in itertools.pairwise(values))
    if len(values) < 2 or values[-1] != 0.0 or not decreasing or not 0.0 < values[0] <= 1.0:
        raise InputError(f"sigmas: need a decreasing schedule in (0, 1] ending at 0.0, got {values}")
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"--fps: must be > 0, got {fps}")
