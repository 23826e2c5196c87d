"""First image + prompt + camera path -> video: the stage-1 SANA-WM generation pipeline (no file I/O).

:meth:`Pipeline.__call__` runs, in order:

1. trajectory: the action string rolled out (``sana_wm.camera.action_to_c2w``) or the given ``c2w``; the frame
   count is ``min(num_frames, poses)`` snapped to ``8k + 1`` (``align_num_frames``);
2. first frame: aspect-preserving LANCZOS resize + centre crop to ``height`` x ``width`` (704 x 1280);
3. intrinsics, given in pixels of the ORIGINAL image (or estimated from it: EXIF, Pi3X, 60 deg default), gated
   to a 25-120 deg field of view, then mapped through the same resize + crop;
4. the DiT's camera tensors (``prepare_camera``): poses relative to frame 0 plus Plücker ray windows;
5. text: Gemma-2 features for ``[negative, positive]`` (classifier-free guidance) or the positive alone
   when ``cfg_scale == 1``;
6. the first frame VAE-encoded to latent frame 0;
7. noise ``N(0, I)`` of shape ``(1, C, T, h, w)`` drawn on the CPU by ``torch.Generator().manual_seed(seed)``
   in the model dtype (a seed gives the same noise on any device), frame 0 replaced by the image latent;
8. the flow sampler (default per-frame-timestep Euler, frame 0 held clean) with guidance; a chunk-causal model
   (the official chunk-causal teacher) samples with the official ``ChunkFlowEuler`` staircase instead (as
   its config's ``vis_sampler`` asks);
9. VAE decoding to uint8 frames, lazily: :class:`DecodedFrames` decodes one temporal tile at a time while it
   is iterated, so a minute of 704 x 1280 video is never held as float pixels.

Given the same components and a CPU generator, steps 1-8 reproduce diffusers' ``SanaWMPipeline`` (0.42.1): in
float32 the final latents agree to ~5e-6 (tests/pipeline), once diffusers' habit of running its softmax
attention in bf16 even for float32 models is switched off. Two deliberate differences: guidance is skipped
only for ``cfg_scale == 1`` (diffusers skips it for any scale <= 1), and intrinsics may be omitted. The
stage-2 refiner runs after this pipeline: :func:`sana_wm.inference.two_stage.generate_two_stage`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from sana_wm.camera import (
    check_fov,
    estimate_intrinsics,
    fit_intrinsics,
    prepare_camera,
    transform_intrinsics_for_crop,
)
from sana_wm.errors import InputError
from sana_wm.inference.offload import default_memory_plan, enable_block_streaming, on_device
from sana_wm.inference.request import GenerationRequest, OffloadMode
from sana_wm.latent_shape import LatentShape, VaeStride
from sana_wm.models import MemoryPlan, SanaWMConfig, SanaWMTransformer
from sana_wm.models.causal import ChunkLayout
from sana_wm.ops import Backend
from sana_wm.samplers import cfg_model_fn, flow_sigmas, sample_euler, sample_heun, sample_ltx_euler
from sana_wm.samplers.chunked import chunk_starts, sample_chunk_flow_euler
from sana_wm.utils.device import resolve_device, resolve_dtype
from sana_wm.utils.image import resize_and_center_crop
from sana_wm.utils.timing import timed_stage

if TYPE_CHECKING:
    from sana_wm.inference.weights import RefinerPaths, WeightPaths
    from sana_wm.vae import VideoVAE

log = logging.getLogger(__name__)

SAMPLERS = {"ltx_euler": sample_ltx_euler, "euler": sample_euler, "heun": sample_heun}


class PromptEncoder(Protocol):
    """What stage 1 needs of a text encoder: :class:`sana_wm.text_encoder.TextEncoder` (Gemma-2), or the
    demo model's :class:`~.demo_model.NullTextEncoder`. ``model`` is what moves between devices."""

    model: torch.nn.Module

    def encode(
        self, prompts: Sequence[str], *, use_chi_prompt: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(text_BLD, mask_BL)`` of ``prompts``."""
        ...

    def encode_for_cfg(self, prompt: str, negative_prompt: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """``(text_BLD, mask_BL)`` of ``[negative_prompt, prompt]``."""
        ...


class DecodedFrames:
    """The video as RGB uint8 frames ``(H, W, 3)``, decoded lazily from the latents each time it is iterated.

    Iterating decodes one VAE temporal tile at a time and yields its frames; the time spent decoding (not the
    consumer's time) is stored in ``timings["decode"]`` when the iteration completes (and, on CUDA, the peak
    GPU memory since the iteration began in ``memory["decode"]``). :meth:`numpy` stacks the
    whole video into one ``(F, H, W, 3)`` array.
    """

    def __init__(
        self,
        decode: Callable[[], Iterator[np.ndarray]],
        num_frames: int,
        *,
        device: torch.device,
        timings: dict[str, float],
        memory: dict[str, float],
        progress: bool,
    ) -> None:
        self._decode = decode
        self._num_frames = num_frames
        self._device = device
        self._timings = timings
        self._memory = memory
        self._progress = progress

    def __len__(self) -> int:
        return self._num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        # smoothing=0: the rate averages over the whole run, so the estimate is not set by the first frame
        # alone (which waits for the decode of a whole temporal tile; the rest of the tile follows at once).
        bar = tqdm(
            total=self._num_frames,
            desc="decode",
            unit="frame",
            disable=not self._progress,
            leave=False,
            smoothing=0,
        )
        cuda = self._device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self._device)
        spent = 0.0
        frames = self._decode()
        try:
            while True:
                start = time.perf_counter()
                try:
                    frame_HW3 = next(frames)
                except StopIteration:
                    break
                finally:
                    spent += time.perf_counter() - start
                bar.update(1)
                yield frame_HW3
            self._timings["decode"] = spent
            if cuda:
                self._memory["decode"] = torch.cuda.max_memory_allocated(self._device) / 2**30
        finally:
            bar.close()
            frames.close()

    def numpy(self) -> np.ndarray:
        """All frames as one uint8 array ``(F, H, W, 3)``."""
        return np.stack(list(self))


@dataclass
class GenerationOutput:
    """Result of one generation: stage 1 alone, or the refined video (then ``stage1`` holds stage 1's result).

    Attributes:
        frames: the video, ``num_frames`` RGB uint8 frames of ``height`` x ``width``, decoded on iteration.
        c2w: ``(F, 4, 4)`` float32 camera-to-world poses of the frames (OpenCV axes, metres, as given: not
            relative to frame 0).
        intrinsics: ``(F, 4)`` float32 ``[fx, fy, cx, cy]`` in pixels of the generated frames.
        intrinsics_source: ``"given"``, or how they were estimated: ``"exif"``, ``"pi3x"``, ``"default"``.
        latents: the latents ``frames`` decode from, ``(1, C, T, h, w)`` on the CPU in the model dtype
            (frame 0 = the image): stage 1's, or the refined ones.
        num_frames: F: ``8k + 1`` for stage 1, ``8k`` for a refined video (its first decoded frame is
            dropped).
        timings: seconds per stage (``text_encode``, ``vae_encode``, ``sampling``, ``sampling_per_step``;
            after refining also ``refiner_load``, ``refine_text``, ``refine``; ``decode`` once ``frames`` has
            been iterated).
        peak_memory_gib: on CUDA, the peak allocated GPU memory of each stage in GiB (same keys; the counter
            is reset at the start of each stage); empty on the CPU.
        stage1: for a refined video, the stage-1 result it was refined from (its own frames, ``8k + 1`` of
            them, poses, latents and timings); None for stage 1 itself.
    """

    frames: DecodedFrames
    c2w: np.ndarray
    intrinsics: np.ndarray
    intrinsics_source: str
    latents: torch.Tensor
    num_frames: int
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory_gib: dict[str, float] = field(default_factory=dict)
    stage1: GenerationOutput | None = None


class Pipeline:
    """Stage-1 SANA-WM: a transformer, a Gemma-2 text encoder and the LTX-2 VAE on one device.

    Args:
        transformer: the DiT; its parameter dtype is the compute dtype of the whole generation.
        text_encoder: Gemma-2 wrapper; its hidden size must equal the transformer's ``caption_channels``.
        vae: LTX-2 VAE wrapper; its latent channels must equal the transformer's ``in_channels``.
        device: compute device (default: the transformer's).
        offload: ``"none"``, ``"model"`` or ``"group"`` (see :mod:`~.offload`); ignored on the CPU.
        backend: implementation of the transformer's ops (see ``sana_wm.ops``).
    """

    def __init__(
        self,
        transformer: SanaWMTransformer,
        text_encoder: PromptEncoder,
        vae: VideoVAE,
        *,
        device: str | torch.device | None = None,
        offload: OffloadMode = "none",
        backend: Backend = "torch",
        memory: MemoryPlan | None = None,
    ) -> None:
        self.device = torch.device(device) if device is not None else _param(transformer).device
        if offload != "none" and self.device.type == "cpu":
            log.warning("--offload %s: ignored, the computation runs on the CPU", offload)
            offload = "none"
        self.transformer = transformer.eval()
        self.text_encoder = text_encoder
        self.vae = vae
        self.offload: OffloadMode = offload
        self.backend: Backend = backend
        self.memory = memory
        self.dtype = _param(transformer).dtype
        self.weights: WeightPaths | None = None  # where load_pipeline found the weights
        self.refiner_weights: RefinerPaths | None = None  # where it found the refiner's, when asked to
        self._released = False
        home = self.device if offload == "none" else torch.device("cpu")
        for module in (transformer, text_encoder.model, vae.vae):
            module.to(home)
        if offload == "group":
            enable_block_streaming(transformer, self.device)

    @torch.no_grad()
    def __call__(self, request: GenerationRequest, *, progress: bool = True) -> GenerationOutput:
        """Stage 1 of ``request`` (its ``refiner`` settings are not used here): a video of
        ``request.num_frames`` frames that starts at the image, follows the camera and matches the prompt.

        ``progress`` draws tqdm bars on stderr for text encoding, each sampling step and decoding.
        """
        settings = request.sampling
        self._reacquire_models()
        timings: dict[str, float] = {}
        memory: dict[str, float] = {}
        stage = functools.partial(timed_stage, device=self.device, timings=timings, memory=memory)

        num_frames, height, width = request.num_frames, settings.height, settings.width
        with stage("prepare"):
            c2w_F44 = request.c2w_F44
            cropped, crop = resize_and_center_crop(request.image, height, width)
            source_F4, source = _source_intrinsics(request.image, request.camera.intrinsics, num_frames)
            intrinsics_F4 = transform_intrinsics_for_crop(source_F4, crop).astype(np.float32)
            camera_T20, plucker_CThw = prepare_camera(c2w_F44, intrinsics_F4, height, width, self.stride.thw)

        guided = settings.guided
        with stage("text_encode"):
            text_BLD, text_mask_BL = self._encode_text(
                request.prompt, settings.negative_prompt, guided, progress
            )
        with stage("vae_encode"):
            first_latent = self._encode_first_frame(cropped)

        noise = self._initial_latents(first_latent, num_frames, height, width, settings.seed)
        batch = 2 if guided else 1
        camera_B_T20 = camera_T20.to(self.device, self.dtype)[None].repeat(batch, 1, 1)
        plucker_B_CThw = plucker_CThw.to(self.device, self.dtype)[None].repeat(batch, 1, 1, 1, 1)

        plan = self.memory if self.memory is not None else default_memory_plan(self.offload, noise.shape)

        def model_fn(
            x: torch.Tensor, timestep_B1T: torch.Tensor, chunks: ChunkLayout | None = None
        ) -> torch.Tensor:
            frames = x.shape[2]  # the chunk-causal staircase feeds a prefix of the clip
            return self.transformer(
                x,
                timestep_B1T,
                text_BLD,
                text_mask_BL,
                camera_B_T20[:, :frames],
                plucker_B_CThw[:, :, :frames],
                backend=self.backend,
                memory=plan,
                chunks=chunks,
            )

        cond_mask_T = torch.zeros(noise.shape[2])
        cond_mask_T[0] = 1.0  # latent frame 0 is the clean image
        bar = functools.partial(tqdm, desc="denoise", unit="step", disable=not progress)
        sigmas = flow_sigmas(settings.steps, settings.flow_shift)
        with stage("sampling"), self._using(self.transformer, streamed=self.offload == "group"):
            if self.transformer.config.chunk_causal:
                latents = self._staircase(model_fn, noise, sigmas, settings.cfg_scale if guided else None)
            else:
                latents = SAMPLERS[settings.sampler](
                    cfg_model_fn(model_fn, settings.cfg_scale) if guided else model_fn,
                    noise,
                    sigmas,
                    cond_mask_T=cond_mask_T,
                    progress=bar,
                )
        timings["sampling_per_step"] = timings["sampling"] / settings.steps
        return GenerationOutput(
            frames=self.lazy_frames(latents, num_frames, timings=timings, memory=memory, progress=progress),
            c2w=c2w_F44,
            intrinsics=intrinsics_F4,
            intrinsics_source=source,
            latents=latents.to("cpu"),
            num_frames=num_frames,
            timings=timings,
            peak_memory_gib=memory,
        )

    def _staircase(
        self,
        model_fn: Callable[..., torch.Tensor],
        noise: torch.Tensor,
        sigmas: torch.Tensor,
        scale: float | None,
    ) -> torch.Tensor:
        """A chunk-causal model (the official chunk-causal teacher) samples with the official
        ``ChunkFlowEuler``: the diffusion-forcing staircase over its chunks (chunk ``i`` starts its
        ``steps`` at global step ``i·steps/chunks``; only started chunks are fed), whatever ``sampler``
        says."""
        config = self.transformer.config
        starts = chunk_starts(noise.shape[2], config.chunk_size or 1, config.chunk_strategy)
        log.info("chunk-causal model: sampling with the chunk staircase over %d chunks", len(starts))

        def prefix_fn(x: torch.Tensor, t_B1T: torch.Tensor, active: Sequence[int]) -> torch.Tensor:
            layout = ChunkLayout(tuple(active))
            if scale is None:
                return model_fn(x, t_B1T, layout)
            v_uncond, v_cond = model_fn(torch.cat([x, x]), torch.cat([t_B1T, t_B1T]), layout).chunk(2)
            return v_uncond + scale * (v_cond - v_uncond)

        cond_mask_T = torch.zeros(noise.shape[2])
        cond_mask_T[0] = 1.0
        return sample_chunk_flow_euler(prefix_fn, noise, sigmas, starts, cond_mask_T=cond_mask_T)

    def lazy_frames(
        self,
        latents_1CThw: torch.Tensor,
        num_frames: int,
        *,
        timings: dict[str, float],
        memory: dict[str, float],
        progress: bool,
        decode: Callable[[VideoVAE, torch.Tensor], Iterator[np.ndarray]] | None = None,
    ) -> DecodedFrames:
        """``num_frames`` uint8 frames decoded from ``latents`` by this pipeline's VAE, at each iteration.

        ``decode(vae, latents)`` yields the frames (default ``vae.decode_frames_uint8``; the refined video
        uses ``refiner.decode_refined``). The VAE is on the compute device while decoding (moved there
        and back when offloading); the decode time and peak memory are stored under ``"decode"``.
        """

        def frames() -> Iterator[np.ndarray]:
            with self._using(self.vae.vae):
                if decode is None:
                    yield from self.vae.decode_frames_uint8(latents_1CThw)
                else:
                    yield from decode(self.vae, latents_1CThw)

        return DecodedFrames(
            frames, num_frames, device=self.device, timings=timings, memory=memory, progress=progress
        )

    def release_models(self) -> None:
        """Free the GPU of the stage-1 transformer and Gemma-2 (before the refiner needs it); the VAE stays.

        With ``offload="none"`` on a GPU they are moved to the CPU (about 10 GB of host memory for the
        release in bfloat16; a copy back costs a few seconds, where deleting them would make the pipeline
        single-use) and the next call moves them back. With ``"model"`` or ``"group"`` they already live on
        the CPU between stages, and on the CPU nothing moves: then this does nothing.
        """
        if self.offload != "none" or self.device.type == "cpu":
            return
        for module in (self.transformer, self.text_encoder.model):
            module.to("cpu")
        self._released = True
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _reacquire_models(self) -> None:
        if self._released:
            for module in (self.transformer, self.text_encoder.model):
                module.to(self.device)
            self._released = False

    @property
    def stride(self) -> VaeStride:
        """The VAE's compression (8, 32, 32 for LTX-2)."""
        return VaeStride.of(self.vae.vae)

    def _encode_text(
        self, prompt: str, negative_prompt: str, guided: bool, progress: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Text features ``(B, L, D)`` and mask ``(B, L)`` on the compute device: ``[negative, positive]``."""
        bar = tqdm(total=1, desc="text encoder", disable=not progress, leave=False)
        with self._using(self.text_encoder.model):
            if guided:
                text_BLD, text_mask_BL = self.text_encoder.encode_for_cfg(prompt, negative_prompt)
            else:
                text_BLD, text_mask_BL = self.text_encoder.encode([prompt], use_chi_prompt=True)
        bar.update(1)
        bar.close()
        caption = self.transformer.config.caption_channels
        if text_BLD.shape[-1] != caption:
            width = text_BLD.shape[-1]
            raise InputError(
                f"--text_encoder_path: text features are {width} wide, the transformer takes {caption}"
            )
        return text_BLD.to(self.device, self.dtype), text_mask_BL.to(self.device)

    def _encode_first_frame(self, cropped: Image.Image) -> torch.Tensor:
        """Normalised latent ``(1, C, 1, h, w)`` of the cropped first frame, model dtype, compute device."""
        with self._using(self.vae.vae):
            first_latent = self.vae.encode_image(_pixels(cropped))
        channels = self.transformer.config.in_channels
        if first_latent.shape[1] != channels:
            raise InputError(
                f"--vae_path: the VAE has {first_latent.shape[1]} latent channels, the transformer {channels}"
            )
        return first_latent.to(self.device, self.dtype)

    def _initial_latents(
        self, first_latent: torch.Tensor, num_frames: int, height: int, width: int, seed: int
    ) -> torch.Tensor:
        """Noise ``(1, C, T, h, w)`` from a seeded CPU generator in the model dtype; frame 0 = the image."""
        shape = LatentShape.of_video(num_frames, height, width, first_latent.shape[1], self.stride).batch(1)
        generator = torch.Generator("cpu").manual_seed(int(seed))
        noise = torch.randn(shape, generator=generator, dtype=self.dtype).to(self.device)
        noise[:, :, :1] = first_latent
        return noise

    def _using(self, module: torch.nn.Module, *, streamed: bool = False) -> contextlib.AbstractContextManager:
        """The component on the compute device for a stage (moved there and back when offloading)."""
        return on_device(module, self.device, offload=self.offload != "none" and not streamed)


def load_pipeline(
    model_path: str | os.PathLike[str] | None = None,
    *,
    config: SanaWMConfig | str | os.PathLike[str] | None = None,
    vae_path: str | os.PathLike[str] | None = None,
    text_encoder_path: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    offload: OffloadMode = "none",
    local_files_only: bool | None = None,
    backend: Backend = "torch",
    refiner: bool = False,
    refiner_checkpoint: str | os.PathLike[str] | None = None,
    refiner_gemma_root: str | os.PathLike[str] | None = None,
) -> Pipeline:
    """Load the three components (None = the official release, see :mod:`~.weights`) into a Pipeline.

    With ``refiner`` the stage-2 refiner's folders are looked up too (``refiner_checkpoint``,
    ``refiner_gemma_root``, see :func:`sana_wm.inference.refiner.resolve_refiner_weights`) and stored as
    ``pipeline.refiner_weights`` for :func:`~.two_stage.generate_two_stage`, which loads them after
    stage 1; anything missing of either stage is reported together, before any weight is loaded.

    Args:
        model_path: transformer checkpoint: official ``.safetensors``, our own file, a diffusers folder, or an
            ``hf://`` URI of one of those.
        config: the transformer's architecture when the checkpoint does not carry it: a
            :class:`SanaWMConfig`, a preset name (``"sana_wm_1600m_720p"``, ``"tiny"``), or an official
            ``config.yaml`` (path or URI).
        vae_path: diffusers ``AutoencoderKLLTX2Video`` folder (or a repository root with ``vae/``) or URI.
        text_encoder_path: transformers folder with Gemma-2 weights and tokenizer, or URI.
        device: default CUDA when available, else CPU.
        dtype: default bfloat16 on CUDA (the release's precision), float32 on the CPU.
        offload: see :mod:`sana_wm.inference.offload`.
        local_files_only: never download (None follows ``HF_HUB_OFFLINE``).

    Raises:
        MissingWeightsError: weights neither local nor cached nor downloadable (one line per
            missing piece of either stage).
        InputError: unreadable, corrupt or mismatched weights (one line).
    """
    from sana_wm.inference.weights import load_transformer_weights, model_config, resolve_two_stage_weights

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    paths, refiner_paths = resolve_two_stage_weights(
        model_path,
        config=None if isinstance(config, SanaWMConfig) else config,
        vae_path=vae_path,
        text_encoder_path=text_encoder_path,
        refiner=refiner,
        refiner_checkpoint=refiner_checkpoint,
        refiner_gemma_root=refiner_gemma_root,
        local_files_only=local_files_only,
    )
    # transformers and diffusers take seconds to import: only once the weights are known to exist.
    from sana_wm.text_encoder import TextEncoder
    from sana_wm.vae import VideoVAE

    home = device if offload == "none" else torch.device("cpu")
    transformer = load_transformer_weights(paths.model, model_config(config, paths.config), home, dtype)
    text_encoder = TextEncoder.from_pretrained(
        paths.text_encoder, dtype=dtype, device=home, local_files_only=True
    )
    vae = VideoVAE.from_pretrained(paths.vae, dtype=dtype, device=home, local_files_only=True, subfolder=None)
    pipeline = Pipeline(transformer, text_encoder, vae, device=device, offload=offload, backend=backend)
    pipeline.weights = paths
    pipeline.refiner_weights = refiner_paths
    return pipeline


def _param(module: torch.nn.Module) -> torch.Tensor:
    return next(module.parameters())


def _source_intrinsics(
    image: Image.Image, intrinsics: np.ndarray | None, num_frames: int
) -> tuple[np.ndarray, str]:
    """Per-frame intrinsics ``(F, 4)`` in pixels of the original image, and where they came from."""
    image_hw = (image.height, image.width)
    if intrinsics is None:
        estimated, source = estimate_intrinsics(image)
        return np.repeat(estimated[None], num_frames, axis=0), source
    fitted = fit_intrinsics(np.asarray(intrinsics), num_frames, "--intrinsics")
    check_fov(fitted, image_hw, "--intrinsics")
    return fitted, "given"


def _pixels(image: Image.Image) -> torch.Tensor:
    """RGB image -> ``(1, 3, H, W)`` float32 in [-1, 1] (``x / 255 * 2 - 1``, the diffusers convention)."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None] * 2.0 - 1.0
