"""The bundled demo world model: a small SANA-WM we trained on procedural worlds, shipped in the package.

Files in :data:`DEMO_DIR` (``sana_wm/assets/demo/``), written by ``scripts/train_demo_model.py``:

- ``transformer.safetensors``: our :class:`~sana_wm.models.SanaWMTransformer` (fp16 weights, config in the
  metadata): hybrid frame-wise GDN / softmax blocks, camera branch and Plücker injection, a few million
  parameters;
- ``vae/config.json`` + ``vae/diffusion_pytorch_model.safetensors``: a small diffusers
  ``AutoencoderKLLTX2Video`` (8x temporal / 32x spatial, like LTX-2) trained by us, with the per-channel
  ``latents_mean`` / ``latents_std`` of its training latents;
- ``first_frame.png``: frame 0 of a held-out world (never rendered for training);
- ``demo_model.json``: the generation settings the model was trained for (:class:`DemoSettings`), the first
  frame's intrinsics, the training recipe and the measured metrics;
- ``MODEL_CARD.md``: data, recipe, metrics and limits.

Text: the demo model is prompt-free. It is trained and sampled with the null caption of :func:`null_text`
(all-zero features of ``NULL_TEXT_TOKENS`` token(s), mask 1) and no classifier-free guidance; a prompt is
accepted and ignored (:class:`NullTextEncoder` says so once).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from sana_wm.errors import InputError
from sana_wm.inference.request import SamplingSettings

if TYPE_CHECKING:
    from sana_wm.inference.pipeline import Pipeline

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo"
TRANSFORMER_FILE = "transformer.safetensors"
VAE_SUBFOLDER = "vae"
FIRST_FRAME_FILE = "first_frame.png"
METADATA_FILE = "demo_model.json"
MODEL_CARD_FILE = "MODEL_CARD.md"
METADATA_FORMAT = "sana-wm-demo/1"

# A short walk: forward for 1 s, then turning left while walking for 2 s, then right for 2 s (v1 keys:
# j / l yaw). 80 actions give 81 poses = 81 frames at 16 fps.
DEFAULT_ACTION = "w-16,jw-32,lw-32"
DEMO_HFOV_DEG = 70.0
NULL_TEXT_TOKENS = 1
# Intra-op threads for CPU generation. The model's ops are tiny (726 tokens of width 224): a second thread
# helps a little on an idle machine, but when anything else keeps a core busy every op waits for the
# preempted OpenMP thread (several times slower; BENCHMARKS.md).
CPU_THREADS = 1

PROMPT_NOTE = (
    "the demo model is prompt-free (trained with a null text embedding, no guidance): the prompt is ignored"
)
SYNTHETIC_NOTE = (
    "the demo model was trained on synthetic procedural worlds only (flat-shaded ground, boxes, pillars, "
    "spheres, sky); on other images expect blurry, off-domain results"
)


@dataclass(frozen=True)
class DemoSettings:
    """How the demo model generates: what it was trained for, and the defaults of the main command.

    Attributes:
        height, width: frame size in pixels (multiples of 32; 192 x 352 is the 704 x 1280 aspect to 1 %).
        num_frames: frames per video (8k + 1).
        fps: frame rate of the written video.
        steps, cfg_scale, flow_shift, sampler: sampling settings (``cfg_scale`` 1: no guidance).
        action, action_mapping: the default camera path.
        seed: default noise seed.
        intrinsics: ``[fx, fy, cx, cy]`` of ``first_frame.png`` in its pixels (None before training).
    """

    height: int = 192
    width: int = 352
    num_frames: int = 81
    fps: float = 16.0
    steps: int = 30
    cfg_scale: float = 1.0
    flow_shift: float = 3.0
    sampler: str = "ltx_euler"
    action: str = DEFAULT_ACTION
    action_mapping: str = "v1"
    seed: int = 42
    intrinsics: tuple[float, float, float, float] | None = None

    def sampling(self, **overrides: Any) -> SamplingSettings:
        """The stage-1 sampling settings the model was trained for (``overrides`` replace single fields)."""
        values = {
            "num_frames": self.num_frames,
            "steps": self.steps,
            "cfg_scale": self.cfg_scale,
            "flow_shift": self.flow_shift,
            "sampler": self.sampler,
            "seed": self.seed,
            "height": self.height,
            "width": self.width,
        }
        return SamplingSettings(**{**values, **overrides})

    def intrinsics_array(self) -> np.ndarray:
        """The first frame's intrinsics as float32 ``(4,)``; an :class:`InputError` if unknown."""
        if self.intrinsics is None:
            raise InputError(f"demo model: {METADATA_FILE} records no intrinsics for {FIRST_FRAME_FILE}")
        return np.asarray(self.intrinsics, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"demo model: unknown setting(s) {', '.join(unknown)} in {METADATA_FILE}")
        values = dict(data)
        if values.get("intrinsics") is not None:
            values["intrinsics"] = tuple(float(v) for v in values["intrinsics"])
        return cls(**values)


DEMO_SETTINGS = DemoSettings()


def centred_intrinsics(height: int, width: int, hfov_deg: float = DEMO_HFOV_DEG) -> np.ndarray:
    """Square-pixel ``[fx, fy, cx, cy]`` (float32) with ``hfov_deg`` across the width, centred at
    ``(W / 2, H / 2)`` (the procedural clips' convention)."""
    focal = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([focal, focal, width / 2.0, height / 2.0], dtype=np.float32)


def null_text(
    caption_channels: int,
    batch: int = 1,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The demo model's only caption, used by training and inference alike.

    Returns:
        text_BLD: zeros ``(batch, NULL_TEXT_TOKENS, caption_channels)``.
        mask_BL: int64 ones ``(batch, NULL_TEXT_TOKENS)`` (every token is real, so cross-attention is
            defined; its output is then a learned constant per block).
    """
    text = torch.zeros(batch, NULL_TEXT_TOKENS, caption_channels, device=device, dtype=dtype)
    mask = torch.ones(batch, NULL_TEXT_TOKENS, device=device, dtype=torch.int64)
    return text, mask


class NullTextEncoder:
    """Stands in for :class:`sana_wm.text_encoder.TextEncoder` in the demo pipeline: every prompt encodes to
    :func:`null_text`. A non-empty prompt is ignored with one warning (:data:`PROMPT_NOTE`)."""

    def __init__(self, caption_channels: int) -> None:
        self.caption_channels = caption_channels
        self.model = torch.nn.Module()  # nothing to move between devices
        self._warned = False

    def encode(
        self, prompts: Sequence[str], *, use_chi_prompt: bool = True, max_length: int = NULL_TEXT_TOKENS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(text_BLD, mask_BL)`` of :func:`null_text` for ``len(prompts)`` prompts (arguments ignored)."""
        if isinstance(prompts, str) or len(prompts) == 0:
            raise InputError("prompt: expected a non-empty list of strings")
        if any(p.strip() for p in prompts) and not self._warned:
            log.warning(PROMPT_NOTE)
            self._warned = True
        return null_text(self.caption_channels, len(prompts))

    def encode_for_cfg(
        self, prompt: str, negative_prompt: str = "", *, max_length: int = NULL_TEXT_TOKENS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[negative, positive]``: both null (guidance with this model changes nothing but the cost)."""
        return self.encode([negative_prompt, prompt])


def demo_available(directory: str | os.PathLike[str] = DEMO_DIR) -> bool:
    """Whether ``directory`` holds a complete demo model (weights, VAE, first frame, settings)."""
    folder = Path(directory)
    needed = [
        TRANSFORMER_FILE,
        f"{VAE_SUBFOLDER}/config.json",
        f"{VAE_SUBFOLDER}/diffusion_pytorch_model.safetensors",
        FIRST_FRAME_FILE,
        METADATA_FILE,
    ]
    return all((folder / name).is_file() for name in needed)


def _require(directory: str | os.PathLike[str]) -> Path:
    folder = Path(directory)
    if not demo_available(folder):
        raise InputError(
            f"demo model: {folder} does not hold the trained demo model (train it with "
            "scripts/train_demo_model.py and copy its output there)"
        )
    return folder


def read_metadata(directory: str | os.PathLike[str] = DEMO_DIR) -> dict[str, Any]:
    """The whole ``demo_model.json`` (settings, recipe, data, metrics)."""
    path = _require(directory) / METADATA_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        reason = " ".join(str(err).split())[:120]
        raise InputError(f"demo model: {path} is not valid JSON ({reason})") from None
    if data.get("format") != METADATA_FORMAT:
        raise InputError(f"demo model: {path} is not a {METADATA_FORMAT} file")
    return data


def read_demo_settings(directory: str | os.PathLike[str] = DEMO_DIR) -> DemoSettings:
    """The :class:`DemoSettings` recorded with the model in ``directory``."""
    return DemoSettings.from_dict(read_metadata(directory)["settings"])


def demo_first_frame(directory: str | os.PathLike[str] = DEMO_DIR) -> Image.Image:
    """Frame 0 of the held-out world, RGB, ``width`` x ``height`` of the settings."""
    with Image.open(_require(directory) / FIRST_FRAME_FILE) as image:
        return image.convert("RGB")


def load_demo_pipeline(
    device: str | torch.device | None = "cpu",
    *,
    directory: str | os.PathLike[str] = DEMO_DIR,
    dtype: torch.dtype = torch.float32,
    backend: str | None = None,
    cpu_threads: int | None = CPU_THREADS,
) -> Pipeline:
    """Build the stage-1 :class:`~.pipeline.Pipeline` from the demo files: our transformer, the
    small LTX-2-class VAE and :class:`NullTextEncoder`.

    ``backend`` defaults to ``"reference"`` on the CPU (the per-frame GDN loop: on a 6 x 11 latent grid it
    does fewer operations than the log-depth scan) and ``"torch"`` elsewhere; both compute the same numbers.
    On the CPU, ``cpu_threads`` (default :data:`CPU_THREADS`) is applied with ``torch.set_num_threads``, a
    process-wide setting; None leaves it alone.
    """
    folder = _require(directory)
    from sana_wm.inference.pipeline import Pipeline
    from sana_wm.models import load_transformer
    from sana_wm.utils.device import resolve_device
    from sana_wm.vae import VideoVAE

    device = resolve_device(device)
    if device.type == "cpu" and cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    transformer = load_transformer(folder / TRANSFORMER_FILE, device=device, dtype=dtype)
    vae = VideoVAE.from_pretrained(
        folder, dtype=dtype, device=device, local_files_only=True, subfolder=VAE_SUBFOLDER
    )
    text_encoder = NullTextEncoder(transformer.config.caption_channels)
    chosen = backend or ("reference" if device.type == "cpu" else "torch")
    return Pipeline(
        transformer,
        text_encoder,
        vae,
        device=device,
        backend=chosen,  # type: ignore[arg-type]
    )
