"""Typed, validated settings of ``sana-wm bench`` (both modes); every problem is one :class:`InputError` line.

Sizes are pixel sizes as a user names them (704×1280, 161 frames); the model sees latents of 1/32 the
height and width and ``(frames − 1) // 8 + 1`` latent frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from sana_wm.errors import InputError
from sana_wm.inference.request import OFFLOAD_MODES
from sana_wm.latent_shape import latent_frames
from sana_wm.ops import check_backend
from sana_wm.utils.device import resolve_device, resolve_dtype

Mode = Literal["transformer", "pipeline", "stream"]
MODES: tuple[str, ...] = ("transformer", "pipeline", "stream")
# The stream benchmark's variants, in the order they run (sana_wm.bench.stream says what each is).
STREAM_VARIANTS = ("stage1_eager", "stage1", "decode", "refiner", "refiner_fp8")
SPATIAL_STRIDE = 32

DEFAULT_FRAMES = {"transformer": (161, 321, 961), "pipeline": (161,), "stream": (961,)}
TINY_FRAMES = {"transformer": (9, 17), "pipeline": (17,), "stream": (49,)}
FULL_SIZE = (704, 1280)
TINY_SIZE = (128, 192)
FULL_MATMUL = 8192
_PLAIN = (int, float, str, bool, type(None))
TINY_MATMUL = 256


def parse_frames(text: str) -> tuple[int, ...]:
    """``"161,321,961"`` → ``(161, 321, 961)``; anything but whole numbers >= 1 is an :class:`InputError`."""
    items = [item.strip() for item in str(text).split(",")]
    frames = []
    for item in items:
        if not item.isdigit() or int(item) < 1:
            raise InputError(f"--frames: expected whole numbers >= 1 separated by commas, got {item!r}")
        frames.append(int(item))
    return tuple(frames)


@dataclass(frozen=True, kw_only=True)
class BenchSettings:
    """Everything one ``sana-wm bench`` run needs (defaults filled in by :func:`bench_settings`).

    Attributes:
        mode: ``"transformer"`` (one forward = one step, ours against the peer) or ``"pipeline"`` (a whole
            generation with random full-size components, per-stage time and memory) or ``"stream"`` (a
            streamed generation chunk by chunk: first-chunk latency, steady state, memory per chunk).
        frames: pixel frame counts, one measurement each.
        tiny: the ``tiny`` preset and tiny pipeline components (CPU smoke runs).
        device, dtype: where and in what precision the models run.
        batch: samples per model call (2 = classifier-free guidance).
        height, width: pixel size (multiples of 32).
        text_len: text tokens per sample (transformer mode).
        warmup, repeats: untimed calls, then timed calls per length; a step's time is the median.
        backend: our ops backend (``sana_wm.ops``).
        offload: ``"none"`` or ``"group"`` (our transformer's blocks streamed from the CPU); the pipeline also
            takes ``"model"``.
        fp32_reference: also run our model in fp32 at the smallest length and compare both bf16 outputs to it.
        breakdown: per-module CUDA-event timing of our model (transformer mode).
        peer: run diffusers' ``SanaWMTransformer3DModel`` on the same weights and inputs.
        steps: sampling steps per generation (pipeline mode).
        matmul_size: side of the square matmul that measures the card's rate (for MFU).
        seed: weights and inputs.
        variants: stream mode: the variants to run (default all, :data:`STREAM_VARIANTS`).
        extra_forward_kwargs: further keyword arguments of our forward (model knobs), passed through as given.
    """

    mode: Mode = "transformer"
    frames: tuple[int, ...]
    tiny: bool = False
    device: torch.device
    dtype: torch.dtype
    batch: int = 2
    height: int
    width: int
    text_len: int = 300
    warmup: int = 1
    repeats: int = 2
    backend: str = "torch"
    offload: str = "none"
    fp32_reference: bool = False
    breakdown: bool = False
    peer: bool = True
    steps: int = 4
    matmul_size: int
    seed: int = 0
    variants: tuple[str, ...] | None = None
    extra_forward_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"--mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if not self.frames:
            raise InputError("--frames: no frame count given")
        for frames in self.frames:
            _check_int("frames", frames, minimum=1)
        repeated = sorted({f for f in self.frames if self.frames.count(f) > 1})
        if repeated:
            raise InputError(f"--frames: {', '.join(map(str, repeated))} given more than once")
        for name in ("batch", "text_len", "repeats", "steps", "matmul_size"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("warmup", self.warmup, minimum=0)
        for name in ("height", "width"):
            value = getattr(self, name)
            _check_int(name, value, minimum=SPATIAL_STRIDE)
            if value % SPATIAL_STRIDE:
                raise InputError(f"--{name}: must be a multiple of {SPATIAL_STRIDE}, got {value}")
        try:
            check_backend(self.backend)
        except InputError as err:
            raise InputError(f"--{err}") from None
        if self.variants is not None:
            unknown = [v for v in self.variants if v not in STREAM_VARIANTS]
            if self.mode != "stream" or unknown or not self.variants:
                raise InputError(
                    f"--variants: stream mode only, a comma-separated subset of {', '.join(STREAM_VARIANTS)}"
                )
        allowed = {"pipeline": OFFLOAD_MODES, "transformer": ("none", "group"), "stream": ("none",)}[
            self.mode
        ]
        if self.offload not in allowed:
            raise InputError(
                f"--offload: {self.offload!r} is not one of {', '.join(allowed)} in {self.mode} mode"
            )

    @property
    def latent_grid(self) -> tuple[int, int]:
        return self.height // SPATIAL_STRIDE, self.width // SPATIAL_STRIDE

    @property
    def forward_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of our transformer's forward besides the inputs."""
        return {"backend": self.backend, **self.extra_forward_kwargs}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (device and dtype as strings, values of extra kwargs as ``repr`` if needed)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, torch.device):
                value = str(value)
            elif isinstance(value, torch.dtype):
                value = str(value).removeprefix("torch.")
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = {k: v if isinstance(v, _PLAIN) else repr(v) for k, v in value.items()}
            out[name] = value
        out["latent_grid"] = list(self.latent_grid)
        out["latent_frames"] = [latent_frames(f) for f in self.frames]
        return out


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        flag = "--" + name.replace("_", "-")
        raise InputError(f"{flag}: must be a whole number >= {minimum}, got {value!r}")


def bench_settings(
    *,
    mode: str = "transformer",
    frames: str | tuple[int, ...] | None = None,
    tiny: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    height: int | None = None,
    width: int | None = None,
    matmul_size: int | None = None,
    **rest: Any,
) -> BenchSettings:
    """:class:`BenchSettings` with the defaults of ``mode`` and ``tiny`` filled in: frames (161, 321, 961;
    pipeline 161; tiny 9, 17 / 17), size 704×1280 (tiny 128×192), matmul side 8192 (tiny 256), CUDA and bf16
    when available (else the CPU and fp32). ``frames`` may be the comma-separated command-line text."""
    if mode not in MODES:
        raise InputError(f"--mode: {mode!r} is not one of {', '.join(MODES)}")
    if frames is None:
        frames = (TINY_FRAMES if tiny else DEFAULT_FRAMES)[mode]
    elif isinstance(frames, str):
        frames = parse_frames(frames)
    resolved = resolve_device(device)
    default_height, default_width = TINY_SIZE if tiny else FULL_SIZE
    return BenchSettings(
        mode=mode,  # type: ignore[arg-type]
        frames=tuple(frames),
        tiny=tiny,
        device=resolved,
        dtype=resolve_dtype(dtype, resolved),
        height=default_height if height is None else height,
        width=default_width if width is None else width,
        matmul_size=(TINY_MATMUL if tiny else FULL_MATMUL) if matmul_size is None else matmul_size,
        **rest,
    )
