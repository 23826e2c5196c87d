"""Stage 2: the LTX-2 "sink-bidirectional" refiner that turns stage-1 latents into SANA-WM's default output.

The refiner is an LTX-2 video DiT (diffusers ``SanaWMLTX2RefinerTransformer3DModel``, video stream only) with
``LTX2TextConnectors`` and a Gemma-3-12B text encoder. It works on the stage-1 latents ``(1, C, T, h, w)``
(normalised, as the stage-1 DiT sees them) without re-encoding:

- the first ``sink_size`` (1) latent frames are the SINK: clean, timestep 0, never changed, and their tokens
  attend only to themselves;
- every other frame is noised to the first sigma with one draw ``eps ~ N(0, I)`` from a generator on the
  compute device seeded with ``seed`` (42), ``x = (1 - s0) z + s0 eps``, then refined by plain Euler steps
  over ``sigmas`` (distilled: 0.909375, 0.725, 0.421875, 0): ``x0 = x - s v``,
  ``x <- x + (s' - s)(x - x0)/s``.
  These tokens carry timestep ``s * timestep_scale_multiplier`` and attend to the sink plus each other.

Two attention layouts (``mode``):

- ``"single_shot"`` (default of the bidirectional release): all refined frames form one block that attends
  to the sink and to itself, so refined frames see the whole video in both directions;
- ``"chunk_causal"`` (the streaming recipe, diffusers' ``SanaWMLTX2Refiner``): blocks of ``block_size`` (3)
  latent frames, in order. A block attends to the sink, to the K/V of at most ``kv_max_frames - sink_size``
  (10) already refined frames (captured by one extra timestep-0 pass after the block is done) and to itself;
  the sink's RoPE position slides so that it sits right before that history window. Cost is linear in T.

Both run through diffusers' KV-cached forward: the sink's pre-RoPE K/V are captured once (a timestep-0 pass
over the sink frames alone, which is exactly what the sink's rows compute in the single forward of the
official code, since they attend only to themselves) and re-rotated to the window's sink position. With one
block and the sink at position 0 this is the official single-shot refiner; the sink pass is run once
instead of in every step. The loop is :class:`~.refiner_stream.RefinerStream`, which also serves streaming
one block at a time.

Text: the bare prompt, left padded to 1024 Gemma-3 tokens, all hidden states stacked; the connectors
normalise them per layer (masked mean and range, x8) and project them. The official code normalises once,
then calls connectors of a diffusers version that did not normalise; diffusers 0.42.1's connectors normalise
themselves, and its refiner pipeline still normalises before calling them (twice in all). We normalise once,
as the official code does: the second pass changes float32 embeddings by ~1e-7 relative, bfloat16 ones by
up to one rounding step.

Output: decoding the refined latents gives ``8 (T - 1) + 1`` frames; the first (the decoded sink anchor)
is dropped, so ``F`` requested frames give ``F - 1`` and per-frame data (camera poses, intrinsics) must be
realigned with :func:`align_to_refined` (``c2w[1:F]``).

Memory: ``offload`` as in :mod:`sana_wm.inference.offload`; ``fp8`` stores the transformer's linear weights as
``float8_e4m3fn`` and casts each layer to the compute dtype when it runs (diffusers layerwise casting; norms,
``proj_in`` and ``proj_out`` stay in the compute dtype). The audio half of the checkpoint (about 5.8 of 18.9
billion parameters) is dropped at load time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import numpy as np
import torch
from diffusers import SanaWMLTX2RefinerTransformer3DModel
from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

from sana_wm.errors import InputError
from sana_wm.inference.offload import enable_block_streaming, on_device
from sana_wm.inference.refiner_stream import (
    REFINER_SIGMAS,
    RefinerPrompt,
    check_schedule,
    refine_latents,
)
from sana_wm.inference.refiner_stream import (
    RefinerStream as RefinerStream,  # re-exported: the stepper next to the whole-tensor refiner
)
from sana_wm.inference.request import OffloadMode, RefinerMode, RefinerSettings
from sana_wm.inference.weights import RefinerPaths
from sana_wm.text_encoder import REFINER_MAX_LENGTH, RefinerTextEncoder
from sana_wm.utils.device import default_device, resolve_dtype

if TYPE_CHECKING:
    from sana_wm.vae import VideoVAE

DROPPED_PIXEL_FRAMES = 1
# Name fragments of the audio stream's modules and parameters (top level and in every block).
_AUDIO_MARKERS = ("audio", "a2v", "v2a", "av_cross")


def video_only(transformer: SanaWMLTX2RefinerTransformer3DModel) -> SanaWMLTX2RefinerTransformer3DModel:
    """Delete the audio stream's modules and parameters (the refiner's forward is video only), in place."""
    for owner in (transformer, *transformer.transformer_blocks):
        names = [n for n, _ in owner.named_children()] + [n for n, _ in owner.named_parameters(recurse=False)]
        for name in names:
            if any(marker in name for marker in _AUDIO_MARKERS):
                delattr(owner, name)
    return transformer


class Refiner:
    """The LTX-2 refiner on one compute device.

    Args:
        transformer: diffusers' refiner DiT; its parameter dtype is the compute dtype. Its audio stream is
            removed (:func:`video_only`).
        connectors: LTX-2 text connectors (same dtype).
        text_encoder: Gemma-3 wrapper, or None when only precomputed :class:`RefinerPrompt` are passed.
        device: compute device (default: the transformer's).
        offload: ``"none"``, ``"model"`` or ``"group"`` (see :mod:`~.offload`). On the CPU nothing moves
            but the hooks still run.
        fp8: store the transformer's weights as float8 (e4m3) and compute in its original dtype.
        text_max_length: Gemma-3 tokens per prompt (the model was trained with 1024).
    """

    def __init__(
        self,
        transformer: SanaWMLTX2RefinerTransformer3DModel,
        connectors: LTX2TextConnectors,
        text_encoder: RefinerTextEncoder | None = None,
        *,
        device: str | torch.device | None = None,
        offload: OffloadMode = "none",
        fp8: bool = False,
        text_max_length: int = REFINER_MAX_LENGTH,
    ) -> None:
        config = transformer.config
        if config.patch_size != 1 or config.patch_size_t != 1:
            raise InputError(
                f"--refiner_checkpoint: patch sizes must be 1, got {config.patch_size_t}x{config.patch_size}"
            )
        first = next(transformer.parameters())
        self.device = torch.device(device) if device is not None else first.device
        self.dtype = first.dtype
        self.transformer = video_only(transformer).eval()
        self.connectors = connectors.eval()
        self.text_encoder = text_encoder
        self.offload: OffloadMode = offload
        self.fp8 = fp8
        self.text_max_length = text_max_length
        home = self.device if offload == "none" else torch.device("cpu")
        for module in (self.transformer, self.connectors, text_encoder.model if text_encoder else None):
            if module is not None:
                module.to(home)
        if fp8:
            self.transformer.enable_layerwise_casting(
                storage_dtype=torch.float8_e4m3fn, compute_dtype=self.dtype
            )
        if offload == "group":
            enable_block_streaming(self.transformer, self.device)

    @classmethod
    def from_paths(
        cls,
        paths: RefinerPaths,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        offload: OffloadMode = "none",
        fp8: bool = False,
    ) -> Refiner:
        """Load the three parts from local folders (see :func:`~.weights.resolve_refiner_weights`)."""
        device = torch.device(device) if device is not None else default_device()
        dtype = resolve_dtype(dtype, device)
        home = device if offload == "none" else torch.device("cpu")
        loaded = []
        for model_cls, folder in (
            (SanaWMLTX2RefinerTransformer3DModel, paths.transformer),
            (LTX2TextConnectors, paths.connectors),
        ):
            try:
                model = model_cls.from_pretrained(
                    str(folder), torch_dtype=dtype, local_files_only=True, use_safetensors=True
                )
            except (OSError, ValueError) as err:
                first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise InputError(f"--refiner_checkpoint {str(folder)!r}: {first_line}") from err
            loaded.append(model)
        text_encoder = RefinerTextEncoder.from_pretrained(
            paths.text_encoder,
            dtype=dtype,
            device=home,
            local_files_only=True,
            tokenizer_path=paths.tokenizer,
        )
        return cls(loaded[0], loaded[1], text_encoder, device=device, offload=offload, fp8=fp8)

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> RefinerPrompt:
        """Gemma-3 hidden states of the bare prompt through the connectors (video branch), on the device."""
        if self.text_encoder is None:
            raise InputError("--refiner_gemma_root: the refiner has no text encoder (it was released)")
        with self._using(self.text_encoder.model):
            hidden_1LDK, mask_1L = self.text_encoder.all_hidden_states(
                prompt, max_length=self.text_max_length
            )
        expected = (self.connectors.config.caption_channels, self.connectors.config.text_proj_in_factor)
        if tuple(hidden_1LDK.shape[2:]) != expected:
            got = tuple(hidden_1LDK.shape[2:])
            raise InputError(
                f"--refiner_gemma_root: Gemma-3 gives {got} (width, layers), the connectors take {expected}"
            )
        with self._using(self.connectors):
            embeds_1LD, _, mask_1L = self.connectors(
                hidden_1LDK.to(self.device, self.dtype), mask_1L.to(self.device), padding_side="left"
            )
        return RefinerPrompt(embeds_1LD.to(self.dtype), mask_1L)

    def release_text_encoder(self) -> None:
        """Drop the Gemma-3 encoder (about 24 GB in bf16) once the prompt is encoded."""
        self.text_encoder = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.no_grad()
    def __call__(
        self,
        latents_1CThw: torch.Tensor,
        prompt: str | RefinerPrompt,
        *,
        mode: RefinerMode = "single_shot",
        sink_size: int = 1,
        block_size: int = 3,
        kv_max_frames: int = 11,
        sigmas: Sequence[float] = REFINER_SIGMAS,
        seed: int = 42,
        fps: float = 16.0,
        progress: bool = True,
    ) -> torch.Tensor:
        """Refine stage-1 latents; returns ``(1, C, T, h, w)`` in the compute dtype on the compute device.

        Frames ``[0, sink_size)`` are returned unchanged. ``block_size`` and ``kv_max_frames`` only apply to
        ``mode="chunk_causal"``; ``fps`` scales the temporal RoPE (LTX-2 positions are in seconds).
        """
        settings = RefinerSettings(
            mode=mode, sink_size=sink_size, block_size=block_size, kv_max_frames=kv_max_frames, seed=seed
        )
        num_frames = _check_call(latents_1CThw, self.transformer.config.in_channels, settings, sigmas, fps)
        text = prompt if isinstance(prompt, RefinerPrompt) else self.encode_prompt(prompt)
        if mode == "single_shot":
            block_size, kv_max_frames = num_frames - sink_size, num_frames
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        with self._using(self.transformer, streamed=self.offload == "group"):
            return refine_latents(
                self.transformer,
                text,
                latents_1CThw.to(self.device, self.dtype),
                sink_size=sink_size,
                block_size=block_size,
                kv_max_frames=kv_max_frames,
                sigmas=sigmas,
                generator=generator,
                fps=fps,
                progress=progress,
            )

    def _using(self, module: torch.nn.Module, *, streamed: bool = False) -> AbstractContextManager[None]:
        return on_device(module, self.device, offload=self.offload != "none" and not streamed)


def _check_call(
    latents: torch.Tensor,
    channels: int,
    settings: RefinerSettings,
    sigmas: Sequence[float],
    fps: float,
) -> int:
    """Validate what :class:`RefinerSettings` cannot know alone (:class:`InputError` naming each): the
    latents' shape against the settings, the schedule and the frame rate. Returns the latent frame count."""
    if not isinstance(latents, torch.Tensor) or latents.ndim != 5 or latents.shape[:2] != (1, channels):
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise InputError(f"latents: expected shape (1, {channels}, T, h, w), got {shape}")
    settings.check_frames(latents.shape[2])
    check_schedule(sigmas, fps)
    return latents.shape[2]


def decode_refined(vae: VideoVAE, latents_1CThw: torch.Tensor) -> Iterator[np.ndarray]:
    """Decode refined latents lazily to uint8 ``(H, W, 3)`` frames ``1 .. 8 (T - 1)`` (sink anchor dropped).

    Same pixels as ``vae.decode_frames_uint8`` without its first frame; nothing is decoded until iterated.
    """
    yield from itertools.islice(vae.decode_frames_uint8(latents_1CThw), DROPPED_PIXEL_FRAMES, None)


def refined_num_frames(num_frames: int) -> int:
    """Frames of the refined video for ``num_frames`` stage-1 frames (321 -> 320)."""
    return num_frames - DROPPED_PIXEL_FRAMES


def align_to_refined(per_frame: np.ndarray) -> np.ndarray:
    """Per-frame data of the ``F`` stage-1 frames (``c2w (F, 4, 4)``, intrinsics ``(F, 4)``) for the refined
    video: frames ``1 .. F - 1``, i.e. ``c2w[1:F]``."""
    return per_frame[DROPPED_PIXEL_FRAMES:]
