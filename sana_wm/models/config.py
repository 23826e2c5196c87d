"""Typed configuration of the SANA-WM stage-1 transformer, and readers for the official and diffusers configs.

The defaults are the official release (``SanaMSVideoCamCtrl_1600M_P1_D20``, Hugging Face
``Efficient-Large-Model/SANA-WM_bidirectional``, ``dit/sana_wm_1600m_720p.safetensors``). Only architecture
lives here; runtime choices (backend, dtype, gradient checkpointing) are arguments or attributes of the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sana_wm.errors import InputError


@dataclass(kw_only=True, frozen=True)
class SanaWMConfig:
    """Architecture of the SANA-WM transformer.

    Attributes:
        in_channels: latent channels of the VAE (LTX-2: 128); also the output (velocity) channels.
        hidden_size: model width.
        depth: number of blocks.
        head_dim: self-attention head dim of both branches (heads = hidden_size / head_dim).
        cross_attn_heads: heads of the text cross-attention.
        caption_channels: width of the text-encoder features (Gemma-2-2B: 2304).
        mlp_ratio: FFN hidden width = int(hidden_size · mlp_ratio) (the GLU doubles it internally).
        softmax_every_n: block ``i`` uses softmax attention iff ``(i + 1) % softmax_every_n == 0``; 0 = none.
        short_conv_kernel: taps of the causal kernel behind the bidirectional short conv on K (GDN blocks).
        temporal_kernel: taps (odd) of the dense temporal convolution inside the FFN.
        plucker_channels: channels of the chunked Plücker map (8 pixel frames × 6).
        plucker_blocks: blocks ``i < plucker_blocks`` add the projected Plücker embedding after
            self-attention.
    """

    in_channels: int = 128
    hidden_size: int = 2240
    depth: int = 20
    head_dim: int = 112
    cross_attn_heads: int = 20
    caption_channels: int = 2304
    mlp_ratio: float = 3.0
    softmax_every_n: int = 4
    short_conv_kernel: int = 4
    temporal_kernel: int = 3
    plucker_channels: int = 48
    plucker_blocks: int = 20

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                raise InputError(f"config.{f.name}: expected an integer, got {value!r}")
            if f.type == "float":
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise InputError(f"config.{f.name}: expected a number, got {value!r}")
                object.__setattr__(self, f.name, float(value))
        positive = ("in_channels", "hidden_size", "depth", "head_dim", "cross_attn_heads", "caption_channels")
        for name in (*positive, "short_conv_kernel", "temporal_kernel", "plucker_channels"):
            if getattr(self, name) < 1:
                raise InputError(f"config.{name}: must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.head_dim:
            raise InputError(
                f"config.head_dim: {self.head_dim} does not divide hidden_size {self.hidden_size}"
            )
        if self.head_dim % 8:
            raise InputError(
                f"config.head_dim: must be a multiple of 8 (UCPE groups of 4), got {self.head_dim}"
            )
        if self.hidden_size % self.cross_attn_heads:
            raise InputError(
                f"config.cross_attn_heads: {self.cross_attn_heads} does not divide hidden_size "
                f"{self.hidden_size}"
            )
        if self.temporal_kernel % 2 == 0:
            raise InputError(f"config.temporal_kernel: must be odd, got {self.temporal_kernel}")
        if self.softmax_every_n < 0:
            raise InputError(f"config.softmax_every_n: must be >= 0, got {self.softmax_every_n}")
        if not 0 <= self.plucker_blocks <= self.depth:
            raise InputError(
                f"config.plucker_blocks: must be in [0, depth={self.depth}], got {self.plucker_blocks}"
            )
        if self.mlp_ratio <= 0:
            raise InputError(f"config.mlp_ratio: must be > 0, got {self.mlp_ratio}")

    @property
    def num_heads(self) -> int:
        """Self-attention heads of each branch."""
        return self.hidden_size // self.head_dim

    @property
    def ffn_hidden(self) -> int:
        """FFN hidden width (before the GLU doubling)."""
        return int(self.hidden_size * self.mlp_ratio)

    def is_softmax_block(self, index: int) -> bool:
        """Whether block ``index`` uses softmax attention (else frame-wise GDN)."""
        return self.softmax_every_n > 0 and (index + 1) % self.softmax_every_n == 0

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of all fields (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SanaWMConfig:
        """Build from a ``dict``; unknown keys are an :class:`InputError` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"config: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**data)


def _require(source: str, key: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        wanted = " or ".join(repr(a) for a in allowed)
        raise InputError(f"{source}.{key}: {value!r} is not supported (sana-wm implements {wanted})")


_DIFFUSERS_IGNORED = ("init_cam_from_base", "fp32_attention", "image_size", "mixed_precision")


def config_from_diffusers(diffusers_config: dict[str, Any]) -> SanaWMConfig:
    """Map a diffusers ``SanaWMTransformer3DModel`` config (its ``config.json``) to :class:`SanaWMConfig`.

    Keys starting with ``_`` (``_class_name``, ``_diffusers_version``, ...) are metadata and skipped. Ignored
    as irrelevant to the network: ``init_cam_from_base`` (init-time only), ``fp32_attention`` (unused by
    diffusers), ``image_size`` (nominal), ``mixed_precision`` (dtype is chosen at load time). Settings sana-wm
    does not implement (patch size other than 1, a non-GLUMBConvTemp FFN, disabled norms, ...) raise
    :class:`InputError`.
    """
    src = "diffusers config"
    cfg = {k: v for k, v in diffusers_config.items() if not k.startswith("_") and k not in _DIFFUSERS_IGNORED}
    fixed = {
        "patch_size": ((1, 1, 1), [1, 1, 1]),
        "ffn_type": ("GLUMBConvTemp",),
        "k_conv_only": (True,),
        "pos_embed_type": ("wan_rope",),
        "qk_norm": (True,),
        "cross_norm": (True,),
        "y_norm": (True,),
        "cam_attn_compress": (1,),
        "use_chunk_plucker_post_attn": (True,),
        "mlp_acts": (("silu", "silu", None), ["silu", "silu", None]),
        "use_pe": (True,),
        "learn_sigma": (False,),
        "pred_sigma": (False,),
    }
    for key, allowed in fixed.items():
        if key in cfg:
            _require(src, key, cfg.pop(key), allowed)
    renamed = {
        "in_channels": "in_channels",
        "num_layers": "depth",
        "hidden_size": "hidden_size",
        "num_attention_heads": "cross_attn_heads",
        "softmax_every_n": "softmax_every_n",
        "linear_head_dim": "head_dim",
        "t_kernel_size": "temporal_kernel",
        "conv_kernel_size": "short_conv_kernel",
        "chunk_plucker_channels": "plucker_channels",
        "caption_channels": "caption_channels",
        "mlp_ratio": "mlp_ratio",
    }
    ours: dict[str, Any] = {renamed[k]: cfg.pop(k) for k in list(cfg) if k in renamed}
    depth = ours.get("depth", SanaWMConfig.depth)
    if "chunk_plucker_post_attn_blocks" in cfg:
        n = int(cfg.pop("chunk_plucker_post_attn_blocks"))
        ours["plucker_blocks"] = depth if n < 0 or n > depth else n
    else:
        ours["plucker_blocks"] = min(SanaWMConfig.plucker_blocks, depth)
    if "mlp_ratio" in ours:
        ours["mlp_ratio"] = float(ours["mlp_ratio"])
    if cfg:
        raise InputError(f"{src}: unknown key(s) {', '.join(sorted(cfg))}")
    return SanaWMConfig(**ours)


# Official registry names of the stage-1 camera-control DiT with patch size 1: (depth, hidden, cross heads).
OFFICIAL_MODELS: dict[str, tuple[int, int, int]] = {
    "SanaMSVideoCamCtrl_600M_P1_D28": (28, 1152, 16),
    "SanaMSVideoCamCtrl_1600M_P1_D20": (20, 2240, 20),
    "SanaMSVideoCamCtrl_4800M_P1_D60": (60, 2240, 20),
}
_OFFICIAL_CAMCTRL = ("BidirectionalGDNUCPESinglePathLiteLABothTriton", "BidirectionalGDNUCPESinglePathLiteLA")
_TEXT_ENCODER_WIDTH = {"gemma-2-2b-it": 2304}
_OFFICIAL_MODEL_IGNORED = (
    "image_size",
    "aspect_ratio_type",
    "mixed_precision",
    "fp32_attention",
    "multi_scale",
    "attn_type",
    "class_dropout_prob",
    "chunk_split_strategy",
    "init_cam_from_base",
    "load_from",
    "resume_from",
)


def config_from_official_yaml(official: dict[str, Any]) -> SanaWMConfig:
    """Read an official SANA-WM ``config.yaml`` (already parsed, e.g. by ``yaml.safe_load``) into our config.

    Read from ``model:``: ``model`` (registry name → depth, width, cross-attention heads; must end in
    ``_P1_*``), ``camctrl_type`` (must be the bidirectional GDN+UCPE single-path class), ``softmax_every_n``,
    ``linear_head_dim``, ``conv_kernel_size``, ``t_kernel_size``, ``mlp_ratio``, ``chunk_plucker_channels``,
    ``chunk_plucker_post_attn_blocks``; checked to have the only value we implement: ``k_conv_only``,
    ``ffn_type``, ``mlp_acts``, ``use_pe``, ``pos_embed_type``, ``qk_norm``, ``cross_norm``,
    ``cam_attn_compress``, ``use_chunk_plucker_post_attn``, ``pack_latents``, ``timestep_norm_scale_factor``
    (1.0: timesteps are floored), ``chunk_size``/``chunk_index`` (unset: bidirectional). Also read:
    ``vae.vae_latent_dim`` → in channels, ``text_encoder.caption_channels`` or
    ``text_encoder.text_encoder_name`` → caption width, ``text_encoder.y_norm`` and ``scheduler.pred_sigma``
    (checked).

    Ignored in ``model:`` (do not change the network): ``image_size``, ``aspect_ratio_type``,
    ``mixed_precision``, ``fp32_attention``, ``multi_scale``, ``attn_type`` (superseded by ``camctrl_type``),
    ``class_dropout_prob`` (training), ``chunk_split_strategy`` (only with ``chunk_size``),
    ``init_cam_from_base`` (init only), ``load_from``, ``resume_from``. Any other ``model:`` key is an error.
    Other keys of ``vae:``, ``text_encoder:``, ``scheduler:`` and all other top-level sections (``train:``,
    ``data:``, ...) are ignored: they configure the VAE, text encoder, sampler or training, not this network.
    """
    model = dict(official.get("model") or {})
    if not model:
        raise InputError("config.yaml: has no 'model' section")
    name = model.pop("model", None)
    if name not in OFFICIAL_MODELS:
        raise InputError(f"config.yaml model.model: {name!r} is not one of {', '.join(OFFICIAL_MODELS)}")
    depth, hidden, heads = OFFICIAL_MODELS[name]
    src = "config.yaml model"
    _require(src, "camctrl_type", model.pop("camctrl_type", None), _OFFICIAL_CAMCTRL)
    checks = {
        "k_conv_only": (True,),
        "ffn_type": ("GLUMBConvTemp",),
        "mlp_acts": (["silu", "silu", None], ("silu", "silu", None)),
        "use_pe": (True,),
        "pos_embed_type": ("wan_rope",),
        "qk_norm": (True,),
        "cross_norm": (True,),
        "cam_attn_compress": (1,),
        "use_chunk_plucker_post_attn": (True,),
        "pack_latents": (False,),
        "timestep_norm_scale_factor": (1.0,),
        "chunk_size": (None,),
        "chunk_index": (None,),
    }
    for key, allowed in checks.items():
        if key in model:
            _require(src, key, model.pop(key), allowed)
    ours: dict[str, Any] = {"depth": depth, "hidden_size": hidden, "cross_attn_heads": heads}
    renamed = {
        "softmax_every_n": "softmax_every_n",
        "linear_head_dim": "head_dim",
        "conv_kernel_size": "short_conv_kernel",
        "t_kernel_size": "temporal_kernel",
        "mlp_ratio": "mlp_ratio",
        "chunk_plucker_channels": "plucker_channels",
    }
    for key, field in renamed.items():
        if key in model:
            ours[field] = model.pop(key)
    if "mlp_ratio" in ours:
        ours["mlp_ratio"] = float(ours["mlp_ratio"])
    n = int(model.pop("chunk_plucker_post_attn_blocks", depth))
    ours["plucker_blocks"] = depth if n < 0 or n > depth else n
    for key in _OFFICIAL_MODEL_IGNORED:
        model.pop(key, None)
    if model:
        raise InputError(f"config.yaml model: unknown key(s) {', '.join(sorted(model))}")

    vae = official.get("vae") or {}
    ours["in_channels"] = int(vae.get("vae_latent_dim", SanaWMConfig.in_channels))
    text = official.get("text_encoder") or {}
    if "caption_channels" in text:
        ours["caption_channels"] = int(text["caption_channels"])
    elif "text_encoder_name" in text:
        encoder = text["text_encoder_name"]
        if encoder not in _TEXT_ENCODER_WIDTH:
            raise InputError(f"config.yaml text_encoder.text_encoder_name: unknown encoder {encoder!r}")
        ours["caption_channels"] = _TEXT_ENCODER_WIDTH[encoder]
    _require("config.yaml text_encoder", "y_norm", text.get("y_norm", True), (True,))
    _require(
        "config.yaml scheduler",
        "pred_sigma",
        (official.get("scheduler") or {}).get("pred_sigma", False),
        (False,),
    )
    return SanaWMConfig(**ours)
