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

CHUNK_STRATEGIES = ("first_plus_one", "uniform", "first_frame")


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
        chunk_size: ``None``: bidirectional (the release). An integer: the chunk-causal variant (the official
            ``SANA-WM_chunk_causal`` teacher and the streaming student, 3): latent frames form chunks that see
            themselves and earlier chunks only (``sana_wm.models.causal``); a whole-clip forward splits them
            with ``chunk_strategy``.
        chunk_strategy: chunk layout of a whole-clip forward (``sana_wm.samplers.chunked.chunk_starts``):
            ``"first_plus_one"`` (official ``first_chunk_plus_one``), ``"uniform"`` or ``"first_frame"``.
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
    chunk_size: int | None = None
    chunk_strategy: str = "first_plus_one"

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
        if self.chunk_size is not None and (
            not isinstance(self.chunk_size, int) or isinstance(self.chunk_size, bool) or self.chunk_size < 1
        ):
            raise InputError(
                f"config.chunk_size: expected a positive integer or null, got {self.chunk_size!r}"
            )
        if self.chunk_strategy not in CHUNK_STRATEGIES:
            raise InputError(
                f"config.chunk_strategy: {self.chunk_strategy!r} is not one of {', '.join(CHUNK_STRATEGIES)}"
            )

    @property
    def chunk_causal(self) -> bool:
        """Whether this is the chunk-causal variant (teacher or streaming student)."""
        return self.chunk_size is not None

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
# diffusers ``SanaWMTransformer3DModel`` config keys -> our fields (read and written through this one table).
_DIFFUSERS_NAMES = {
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
# Our chunking in a diffusers config.json, as private keys (diffusers skips ``_`` keys when it builds).
_DIFFUSERS_CHUNK_KEYS = {"_sana_wm_chunk_size": "chunk_size", "_sana_wm_chunk_strategy": "chunk_strategy"}
# The settings diffusers' class offers that sana-wm implements with one value only (written as these).
_DIFFUSERS_FIXED: dict[str, Any] = {
    "patch_size": [1, 1, 1],
    "ffn_type": "GLUMBConvTemp",
    "k_conv_only": True,
    "pos_embed_type": "wan_rope",
    "qk_norm": True,
    "cross_norm": True,
    "y_norm": True,
    "cam_attn_compress": 1,
    "use_chunk_plucker_post_attn": True,
    "mlp_acts": ["silu", "silu", None],
    "use_pe": True,
    "learn_sigma": False,
    "pred_sigma": False,
}


def config_from_diffusers(diffusers_config: dict[str, Any]) -> SanaWMConfig:
    """Map a diffusers ``SanaWMTransformer3DModel`` config (its ``config.json``) to :class:`SanaWMConfig`.

    Keys starting with ``_`` (``_class_name``, ``_diffusers_version``, ...) are metadata and skipped, except
    ``_sana_wm_chunk_size`` / ``_sana_wm_chunk_strategy``, which :func:`config_to_diffusers` writes for a
    chunk-causal model (diffusers 0.42.1 has no chunk-causal mode: its forward's ``chunk_size`` is unused).
    Ignored as irrelevant to the network: ``init_cam_from_base`` (init-time only), ``fp32_attention``
    (unused by diffusers), ``image_size`` (nominal), ``mixed_precision`` (dtype is chosen at load time).
    Settings sana-wm does not implement (patch size other than 1, a non-GLUMBConvTemp FFN, disabled norms)
    raise :class:`InputError`.
    """
    src = "diffusers config"
    cfg = {k: v for k, v in diffusers_config.items() if k not in _DIFFUSERS_IGNORED}
    for key, value in _DIFFUSERS_FIXED.items():
        if key in cfg:
            _require(src, key, cfg.pop(key), (value, tuple(value)) if isinstance(value, list) else (value,))
    chunking = {k: cfg.pop(k) for k in _DIFFUSERS_CHUNK_KEYS if k in cfg}
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    ours: dict[str, Any] = {_DIFFUSERS_NAMES[k]: cfg.pop(k) for k in list(cfg) if k in _DIFFUSERS_NAMES}
    ours.update({_DIFFUSERS_CHUNK_KEYS[k]: v for k, v in chunking.items()})
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
# The streaming student's class has the same network (and keys) as ``SanaMSVideoCamCtrl_1600M_P1_D20``, with
# the cached chunk-causal attention and FFN built in, so its config names no ``camctrl_type``.
OFFICIAL_MODELS: dict[str, tuple[int, int, int]] = {
    "SanaMSVideoCamCtrl_600M_P1_D28": (28, 1152, 16),
    "SanaMSVideoCamCtrl_1600M_P1_D20": (20, 2240, 20),
    "SanaMSVideoCamCtrl_4800M_P1_D60": (60, 2240, 20),
    "SanaMSVideoCamCtrlStreaming_1600M_P1_D20": (20, 2240, 20),
}
_STREAMING_MODELS = ("SanaMSVideoCamCtrlStreaming_1600M_P1_D20",)
_BIDIRECTIONAL_CAMCTRL = (
    "BidirectionalGDNUCPESinglePathLiteLABothTriton",
    "BidirectionalGDNUCPESinglePathLiteLA",
)
_CHUNK_CAUSAL_CAMCTRL = (
    "ChunkCausalGDNUCPESinglePathLiteLABothTriton",
    "ChunkCausalGDNUCPESinglePathLiteLA",
    "CachedChunkCausalGDNUCPESinglePathLiteLA",
)
# By causality: the FFN class and the RoPE name (official spelling "casual_wan_rope": the causal-Wan RoPE,
# the same frequencies at absolute frame positions).
_OFFICIAL_FFN = {False: ("GLUMBConvTemp",), True: ("ChunkGLUMBConvTemp", "CachedGLUMBConvTemp")}
_OFFICIAL_POS_EMBED = {False: ("wan_rope",), True: ("wan_rope", "casual_wan_rope", "causal_wan_rope")}
OFFICIAL_CHUNK_STRATEGIES = {
    "first_chunk_plus_one": "first_plus_one",
    "first_plus_one": "first_plus_one",
    "uniform": "uniform",
    "first_frame": "first_frame",
}
_TEXT_ENCODER_WIDTH = {"gemma-2-2b-it": 2304}
# Official ``model:`` keys -> our fields, beyond the registry name's depth / width / heads.
_OFFICIAL_NAMES = {
    "softmax_every_n": "softmax_every_n",
    "linear_head_dim": "head_dim",
    "conv_kernel_size": "short_conv_kernel",
    "t_kernel_size": "temporal_kernel",
    "mlp_ratio": "mlp_ratio",
    "chunk_plucker_channels": "plucker_channels",
}
_OFFICIAL_MODEL_IGNORED = (
    "image_size",
    "aspect_ratio_type",
    "mixed_precision",
    "fp32_attention",
    "multi_scale",
    "attn_type",
    "class_dropout_prob",
    "init_cam_from_base",
    "load_from",
    "resume_from",
    "cross_attn_type",
    "use_autograd_kernel",
)


def config_from_official_yaml(official: dict[str, Any]) -> SanaWMConfig:
    """Read an official SANA-WM ``config.yaml`` (already parsed, e.g. by ``yaml.safe_load``) into our config.

    Three official networks are read, all with the same weights and keys: the bidirectional release, the
    chunk-causal teacher (``SANA-WM_chunk_causal``) and the streaming student
    (``SanaMSVideoCamCtrlStreaming_1600M_P1_D20``, config ``sana_wm_streaming_1600m_720p.yaml``).

    Read from ``model:``: ``model`` (registry name → depth, width, cross-attention heads; must end in
    ``_P1_*``), ``camctrl_type``, ``softmax_every_n``, ``linear_head_dim``, ``conv_kernel_size``,
    ``t_kernel_size``, ``mlp_ratio``, ``chunk_plucker_channels``, ``chunk_plucker_post_attn_blocks``, and
    for a chunk-causal network ``chunk_size`` and ``chunk_split_strategy`` (``first_chunk_plus_one`` or
    ``first_plus_one`` → ``"first_plus_one"``, ``uniform``, ``first_frame``).

    Bidirectional or chunk-causal is decided by ``camctrl_type``: a ``BidirectionalGDNUCPESinglePathLiteLA``
    class (``...BothTriton`` or not) is bidirectional and must not set ``chunk_size``; a
    ``ChunkCausalGDNUCPESinglePathLiteLA`` class (``...BothTriton`` or not, or its streaming
    ``CachedChunkCausal...`` form) is chunk-causal. The streaming model name is always chunk-causal; its
    ``camctrl_type`` may be absent (its class builds the cached attention) or chunk-causal. A chunk-causal
    config must give ``chunk_size`` (no default is assumed; the official configs use 3),
    ``chunk_split_strategy`` and a chunk-causal ``ffn_type`` (``ChunkGLUMBConvTemp`` or
    ``CachedGLUMBConvTemp``); its
    ``pos_embed_type`` may also be the causal-Wan RoPE (``casual_wan_rope``, the official spelling, or
    ``causal_wan_rope``). An explicit ``chunk_index`` list is not supported.

    Checked to have the only value we implement: ``k_conv_only``, ``ffn_type`` (bidirectional:
    ``GLUMBConvTemp``), ``mlp_acts``, ``use_pe``, ``pos_embed_type`` (bidirectional: ``wan_rope``),
    ``qk_norm``, ``cross_norm``, ``cam_attn_compress``, ``use_chunk_plucker_post_attn``, ``pack_latents``,
    ``timestep_norm_scale_factor`` (1.0: timesteps are floored), ``use_delta_actions`` and
    ``use_delta_pose_additive`` (false). Also read: ``vae.vae_latent_dim`` → in channels,
    ``text_encoder.caption_channels`` or ``text_encoder.text_encoder_name`` → caption width,
    ``text_encoder.y_norm`` and ``scheduler.pred_sigma`` (checked).

    Ignored in ``model:`` (do not change the network): ``image_size``, ``aspect_ratio_type``,
    ``mixed_precision``, ``fp32_attention``, ``multi_scale``, ``attn_type`` (superseded by ``camctrl_type``
    or the streaming class), ``class_dropout_prob`` (training), ``chunk_split_strategy`` of a bidirectional
    config, ``init_cam_from_base`` (init only), ``load_from``, ``resume_from``, ``cross_attn_type`` and
    ``use_autograd_kernel`` (kernel choices). Any other ``model:`` key is an error. Other keys of ``vae:``,
    ``text_encoder:``, ``scheduler:`` (e.g. ``vis_sampler``) and all other top-level sections (``train:``,
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
    causal = _official_causality(name, model.pop("camctrl_type", None))
    ours: dict[str, Any] = {"depth": depth, "hidden_size": hidden, "cross_attn_heads": heads}
    ours.update(_official_chunking(model, causal))
    checks = {
        "k_conv_only": (True,),
        "ffn_type": _OFFICIAL_FFN[causal],
        "mlp_acts": (["silu", "silu", None], ("silu", "silu", None)),
        "use_pe": (True,),
        "pos_embed_type": _OFFICIAL_POS_EMBED[causal],
        "qk_norm": (True,),
        "cross_norm": (True,),
        "cam_attn_compress": (1,),
        "use_chunk_plucker_post_attn": (True,),
        "pack_latents": (False,),
        "timestep_norm_scale_factor": (1.0,),
        "use_delta_actions": (False,),
        "use_delta_pose_additive": (False,),
    }
    if causal and "ffn_type" not in model:
        wanted = " or ".join(_OFFICIAL_FFN[True])
        raise InputError(f"{src}.ffn_type: required with chunk_size (sana-wm implements {wanted})")
    for key, allowed in checks.items():
        if key in model:
            _require(src, key, model.pop(key), allowed)
    for key, field in _OFFICIAL_NAMES.items():
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


def _official_causality(name: str, camctrl: Any) -> bool:
    """Whether the official ``model.model`` / ``model.camctrl_type`` pair is chunk-causal (see the reader)."""
    key = "config.yaml model.camctrl_type"
    if name in _STREAMING_MODELS:
        if camctrl is not None and camctrl not in _CHUNK_CAUSAL_CAMCTRL:
            raise InputError(
                f"{key}: {camctrl!r} does not go with the chunk-causal streaming model {name} (leave it "
                f"out or use {' or '.join(repr(c) for c in _CHUNK_CAUSAL_CAMCTRL)})"
            )
        return True
    _require("config.yaml model", "camctrl_type", camctrl, (*_BIDIRECTIONAL_CAMCTRL, *_CHUNK_CAUSAL_CAMCTRL))
    return camctrl in _CHUNK_CAUSAL_CAMCTRL


def _official_chunking(model: dict[str, Any], causal: bool) -> dict[str, Any]:
    """Pop ``chunk_size`` / ``chunk_split_strategy`` / ``chunk_index`` from ``model``; our chunk fields."""
    src = "config.yaml model"
    if model.pop("chunk_index", None) is not None:
        raise InputError(
            f"{src}.chunk_index: an explicit chunk list is not supported; give chunk_size and "
            "chunk_split_strategy instead"
        )
    size = model.pop("chunk_size", None)
    strategy = model.pop("chunk_split_strategy", None)
    if not causal:
        if size is not None:
            raise InputError(
                f"{src}.chunk_size: {size!r} is not supported with a bidirectional camctrl_type "
                f"(chunk-causal ones: {', '.join(_CHUNK_CAUSAL_CAMCTRL)})"
            )
        return {}
    if size is None:
        raise InputError(f"{src}.chunk_size: required for a chunk-causal model (the official configs use 3)")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise InputError(f"{src}.chunk_size: expected a positive integer, got {size!r}")
    if strategy is None:
        raise InputError(
            f"{src}.chunk_split_strategy: required with chunk_size "
            f"(one of {', '.join(OFFICIAL_CHUNK_STRATEGIES)})"
        )
    _require(src, "chunk_split_strategy", strategy, tuple(OFFICIAL_CHUNK_STRATEGIES))
    return {"chunk_size": size, "chunk_strategy": OFFICIAL_CHUNK_STRATEGIES[strategy]}


def config_to_diffusers(cfg: SanaWMConfig) -> dict[str, Any]:
    """``cfg`` as a diffusers ``SanaWMTransformer3DModel`` ``config.json`` (without ``_diffusers_version``);
    :func:`config_from_diffusers` reads it back to ``cfg``. A chunk-causal model also gets the private keys
    ``_sana_wm_chunk_size`` / ``_sana_wm_chunk_strategy``: diffusers skips them (0.42.1 has no chunk-causal
    mode, so it runs such weights bidirectionally) and sana-wm reads them back."""
    ours = cfg.to_dict()
    out: dict[str, Any] = {"_class_name": "SanaWMTransformer3DModel"}
    out.update({key: ours[field] for key, field in _DIFFUSERS_NAMES.items()})
    out.update(_DIFFUSERS_FIXED)
    out["chunk_plucker_post_attn_blocks"] = cfg.plucker_blocks
    if cfg.chunk_causal:
        out.update({key: ours[field] for key, field in _DIFFUSERS_CHUNK_KEYS.items()})
    return out


def official_model_name(cfg: SanaWMConfig) -> str:
    """The official registry name of ``cfg``'s depth, width and cross-attention heads (the streaming
    student's name is never chosen: a chunk-causal model is written as the chunk-causal teacher is). An
    :class:`InputError` when the registry has no such size."""
    size = (cfg.depth, cfg.hidden_size, cfg.cross_attn_heads)
    for name, dims in OFFICIAL_MODELS.items():
        if dims == size and name not in _STREAMING_MODELS:
            return name
    known = ", ".join(
        f"{n} ({d}/{w}/{h})" for n, (d, w, h) in OFFICIAL_MODELS.items() if n not in _STREAMING_MODELS
    )
    raise InputError(
        f"official format: the official registry has no model of depth {cfg.depth}, width {cfg.hidden_size} "
        f"and {cfg.cross_attn_heads} cross-attention heads (it has {known}); use --format diffusers"
    )


def config_to_official_yaml(cfg: SanaWMConfig) -> dict[str, Any]:
    """The ``model`` / ``vae`` / ``text_encoder`` / ``scheduler`` sections of an official ``config.yaml`` for
    ``cfg`` (a bidirectional model as the release's ``sana_wm_1600m_720p.yaml``, a chunk-causal one as the
    chunk-causal teacher's); :func:`config_from_official_yaml` reads them back to ``cfg``. The sampling and
    text settings the official CLI reads (``inference_flow_shift``, ``vis_sampler``, ``model_max_length``)
    are the release's. An :class:`InputError` for a size the official registry does not have
    (:func:`official_model_name`)."""
    causal = cfg.chunk_causal
    model: dict[str, Any] = {
        "model": official_model_name(cfg),
        "image_size": 720,
        "mixed_precision": "bf16",
        "fp32_attention": True,
        "camctrl_type": _CHUNK_CAUSAL_CAMCTRL[0] if causal else _BIDIRECTIONAL_CAMCTRL[0],
        "attn_type": "ChunkCausalGDNTriton" if causal else "BidirectionalGDNTriton",
        "ffn_type": _OFFICIAL_FFN[causal][0],
        "pos_embed_type": "wan_rope",
        "use_pe": True,
        "qk_norm": True,
        "cross_norm": True,
        "k_conv_only": True,
        "mlp_acts": ["silu", "silu", None],
        "cam_attn_compress": 1,
        "use_chunk_plucker_post_attn": True,
        "chunk_plucker_post_attn_blocks": cfg.plucker_blocks,
    }
    ours = cfg.to_dict()
    model.update({key: ours[field] for key, field in _OFFICIAL_NAMES.items()})
    if causal:
        strategy = next(k for k, v in OFFICIAL_CHUNK_STRATEGIES.items() if v == cfg.chunk_strategy)
        model.update({"chunk_size": cfg.chunk_size, "chunk_split_strategy": strategy})
    encoder = next((n for n, width in _TEXT_ENCODER_WIDTH.items() if width == cfg.caption_channels), None)
    text: dict[str, Any] = {"caption_channels": cfg.caption_channels, "y_norm": True}
    if encoder is not None:
        text = {"text_encoder_name": encoder, **text, "y_norm_scale_factor": 0.01, "model_max_length": 300}
    return {
        "model": model,
        "vae": {
            "vae_type": "LTX2VAE_diffusers",
            "vae_latent_dim": cfg.in_channels,
            "vae_stride": [8, 32, 32],
        },
        "text_encoder": text,
        "scheduler": {
            "predict_flow_v": True,
            "noise_schedule": "linear_flow",
            "pred_sigma": False,
            "flow_shift": 9.95,
            "inference_flow_shift": 9.8,
            "vis_sampler": "chunk_flow_euler" if causal else "flow_dpm-solver",
        },
    }
