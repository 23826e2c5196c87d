"""LoRA fine-tuning with peft: the run config's ``lora`` section and what ``build_model`` does with it.

With ``lora.rank > 0`` the model is built as usual on ``meta``, peft's ``inject_adapter_in_model`` replaces
every targeted ``nn.Linear`` by a LoRA layer (state-dict names gain ``.base_layer.`` and
``.lora_A.default.`` / ``.lora_B.default.``), and only the adapter weights require gradients; then the usual
activation checkpointing, FSDP2 and ``to_empty`` follow, so adapters are sharded with their block. Base
weights come from ``init_from`` (or the random init); adapters start as peft's: ``A`` Kaiming-uniform
(drawn under the run seed through full-size CPU tensors, the same on any world size), ``B`` zero, so the
step-0 model is the base model exactly. Checkpoints hold base and adapters (DCP, exact resume as without
LoRA); ``sana-wm train export --weights lora`` writes the adapters alone (:mod:`sana_wm.models.lora`).

Targets are ``fnmatch`` patterns over module names. Only modules called as ``nn.Linear`` take part: the
FFN (``GLUMBConvTemp``) reads its conv weights directly with ``F.linear``/``F.conv2d``, so a LoRA layer
around ``blocks.*.mlp.*`` would never run; it is not offered.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import torch
from torch import nn

from sana_wm.errors import InputError

DEFAULT_TARGETS = (
    "blocks.*.attn.qkv",
    "blocks.*.attn.proj",
    "blocks.*.attn.output_gate",
    "blocks.*.cross_attn.q_linear",
    "blocks.*.cross_attn.kv_linear",
    "blocks.*.cross_attn.proj",
)
CAMERA_TARGETS = (
    "blocks.*.attn.q_proj_cam",
    "blocks.*.attn.k_proj_cam",
    "blocks.*.attn.v_proj_cam",
    "blocks.*.attn.out_proj_cam",
)
ADAPTER = "default"  # peft's adapter name


@dataclass(kw_only=True, frozen=True)
class LoraConfig:
    """Attributes:
    rank: adapter rank ``r``; 0 (default) trains without LoRA.
    alpha: scaling numerator: the adapter adds ``(alpha / rank) · B A``.
    dropout: dropout on the adapter's input while training (peft's ``lora_dropout``).
    targets: ``fnmatch`` patterns of the ``nn.Linear`` modules to adapt (default: self-attention qkv,
        output projection and output gate, and the cross-attention projections, in every block).
    camera: also adapt the camera branch (``attn.{q,k,v,out}_proj_cam``).
    """

    rank: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_TARGETS
    camera: bool = False

    def __post_init__(self) -> None:
        if self.rank < 0:
            raise InputError(f"lora.rank: must be >= 0, got {self.rank}")
        if self.alpha <= 0:
            raise InputError(f"lora.alpha: must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"lora.dropout: must be in [0, 1), got {self.dropout}")
        if self.enabled and not self.targets:
            raise InputError("lora.targets: empty; name the linear layers to adapt")

    @property
    def enabled(self) -> bool:
        return self.rank > 0

    def patterns(self) -> tuple[str, ...]:
        return self.targets + (CAMERA_TARGETS if self.camera else ())


def target_modules(model: nn.Module, cfg: LoraConfig) -> list[str]:
    """Names of the ``nn.Linear`` modules ``cfg`` adapts; a pattern that matches none is an InputError."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    chosen: set[str] = set()
    for pattern in cfg.patterns():
        matched = {name for name in linears if fnmatch.fnmatchcase(name, pattern)}
        if not matched:
            raise InputError(
                f"lora.targets: {pattern!r} matches no linear layer (e.g. {', '.join(sorted(linears)[:2])})"
            )
        chosen |= matched
    return [name for name in linears if name in chosen]


def inject_lora(model: nn.Module, cfg: LoraConfig) -> list[str]:
    """Put peft LoRA layers on ``cfg``'s targets of ``model`` (in place, any device incl. ``meta``) and make
    the adapters the only parameters that require gradients; returns the adapted module names."""
    import peft

    names = target_modules(model, cfg)
    peft_cfg = peft.LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=names,
        bias="none",
    )
    peft.inject_adapter_in_model(peft_cfg, model)
    for name, param in model.named_parameters():
        param.requires_grad_(is_adapter(name))
    return names


def is_adapter(name: str) -> bool:
    """Whether a parameter or state-dict name is a LoRA adapter weight."""
    return ".lora_A." in name or ".lora_B." in name


def base_name(name: str) -> str:
    """The plain model's state-dict name of a LoRA model's base weight (drops ``.base_layer``)."""
    return name.replace(".base_layer.", ".")


@torch.no_grad()
def init_adapters(model: nn.Module) -> None:
    """peft's initial adapters: ``A`` Kaiming-uniform (``a = √5``), ``B`` zero. Call under the run seed on
    materialised (possibly sharded) parameters; ``A`` is drawn full-size on the CPU and copied in."""
    from sana_wm.models.attention import init_param_

    for name, param in model.named_parameters():
        if ".lora_A." in name:
            init_param_(param, lambda w: nn.init.kaiming_uniform_(w, a=math.sqrt(5)))
        elif ".lora_B." in name:
            param.zero_()


def adapter_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapter weights of a LoRA model's (full) state dict under the file's names
    (``blocks.0.attn.qkv.lora_A.weight``)."""
    suffix = f".{ADAPTER}."
    return {name.replace(suffix, "."): value for name, value in state.items() if is_adapter(name)}
