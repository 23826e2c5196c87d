"""Streaming generation: a chunk-causal stage 1 that produces the video a chunk at a time (3 latent frames,
24 pixel frames, 1.5 s at 16 fps) while the camera path may grow between chunks.

A :class:`StreamSession` is one generation. Iterating it yields :class:`StreamChunk` s in order; between two
chunks the caller may :meth:`StreamSession.extend_camera` (the next chunks follow the new poses). Per chunk:

1. stage 1 (``sana_wm.samplers.chunked.sample_self_forcing``): the chunk's Euler steps from its slice of the
   noise (the student's 4 steps 1000/960/889/727 → 0, or ``steps`` shifted steps of a many-step chunk-causal
   teacher), each reading the transformer's :class:`~sana_wm.models.causal.StreamCache`, then one clean
   timestep-0 pass that writes the chunk into the cache; the first chunk holds the image frame and absorbs
   ``T mod 3``;
2. optionally the chunk-causal refiner on the same latent frames (the image latent is its sink);
3. decoding of the chunk's latents (:class:`sana_wm.vae_stream.StreamingDecoder`: exact for the causal LTX-2
   VAE of the streaming release; a bounded look-ahead for a non-causal VAE such as the demo model's) to
   uint8 frames.

On CUDA the three stages run on their own streams and overlap: while chunk ``c`` is sampled, chunk ``c − 1``
is refined and chunk ``c − 2`` decoded (CUDA events order them); a camera change therefore applies to the
next chunk that is sampled, one or two chunks after the last one yielded. On the CPU they run one after the
other.

Noise: one ``N(0, I)`` tensor for the whole clip from ``torch.Generator().manual_seed(seed)`` (CPU, model
dtype), sliced per chunk, as the official sampler does. Memory does not grow with the clip beyond its
latents: the cache keeps only what later chunks read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from sana_wm.camera import prepare_camera, transform_intrinsics_for_crop
from sana_wm.errors import InputError
from sana_wm.inference.stream_graphs import GraphedStreamForward
from sana_wm.models.causal import StreamCache
from sana_wm.samplers import flow_sigmas
from sana_wm.samplers.chunked import (
    STUDENT_STEPS,
    autoregressive_segments,
    sample_self_forcing,
    student_sigmas,
)
from sana_wm.utils.image import resize_and_center_crop

if TYPE_CHECKING:
    from sana_wm.inference.pipeline import Pipeline

BLOCK = 3  # latent frames per chunk after the first (the official num_frame_per_block)


def snap_stream_frames(num_frames: int, block: int = BLOCK, stride: int = 8) -> int:
    """The largest ``stride·block·k + 1 <= num_frames`` pixel frames (24k + 1), at least one chunk after
    the first (``stride·block + 1``)."""
    unit = stride * block
    return max(unit * ((num_frames - 1) // unit), unit) + 1


@dataclass(frozen=True, kw_only=True)
class StreamSettings:
    """How a stream samples (defaults: the official streaming CLI).

    Attributes:
        height, width: pixel size (multiples of 32).
        step_list: the student's timesteps per chunk ("1000,960,889,727,0": 4 Euler steps, shift 1); None: the
            ``steps`` shifted steps of ``flow_shift`` per chunk (a chunk-causal model that is not distilled).
        steps, flow_shift: the many-step schedule when ``step_list`` is None.
        cfg_scale: classifier-free guidance (1.0: none, the student's default; otherwise the cache holds the
            negative and positive rows).
        negative_prompt: with guidance.
        num_cached_blocks: softmax window W (the sink plus the latest W − 1 chunks; <= 0: all).
        sink: keep chunk 0 readable by every later chunk.
        seed: noise seed.
        cuda_graphs: on CUDA with the transformer resident (no block offload), replay recorded graphs of the
            steady-state forwards (:mod:`sana_wm.inference.stream_graphs`; the same numbers, far fewer
            kernel launches).
    """

    height: int = 704
    width: int = 1280
    step_list: str | None = STUDENT_STEPS
    steps: int = 30
    flow_shift: float = 8.0
    cfg_scale: float = 1.0
    negative_prompt: str = ""
    num_cached_blocks: int = 2
    sink: bool = True
    seed: int = 42
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        if self.height % 32 or self.width % 32 or self.height < 32 or self.width < 32:
            raise InputError(f"--height/--width: multiples of 32 expected, got {self.height}x{self.width}")
        if self.step_list is not None:
            try:
                student_sigmas(self.step_list)
            except ValueError as err:
                raise InputError(f"--denoising_step_list: {err}") from None
        if not 1 <= self.steps <= 10000:
            raise InputError(f"--steps: must be in [1, 10000], got {self.steps}")
        if not self.flow_shift > 0:
            raise InputError(f"--flow_shift: must be > 0, got {self.flow_shift}")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"--seed: must be in [0, 2^63), got {self.seed}")

    def sigmas(self) -> torch.Tensor:
        """The sigma grid every chunk walks (ends at 0)."""
        if self.step_list is not None:
            return student_sigmas(self.step_list)
        return flow_sigmas(self.steps, self.flow_shift)


def _room_for(module: torch.nn.Module, device: torch.device, margin: float = 1.25) -> bool:
    """Whether ``module``'s weights (plus a margin for its activations) fit in the device's free memory."""
    need = sum(p.numel() * p.element_size() for p in module.parameters())
    free, _ = torch.cuda.mem_get_info(device)
    return free >= margin * need


@dataclass
class StreamChunk:
    """One finished chunk of a stream.

    Attributes:
        index: chunk number (0 = the first, which holds the image frame).
        frames: ``(F, H, W, 3)`` uint8, the pixel frames this chunk adds (the first chunk: 8·T_0 + 1).
        first_frame: index of ``frames[0]`` in the whole video.
        c2w: ``(F, 4, 4)`` the poses of these frames.
        latents: ``(1, C, T_c, h, w)`` the chunk's final latents (refined if the refiner ran), on the CPU.
        seconds: wall time from the start of the stream until this chunk was ready.
    """

    index: int
    frames: np.ndarray
    first_frame: int
    c2w: np.ndarray
    latents: torch.Tensor
    seconds: float


@dataclass
class _Work:
    """A chunk on its way through the stages."""

    index: int
    start: int
    end: int
    latents: torch.Tensor | None = None
    ready: Any = None  # the CUDA event after the latest stage, or None
    frames: Any = None


@dataclass
class StreamSession:
    """One streamed generation (build it with :meth:`create`; iterate it once).

    ``refiner`` (optional) is called with each chunk's latents ``(1, C, T_c, h, w)`` and returns the refined
    ones (same shape); the first call gets the first chunk, whose frame 0 is the image latent (the sink).
    ``decoder`` turns latent chunks into uint8 frames (``decode_chunk_uint8`` / ``flush_uint8``).
    ``pose_source`` (optional, the interactive case): called with a count when a chunk is about to be sampled
    and the camera path is that many poses short; returns those ``(count, 4, 4)`` poses (e.g. read from the
    keys held right now).
    """

    pipe: Pipeline
    settings: StreamSettings
    num_latents: int
    text_BLD: torch.Tensor
    text_mask_BL: torch.Tensor
    noise: torch.Tensor
    c2w_F44: np.ndarray
    intrinsics_4: np.ndarray
    decoder: Any
    refiner: Callable[[torch.Tensor], torch.Tensor] | None = None
    cache: StreamCache | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _camera_key: tuple[int, int, int] | None = None
    _camera_value: Any = None
    graphs: GraphedStreamForward | None = None
    pose_source: Callable[[int], np.ndarray] | None = None

    @classmethod
    @torch.no_grad()
    def create(
        cls,
        pipe: Pipeline,
        image: Image.Image,
        prompt: str,
        c2w_F44: np.ndarray,
        intrinsics_4: np.ndarray,
        num_frames: int,
        settings: StreamSettings,
        *,
        refiner: Callable[[torch.Tensor], torch.Tensor] | None = None,
        decoder: Any = None,
    ) -> StreamSession:
        """Encode the prompt and the first frame; ``intrinsics_4`` are ``[fx, fy, cx, cy]`` in pixels of the
        original ``image``; ``c2w_F44`` needs at least the poses of the first chunk (more may follow)."""
        if not pipe.transformer.config.chunk_causal:
            raise InputError(
                "stream: the model is bidirectional; streaming needs a chunk-causal one (config chunk_size)"
            )
        if num_frames != snap_stream_frames(num_frames):
            raise InputError(
                f"--num_frames: {num_frames} is not 24k + 1 (use {snap_stream_frames(num_frames)})"
            )
        cropped, crop = resize_and_center_crop(image, settings.height, settings.width)
        intrinsics = transform_intrinsics_for_crop(np.asarray(intrinsics_4, np.float64)[None], crop)[0]
        guided = settings.cfg_scale != 1.0
        # Gemma-2 is needed once per stream: on a GPU it visits for the prompt and goes back to the CPU
        # (where it would not fit beside the transformer, the transformer steps out meanwhile).
        visiting = pipe.device.type == "cuda" and pipe.offload == "none"
        evicted = visiting and not _room_for(pipe.text_encoder.model, pipe.device)
        if evicted:  # a small GPU: the transformer waits on the CPU while Gemma-2 visits
            pipe.transformer.to("cpu")
            torch.cuda.empty_cache()
        if visiting:
            pipe.text_encoder.model.to(pipe.device)
        text_BLD, mask_BL = pipe._encode_text(prompt, settings.negative_prompt, guided, False)
        if visiting:
            pipe.text_encoder.model.to("cpu")
            torch.cuda.empty_cache()
        if evicted:
            pipe.transformer.to(pipe.device)
        first_latent = pipe._encode_first_frame(cropped)
        noise = pipe._initial_latents(
            first_latent, num_frames, settings.height, settings.width, settings.seed
        )
        if decoder is None:
            from sana_wm.vae_stream import StreamingDecoder

            decoder = StreamingDecoder(pipe.vae)
        session = cls(
            pipe=pipe,
            settings=settings,
            num_latents=noise.shape[2],
            text_BLD=text_BLD,
            text_mask_BL=mask_BL,
            noise=noise,
            c2w_F44=np.asarray(c2w_F44, np.float32),
            intrinsics_4=intrinsics.astype(np.float32),
            decoder=decoder,
            refiner=refiner,
        )
        session.cache = StreamCache(
            len(pipe.transformer.blocks), window=settings.num_cached_blocks, sink=settings.sink
        )
        # Not with blocks streamed from the host (--offload group): their weights move on every forward.
        if settings.cuda_graphs and pipe.device.type == "cuda" and pipe.offload == "none":
            session.graphs = GraphedStreamForward(pipe.transformer, backend=pipe.backend)
        return session

    @property
    def num_frames(self) -> int:
        return (self.num_latents - 1) * self.pipe.stride.time + 1

    @property
    def segments(self) -> list[tuple[int, int]]:
        return autoregressive_segments(self.num_latents, BLOCK)

    def extend_camera(self, c2w_F44: np.ndarray) -> None:
        """Append poses (same world frame as the first ones) for the pixel frames after the current path."""
        poses = np.asarray(c2w_F44, np.float32)
        if poses.ndim != 3 or poses.shape[1:] != (4, 4) or not np.isfinite(poses).all():
            raise InputError(f"camera: expected finite (F, 4, 4) poses, got shape {poses.shape}")
        self.c2w_F44 = np.concatenate([self.c2w_F44, poses])

    def _camera(self, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Camera tensors of latent frames ``[start, end)`` (kept for the chunk's forwards)."""
        key = (start, end, self.c2w_F44.shape[0])
        if self._camera_key != key:
            self._camera_value, self._camera_key = self._chunk_camera(start, end), key
        return self._camera_value

    def _chunk_camera(self, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Camera tensors of latent frames ``[start, end)`` from the path so far (poses up to pixel
        ``8(end − 1)``); where the path is shorter, :attr:`pose_source` is asked for the missing poses."""
        stride = self.pipe.stride.time
        needed = stride * (end - 1) + 1
        if self.c2w_F44.shape[0] < needed and self.pose_source is not None:
            self.extend_camera(self.pose_source(needed - self.c2w_F44.shape[0]))
        if self.c2w_F44.shape[0] < needed:
            raise InputError(
                f"camera: chunk up to latent frame {end - 1} needs {needed} poses, the path has "
                f"{self.c2w_F44.shape[0]} (extend_camera first)"
            )
        poses = self.c2w_F44[:needed]
        intrinsics = np.repeat(self.intrinsics_4[None], needed, axis=0)
        s = self.settings
        camera_T20, plucker_CThw = prepare_camera(poses, intrinsics, s.height, s.width, self.pipe.stride.thw)
        batch = 2 if s.cfg_scale != 1.0 else 1
        device, dtype = self.pipe.device, self.pipe.dtype
        camera = camera_T20[start:end].to(device, dtype)[None].repeat(batch, 1, 1)
        plucker = plucker_CThw[:, start:end].to(device, dtype)[None].repeat(batch, 1, 1, 1, 1)
        return camera, plucker

    def _model_fn(
        self, x: torch.Tensor, t_B1T: torch.Tensor, start: int, end: int, write: bool
    ) -> torch.Tensor:
        pipe, s = self.pipe, self.settings
        camera, plucker = self._camera(start, end)
        guided = s.cfg_scale != 1.0
        if guided:
            x, t_B1T = torch.cat([x, x]), torch.cat([t_B1T, t_B1T])
        inputs = (x.to(pipe.dtype), t_B1T, self.text_BLD, self.text_mask_BL, camera, plucker)
        if self.graphs is not None:
            v = self.graphs(*inputs, cache=self.cache, write_cache=write)
        else:
            v = pipe.transformer(*inputs, backend=pipe.backend, cache=self.cache, write_cache=write)
        if guided:
            v_uncond, v_cond = v.chunk(2)
            v = v_uncond + s.cfg_scale * (v_cond - v_uncond)
        return v

    def __iter__(self) -> Iterator[StreamChunk]:
        return self._run()

    @torch.no_grad()
    def _run(self) -> Iterator[StreamChunk]:
        pipe = self.pipe
        cuda = pipe.device.type == "cuda"
        streams = [torch.cuda.Stream(pipe.device) for _ in range(3)] if cuda else None
        begin = time.perf_counter()
        cond_mask_T = torch.zeros(self.num_latents)
        cond_mask_T[0] = 1.0
        sampler = sample_self_forcing(  # on a copy: the session's noise stays as drawn
            self._model_fn, self.noise.clone(), self.settings.sigmas(), self.segments, cond_mask_T=cond_mask_T
        )
        stages = [self._stage1(sampler), self._refine, self._decode]
        if self.refiner is None:
            stages.pop(1)
        emitted = 0
        self._skip = 1 if self.refiner is not None else 0  # the refiner's sink frame is not part of the video
        with pipe._using(pipe.transformer), pipe._using(pipe.vae.vae):
            for work in self._schedule(stages, streams):
                chunk = self._finish(work, emitted, begin)
                emitted += chunk.frames.shape[0]
                yield chunk
            tail = self.decoder.flush_uint8()
            if tail.shape[0]:
                last = self.segments[-1][1]
                yield self._finish(_Work(len(self.segments), last, last, frames=tail), emitted, begin)
        self.timings["total"] = time.perf_counter() - begin

    def _schedule(self, stages: list[Callable[..., _Work]], streams: list[Any] | None) -> Iterator[_Work]:
        """Chunks through the stages: one after the other on the CPU; on CUDA, each tick launches every stage
        on its own stream, the latest stage on the oldest chunk (yielded once its event fired)."""
        chunks = len(self.segments)
        if streams is None:
            for _ in range(chunks):
                work = None
                for stage in stages:
                    work = stage(work)
                yield work
            return
        setup = torch.cuda.current_stream()
        for stream in streams:
            stream.wait_stream(setup)  # the noise, text and first-frame latents were written there
        pending: list[_Work | None] = [None] * len(stages)
        for tick in range(chunks + len(stages) - 1):
            for k in reversed(range(len(stages))):
                source = pending[k - 1] if k > 0 else None
                if (k == 0 and tick >= chunks) or (k > 0 and source is None):
                    pending[k] = None
                    continue
                stream = streams[k]
                if source is not None:
                    stream.wait_event(source.ready)
                    if source.latents is not None:
                        source.latents.record_stream(stream)  # read on this stream: keep until it is done
                with torch.cuda.stream(stream):
                    work = stages[k](source)
                    work.ready = stream.record_event()
                pending[k] = work
            if pending[-1] is not None:
                yield pending[-1]
        for stream in streams:
            setup.wait_stream(stream)

    def _stage1(self, sampler: Iterator[tuple[int, torch.Tensor]]) -> Callable[[_Work | None, int], _Work]:
        def run(_: _Work | None) -> _Work:
            index, latents = next(sampler)
            start, end = self.segments[index]
            return _Work(index, start, end, latents=latents.clone())

        return run

    def _refine(self, work: _Work) -> _Work:
        assert self.refiner is not None
        return _Work(work.index, work.start, work.end, latents=self.refiner(work.latents))

    def _decode(self, work: _Work) -> _Work:
        frames = self.decoder.decode_chunk_uint8(work.latents)
        return _Work(work.index, work.start, work.end, latents=work.latents, frames=frames)

    def _finish(self, work: _Work, emitted: int, begin: float) -> StreamChunk:
        if work.ready is not None:
            work.ready.synchronize()
        frames = work.frames
        if isinstance(frames, torch.Tensor):
            frames = frames.cpu().numpy()
        skip = min(self._skip, frames.shape[0])
        frames, self._skip = frames[skip:], self._skip - skip
        count = frames.shape[0]
        latents = work.latents.to("cpu") if work.latents is not None else torch.empty(0)
        first = emitted + (1 if self.refiner is not None else 0)  # pose index of frames[0]
        c2w = _poses(self.c2w_F44, first, count)
        return StreamChunk(work.index, frames, emitted, c2w, latents, time.perf_counter() - begin)


def refiner_stage(stream: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Adapt a :class:`~sana_wm.inference.refiner_stream.RefinerStream` (sink 1, blocks of 3) to a stream's
    refiner stage: the first chunk's frame 0 (the image latent) becomes the sink, output unchanged; every
    later chunk is one refiner block. The video then starts at frame 1 (the sink's decoded frame is dropped,
    as the official streaming orchestrator does)."""
    started = False

    def run(latents_1CThw: torch.Tensor) -> torch.Tensor:
        nonlocal started
        if started:
            return stream.refine_block(latents_1CThw)
        started = True
        sink = latents_1CThw[:, :, :1]
        stream.start(sink)
        return torch.cat([sink, stream.refine_block(latents_1CThw[:, :, 1:])], dim=2)

    return run


def _poses(c2w_F44: np.ndarray, first: int, count: int) -> np.ndarray:
    """Poses of frames ``[first, first + count)``, the last pose repeated past the end of the path."""
    index = np.minimum(np.arange(first, first + count), c2w_F44.shape[0] - 1)
    return c2w_F44[index]
