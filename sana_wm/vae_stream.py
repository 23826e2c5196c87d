"""Streaming decode: latent chunks in, the pixel frames that are now final out.

:class:`StreamingDecoder` is made from a :class:`~sana_wm.vae.VideoVAE` and fed the normalised latents of a
video one chunk at a time, as an autoregressive sampler produces them. Latent 0 stands for pixel frame 0,
latent ``i > 0`` for frames ``8 i - 7 .. 8 i``. A causal decoder's frames are final at once: the first call
with ``k + 1`` latent frames returns ``8 k + 1`` pixel frames, every later call with ``k`` returns ``8 k``.
A non-causal decoder holds back the frames of the last ``lookahead`` latents consumed until later latents
arrive; :meth:`~StreamingDecoder.flush` returns them at the end of the video. Either way the concatenation of
all calls and the flush has the length of one decode of the whole sequence.

Causal decoder (``decoder_causal=True``, the official ``ltx2_causal_vae`` of the streaming release): exact.
In diffusers' LTX-2 decoder only two kinds of layer couple frames in time (RMS/LayerNorms are per pixel,
there is no attention): ``LTX2VideoCausalConv3d``, which left-pads its input with ``k - 1`` copies of the
first frame, and ``LTX2VideoUpsampler3d``, which drops the first ``stride_t - 1`` frames of its depth-to-space
output. During each call the decoder's modules of these two kinds get a replacement ``forward`` (restored when
the call ends, also on an exception; diffusers is not edited): every causal conv pads with the last
``k - 1`` input frames it saw in the previous call instead of copies, and the upsamplers drop their leading
frames on the first call only. The carried state is ``k - 1`` frames per conv (2 with the LTX-2 kernels)
whatever the number of chunks. The result equals the decoder run once over the whole sequence
(``vae.decoder(z, causal=True)``, or diffusers' spatially tiled decode), within float rounding. It is not
:meth:`VideoVAE.decode` of more than 12 latent frames: that one cross-fades temporal tiles (frame-wise
decoding), which is a different, approximate computation.

Non-causal decoder (``decoder_causal=False``, e.g. the bundled demo VAE): exact streaming would need latents
that do not exist yet (every conv also looks one frame to the right). Each call decodes a window: the
``context`` latent frames before the first latent whose frames were not returned yet, those latents, and
the new chunk; it returns the frames of all but the last ``lookahead`` latents, which stay in the window as
right context. :meth:`~StreamingDecoder.flush` decodes the window once more with the decoder's own right
edge (replicate padding), exactly as a one-shot decode ends, and returns the held-back frames. The default
context is the decoder's one-sided temporal receptive field rounded up (:func:`receptive_field_latents`:
10.125 latent frames for the demo VAE, so 11; perturbing one latent changes exactly the pixel frames within
that reach, 81 pixel frames to each side). The left side is then exact: every returned frame equals the
one-shot decode of the video up to the last latent consumed, and the flushed frames equal the one-shot
decode's last frames. The state is the window, at most ``context + lookahead`` latent frames.

The error is the missing right context alone; it grows towards the right edge of what a call returns and
shrinks fast with the lookahead (``lookahead >= ceil(receptive field)`` would be exact). Measured on the
demo VAE (a panning crop of the demo first frame encoded by the demo VAE, CPU fp32, the whole clip
streamed and flushed), max |streamed - one-shot| on the [-1, 1] scale / in uint8 levels, and PSNR:

=========  =====================  =====================  ==========================  ======================
lookahead  10 latents [4, 3, 3]   the same at 96 x 160   16 latents [4, 3, 3, 3, 3]  the same at 96 x 160
           192 x 352
=========  =====================  =====================  ==========================  ======================
0          0.77 / 98 / 37.1 dB    0.61 / 77 / 36.2 dB    0.78 / 99 / 35.5 dB         0.76 / 98 / 33.8 dB
1          0.17 / 23 / 46.5 dB    0.16 / 20 / 45.9 dB    0.20 / 26 / 45.1 dB         0.19 / 25 / 43.7 dB
2          0.080 / 11 / 57.4 dB   0.040 / 6 / 57.2 dB    0.080 / 11 / 55.9 dB        0.066 / 9 / 54.5 dB
3          0.017 / 3 / 71.0 dB    0.011 / 2 / 73.6 dB    0.017 / 3 / 69.7 dB         0.017 / 3 / 67.9 dB
4          0.0037 / 1 / 85.8 dB   0.0014 / 1 / 89.9 dB   0.0037 / 1 / 83.6 dB        0.0038 / 1 / 81.1 dB
=========  =====================  =====================  ==========================  ======================

(The 96 x 160 columns of lookahead 0 and 3 are the bounds in ``tests/test_vae_stream.py``.) Hence the default
:data:`DEFAULT_LOOKAHEAD` = 3, one streamed chunk: at most 3 uint8 levels off on these clips. Its latency: the
frames of the last 3 latents consumed (24 pixel frames, 1.5 s at the demo's 16 fps) wait for the next call, so
with 3-latent chunks every call returns the previous chunk's frames ([4, 3, 3] returns 1, 24, 24 and 24 frames
at the flush), and a first chunk of at most 3 latents returns no frame. Decode cost, in pixel frames decoded
over those of one one-shot decode: [4, 3, 3] 2.0 x with lookahead 0, 3.0 x with 1 to 3 (the flush decodes the
last window again); [4, 3, 3, 3, 3] 2.9 x and 3.7 to 3.9 x. In a long stream of 3-latent chunks a call decodes
``context + lookahead + 3`` = 17 latent frames instead of 14 (1.2 x per call), plus one window of 14 at the
flush. Wall-clock ratios measured alongside (1.5 to 6.8 x one-shot, on a shared 2-core CPU) were too noisy to
separate the lookaheads; the count of decoded frames is the reliable measure.

Spatial tiling: when the VAE tiles spatially (``VideoVAE``'s 512 px tiles), each tile carries its own state
and the tiles are cross-faded as diffusers' ``tiled_decode`` does, so the streamed pixels equal the tiled
decode; ``spatial_tiling=False`` decodes whole frames instead.

Not thread-safe: while a call runs, the wrapped VAE's decoder must not be used by anything else (other
:class:`StreamingDecoder` objects on the same VAE are fine between calls: each keeps its own state). The
decoder must not be ``torch.compile``d (a compiled graph would not see the replaced forwards; the official
orchestrator notes the same for its decoder cache).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from sana_wm.errors import InputError
from sana_wm.vae import CausalConv3d, Upsampler3d, VideoVAE, to_uint8

_MISSING = object()
DEFAULT_LOOKAHEAD = 3
"""Latent frames a non-causal decoder holds back by default (one 3-latent chunk; see the module docstring)."""


def receptive_field_latents(decoder: nn.Module) -> float:
    """One-sided temporal receptive field of a *non-causal* LTX-2 decoder, in latent frames.

    Sums ``(k_t - 1) / 2`` over the temporal convs in forward order, each divided by the temporal
    upsampling already applied before it. An output frame depends on latent frames at most this far to its
    left (and to its right). 10.125 for the bundled demo VAE, 6.625 for :func:`sana_wm.tiny.tiny_ltx2_vae`.
    """
    upsampler_stride = {id(m.conv): m.stride[0] for m in decoder.modules() if isinstance(m, Upsampler3d)}
    rate, total = 1, 0.0
    for module in decoder.modules():  # registration order is forward order in diffusers' LTX-2 decoder
        if isinstance(module, CausalConv3d):
            total += (module.kernel_size[0] - 1) / 2 / rate
            rate *= upsampler_stride.get(id(module), 1)
    return total


class StreamingDecoder:
    """Decode a video's normalised latents chunk by chunk; see the module docstring for the guarantees.

    Args:
        vae: the VAE wrapper; its decoder must be LTX-2 without decode-time noise or timestep conditioning.
        context: non-causal decoders only: previous latent frames decoded again with each chunk. Default
            ``ceil(receptive_field_latents)``, which makes the left side exact; less is faster and adds a
            left-edge error. Must be ``None`` for a causal decoder, which carries its state instead.
        lookahead: non-causal decoders only: latent frames whose pixel frames are held back as right
            context until later latents arrive (or :meth:`flush`). Default :data:`DEFAULT_LOOKAHEAD` (3,
            one streamed chunk: error and latency in the module docstring); 0 returns every chunk's frames
            at once with the large error of a missing right edge. A causal decoder needs none: it refuses
            anything but ``None`` or 0 (the frames would only come later, unchanged).
        spatial_tiling: ``None`` follows the VAE (``VideoVAE`` enables diffusers' spatial tiling, used for
            frames larger than one tile); ``False`` decodes whole frames.
        replace_blank: in :meth:`decode_chunk_uint8`, replace a uniform frame (every pixel one colour: how a
            failed decode shows; the official streaming orchestrator guards against it) by the last
            non-uniform frame, see :func:`replace_blank_frames`. Off by default since a genuinely uniform
            frame (a cut to black) would be replaced too.

    Attributes:
        exact: whether the decoder is causal, so that streaming equals one decode of the whole sequence.
        context: the ``context`` in use (0 for a causal decoder).
        lookahead: the ``lookahead`` in use (0 for a causal decoder).
        latent_frames: latent frames consumed so far.
        blank_frames_replaced: frames :meth:`decode_chunk_uint8` and :meth:`flush_uint8` replaced by
            ``replace_blank``.
    """

    def __init__(
        self,
        vae: VideoVAE,
        *,
        context: int | None = None,
        lookahead: int | None = None,
        spatial_tiling: bool | None = None,
        replace_blank: bool = False,
    ) -> None:
        self.vae = vae
        decoder = vae.vae.decoder
        self.exact = bool(decoder.is_causal)
        _check_decoder(decoder)
        if self.exact:
            if context is not None:
                raise InputError("context: only for a non-causal VAE decoder; a causal one carries its state")
            if lookahead not in (None, 0):
                raise InputError("lookahead: only for a non-causal VAE decoder; a causal one is exact")
            self.context, self.lookahead = 0, 0
        else:
            default = math.ceil(receptive_field_latents(decoder))
            if context is not None and not (isinstance(context, int) and context >= 1):
                # At least one: the window's first latent decodes to one pixel frame, not eight.
                raise InputError(f"context: must be an integer >= 1, got {context!r}")
            self.context = default if context is None else context
            if lookahead is not None and (
                isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 0
            ):
                raise InputError(f"lookahead: must be an integer >= 0, got {lookahead!r}")
            self.lookahead = DEFAULT_LOOKAHEAD if lookahead is None else lookahead
        self.spatial_tiling = vae.vae.use_tiling if spatial_tiling is None else bool(spatial_tiling)
        self.replace_blank = replace_blank
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the next call starts a new video."""
        self.latent_frames = 0
        self.blank_frames_replaced = 0
        self._shape: tuple[int, ...] | None = None
        self._states: dict[tuple[int, int], dict[str, torch.Tensor]] = {}  # spatial tile -> conv -> frames
        # Non-causal: raw latents, the last `context` final ones followed by the `_pending` held-back ones.
        self._window: torch.Tensor | None = None
        self._pending = 0
        self._flushed = False
        self._last_good: torch.Tensor | None = None  # (H, W, 3) uint8, for replace_blank

    @property
    def held_back(self) -> int:
        """Latent frames consumed whose pixel frames have not been returned yet (at most ``lookahead``)."""
        return self._pending

    def state_numel(self) -> int:
        """Elements carried between calls (conv frames, or the non-causal latent window)."""
        carried = sum(t.numel() for tile in self._states.values() for t in tile.values())
        return carried + (0 if self._window is None else self._window.numel())

    @torch.no_grad()
    def decode_chunk(self, latents_BCThw: torch.Tensor) -> torch.Tensor:
        """Decode the next latent frames; returns the pixel frames now final, ``(B, 3, F, 32 h, 32 w)``.

        Latent ``i`` of the video stands for pixel frame 0 if ``i = 0``, else for frames ``8 i - 7 .. 8 i``.
        A call returns the frames of every consumed latent except the last ``lookahead`` ones, which are
        returned by a later call or :meth:`flush`; ``F`` may be 0. With ``lookahead = 0`` (always for a
        causal decoder) ``F = 8 (T - 1) + 1`` on the first call and ``8 T`` after. Computed and returned in
        the VAE's dtype, on its device, nominally in [-1, 1] and not clamped (like :meth:`VideoVAE.decode`).
        On an exception the carried state is left as it was before the call.
        """
        if self._flushed:
            raise InputError("decode_chunk: the video was flushed; call reset() to start a new one")
        latents_BCThw = self._check_chunk(latents_BCThw)
        z_BCThw = self.vae.denormalize(latents_BCThw.to(self.vae.device, dtype=self.vae.dtype))
        shape = tuple(latents_BCThw.shape[:2]) + tuple(latents_BCThw.shape[3:])
        if self.exact:
            video_B3FHW, states = self._decode_causal(z_BCThw, self.latent_frames == 0)
            self._states = states
        else:
            window = z_BCThw if self._window is None else torch.cat([self._window, z_BCThw], dim=2)
            pending = self._pending + z_BCThw.shape[2]
            final = max(0, pending - self.lookahead)
            video_B3FHW = self._decode_window(window, pending, final, shape)
            pending -= final
            keep = min(window.shape[2], self.context + pending)
            self._window, self._pending = window[:, :, window.shape[2] - keep :].clone(), pending
        self.latent_frames += z_BCThw.shape[2]
        self._shape = shape
        return video_B3FHW

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """End the video: the pixel frames of the ``held_back`` latents, ``(B, 3, F, 32 h, 32 w)``.

        They are decoded with the decoder's own right edge, as in a one-shot decode (with the default
        ``context``: exactly its last frames). ``F = 0`` for a causal decoder or ``lookahead = 0``. Afterwards
        :meth:`decode_chunk` refuses until :meth:`reset`; flushing again returns no frames. On an exception
        the state is left as it was before the call.
        """
        if self._shape is None:
            raise InputError("flush: no latents were decoded")
        video_B3FHW = self._decode_window(self._window, self._pending, self._pending, self._shape)
        self._window, self._pending, self._flushed = None, 0, True
        return video_B3FHW

    def decode_chunk_uint8(self, latents_1CThw: torch.Tensor) -> np.ndarray:
        """:meth:`decode_chunk` of one video as ``(F, H, W, 3)`` uint8 RGB frames (:func:`to_uint8`).

        The conversion runs on the VAE's device; only uint8 is copied to the host.
        """
        if latents_1CThw.ndim != 5 or latents_1CThw.shape[0] != 1:
            raise InputError(f"latents: expected shape (1, C, T, h, w), got {tuple(latents_1CThw.shape)}")
        return self._to_uint8(self.decode_chunk(latents_1CThw))

    def flush_uint8(self) -> np.ndarray:
        """:meth:`flush` of one video as ``(F, H, W, 3)`` uint8 RGB frames, as :meth:`decode_chunk_uint8`."""
        if self._shape is not None and self._shape[0] != 1:
            raise InputError(f"flush_uint8: the video batch has {self._shape[0]} videos, expected 1")
        return self._to_uint8(self.flush())

    def _to_uint8(self, video_13FHW: torch.Tensor) -> np.ndarray:
        frames_FHW3 = to_uint8(video_13FHW[0]).permute(1, 2, 3, 0)
        if self.replace_blank and frames_FHW3.shape[0]:
            frames_FHW3, self._last_good, replaced = replace_blank_frames(frames_FHW3, self._last_good)
            self.blank_frames_replaced += replaced
        return frames_FHW3.cpu().numpy()

    def _check_chunk(self, latents_BCThw: torch.Tensor) -> torch.Tensor:
        if not isinstance(latents_BCThw, torch.Tensor) or latents_BCThw.ndim != 5:
            raise InputError(f"latents: expected a (B, C, T, h, w) tensor, got {_describe(latents_BCThw)}")
        batch, channels, frames, height, width = latents_BCThw.shape
        if frames < 1:
            raise InputError("latents: a chunk needs at least one latent frame")
        expected = self.vae.vae.config.latent_channels
        if channels != expected:
            raise InputError(f"latents: the VAE has {expected} channels, got {channels}")
        shape = (batch, channels, height, width)
        if self._shape is not None and shape != self._shape:
            raise InputError(
                f"latents: chunk (B, C, h, w) {shape} differs from the first chunk's {self._shape}"
            )
        return latents_BCThw

    # Causal decoder: carried conv state --------------------------------------------------------------------

    def _decode_causal(
        self, z_BCThw: torch.Tensor, first: bool
    ) -> tuple[torch.Tensor, dict[tuple[int, int], dict[str, torch.Tensor]]]:
        vae = self.vae.vae
        new_states: dict[tuple[int, int], dict[str, torch.Tensor]] = {}

        def decode_tile(tile: tuple[int, int], z_tile: torch.Tensor) -> torch.Tensor:
            new_states[tile] = {}
            with self._carrying(self._states.get(tile, {}), new_states[tile], first):
                return vae.decoder(z_tile, None, causal=True)

        return self._tiled(z_BCThw, decode_tile), new_states

    @contextlib.contextmanager
    def _carrying(
        self, old: dict[str, torch.Tensor], new: dict[str, torch.Tensor], first: bool
    ) -> Iterator[None]:
        """Give the decoder's causal convs and upsamplers streaming forwards for one call, then restore."""
        saved: list[tuple[nn.Module, object]] = []
        try:
            for name, module in self.vae.vae.decoder.named_modules():
                if isinstance(module, CausalConv3d):
                    forward = functools.partial(_conv_forward, module, old.get(name), new, name)
                elif isinstance(module, Upsampler3d):
                    forward = functools.partial(_upsample_forward, module, first)
                else:
                    continue
                saved.append((module, module.__dict__.get("forward", _MISSING)))
                module.forward = forward
            yield
        finally:
            for module, previous in reversed(saved):
                if previous is _MISSING:
                    del module.forward
                else:
                    module.forward = previous

    def _tiled(
        self, z_BCThw: torch.Tensor, decode_tile: Callable[[tuple[int, int], torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Decode whole frames, or spatial tiles cross-faded exactly as diffusers' ``tiled_decode`` does."""
        vae = self.vae.vae
        ratio = vae.spatial_compression_ratio
        height, width = z_BCThw.shape[-2:]
        min_h, min_w = vae.tile_sample_min_height // ratio, vae.tile_sample_min_width // ratio
        if not (self.spatial_tiling and (height > min_h or width > min_w)):
            return decode_tile((0, 0), z_BCThw)
        stride_h, stride_w = vae.tile_sample_stride_height // ratio, vae.tile_sample_stride_width // ratio
        blend_h = vae.tile_sample_min_height - vae.tile_sample_stride_height
        blend_w = vae.tile_sample_min_width - vae.tile_sample_stride_width
        rows = [
            [
                decode_tile((i, j), z_BCThw[..., i : i + min_h, j : j + min_w])
                for j in range(0, width, stride_w)
            ]
            for i in range(0, height, stride_h)
        ]
        out_rows = []
        for i, row in enumerate(rows):
            out_row = []
            for j, tile in enumerate(row):
                if i > 0:
                    tile = vae.blend_v(rows[i - 1][j], tile, blend_h)
                if j > 0:
                    tile = vae.blend_h(row[j - 1], tile, blend_w)
                out_row.append(tile[..., : vae.tile_sample_stride_height, : vae.tile_sample_stride_width])
            out_rows.append(torch.cat(out_row, dim=4))
        return torch.cat(out_rows, dim=3)[..., : height * ratio, : width * ratio]

    # Non-causal decoder: re-decoded left context, held-back right context ----------------------------------

    def _decode_window(
        self, window_BCThw: torch.Tensor | None, pending: int, count: int, shape: tuple[int, ...]
    ) -> torch.Tensor:
        """Decode the window; return the frames of the ``count`` latents from the ``pending``-th last on.

        The window's first latent decodes to one pixel frame, every other one to ``temporal ratio`` frames,
        whether or not the window starts at the video's first latent.
        """
        vae = self.vae.vae
        if window_BCThw is None or count == 0:
            batch, _, height, width = shape
            size = (height * vae.spatial_compression_ratio, width * vae.spatial_compression_ratio)
            out_channels = vae.config.out_channels
            return torch.empty(batch, out_channels, 0, *size, device=self.vae.device, dtype=self.vae.dtype)
        start = window_BCThw.shape[2] - pending
        video_B3FHW = self._tiled(window_BCThw, lambda _tile, z_tile: vae.decoder(z_tile, None))

        def first_frame(latent: int) -> int:
            return 0 if latent == 0 else vae.temporal_compression_ratio * (latent - 1) + 1

        return video_B3FHW[:, :, first_frame(start) : first_frame(start + count)]


def _conv_forward(
    module: nn.Module,
    previous: torch.Tensor | None,
    new_state: dict[str, torch.Tensor],
    name: str,
    hidden_states: torch.Tensor,
    causal: bool = True,
) -> torch.Tensor:
    """``LTX2VideoCausalConv3d.forward`` with the left pad taken from the previous chunk when there is one."""
    if not causal:
        raise RuntimeError("streaming decode: a causal conv was called with causal=False")
    if name in new_state:
        raise RuntimeError(f"streaming decode: {name} ran twice in one decoder call")
    pad = module.kernel_size[0] - 1
    if previous is None:  # first chunk: copies of the first frame, as diffusers pads
        previous = hidden_states[:, :, :1].repeat(1, 1, pad, 1, 1)
    padded = torch.cat([previous, hidden_states], dim=2)
    new_state[name] = padded[:, :, padded.shape[2] - pad :].clone()  # a copy: do not keep `padded` alive
    return module.conv(padded)


def _upsample_forward(
    module: nn.Module, first: bool, hidden_states: torch.Tensor, causal: bool = True
) -> torch.Tensor:
    """``LTX2VideoUpsampler3d.forward`` that drops the leading ``stride_t - 1`` frames on the first chunk
    only (diffusers drops them on every call: they precede the video's first frame)."""
    batch, _, frames, height, width = hidden_states.shape
    st, sh, sw = module.stride
    drop = st - 1 if first else 0

    def depth_to_space(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(batch, -1, st, sh, sw, frames, height, width)
        return x.permute(0, 1, 5, 2, 6, 3, 7, 4).flatten(6, 7).flatten(4, 5).flatten(2, 3)

    out = depth_to_space(module.conv(hidden_states, causal=causal))[:, :, drop:]
    if module.residual:
        residual = depth_to_space(hidden_states).repeat(1, st * sh * sw // module.upscale_factor, 1, 1, 1)
        out = out + residual[:, :, drop:]
    return out


def _check_decoder(decoder: nn.Module) -> None:
    """Refuse decoders whose frames are coupled by anything this module does not carry across chunks."""
    for name, module in decoder.named_modules():
        if isinstance(module, CausalConv3d):
            conv = module.conv
            if conv.stride[0] != 1 or conv.dilation[0] != 1:
                raise InputError(
                    f"vae decoder: {name} has a temporal stride/dilation; streaming cannot carry it"
                )
        elif isinstance(module, nn.Conv3d) and module.kernel_size[0] > 1:
            parent = name.rpartition(".")[0]
            if not isinstance(decoder.get_submodule(parent) if parent else decoder, CausalConv3d):
                raise InputError(f"vae decoder: {name} mixes frames outside a causal conv; cannot stream it")
        elif getattr(module, "per_channel_scale1", None) is not None:
            raise InputError(
                "vae decoder: decode-time noise injection (decoder_inject_noise) is not supported"
            )
    if getattr(decoder, "time_embedder", None) is not None:
        raise InputError("vae decoder: timestep conditioning is not supported (VideoVAE decodes without it)")


def replace_blank_frames(
    frames_FHW3: torch.Tensor, last_good_HW3: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Replace every uniform frame (all pixels one colour) by the last non-uniform frame before it.

    ``last_good_HW3`` is the last good frame of the previous call (``None`` at the start: leading blank
    frames then stay). Returns ``(frames, last good frame for the next call, number replaced)``; the input
    is not modified.
    """
    flat = frames_FHW3.reshape(frames_FHW3.shape[0], -1, frames_FHW3.shape[-1])
    blank = (flat.amax(dim=1) == flat.amin(dim=1)).all(dim=1)
    if not bool(blank.any()):
        return frames_FHW3, frames_FHW3[-1].clone(), 0  # a copy: do not keep the chunk alive
    out, replaced = frames_FHW3.clone(), 0
    for index in range(out.shape[0]):
        if not blank[index]:
            last_good_HW3 = out[index]
        elif last_good_HW3 is not None:
            out[index] = last_good_HW3
            replaced += 1
    return out, (None if last_good_HW3 is None else last_good_HW3.clone()), replaced


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else type(value).__name__
