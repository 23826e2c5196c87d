"""LoRA adapter files: what ``sana-wm train export --weights lora`` writes and ``--lora FILE`` merges.

File: one safetensors file. Tensors ``<module>.lora_A.weight`` ``(r, in)`` and ``<module>.lora_B.weight``
``(out, r)`` per adapted ``nn.Linear`` (``<module>`` is its state-dict name, e.g. ``blocks.0.attn.qkv``);
the safetensors metadata key ``sana_wm_lora`` holds a small JSON: ``rank``, ``alpha``, ``targets`` (the
training patterns) and ``model`` (the base model's config dict). A copy of that JSON is written beside it
(``FILE.json``) for people; loading reads only the safetensors file.

Merging: ``W ← W + scale · (alpha / rank) · B @ A`` in fp32, then cast back to ``W``'s dtype; the merged
model is a plain transformer (no hooks, no peft at inference, the same speed as the base). This is exactly
what peft's unmerged LoRA layer computes (``x Wᵀ + scale · (alpha / rank) · (x Aᵀ) Bᵀ``, no dropout at
inference) up to float rounding.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sana_wm.errors import InputError

METADATA_KEY = "sana_wm_lora"


def save_adapter(
    tensors: dict[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    rank: int,
    alpha: float,
    targets: list[str],
    model_config: dict[str, Any],
) -> Path:
    """Write adapter ``tensors`` (names as in the module docstring) and their config; returns the path."""
    from safetensors.torch import save_file

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {"rank": rank, "alpha": alpha, "targets": targets, "model": model_config}
    tmp = out.with_name(out.name + ".tmp")
    save_file(
        {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()},
        str(tmp),
        metadata={METADATA_KEY: json.dumps(info)},
    )
    os.replace(tmp, out)
    out.with_name(out.name + ".json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def read_adapter(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The adapter's tensors and config; an :class:`InputError` (one line) for a file that is missing, not
    safetensors, not a sana-wm LoRA file, or whose A/B pairs are incomplete or of the wrong rank."""
    from safetensors import safe_open

    file = Path(path)
    if not file.is_file():
        raise InputError(f"--lora: {file} does not exist")
    try:
        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors raises several types for a damaged or foreign file
        raise InputError(
            f"--lora: {file} is not a safetensors file ({' '.join(str(err).split())[:120]})"
        ) from None
    if METADATA_KEY not in metadata:
        raise InputError(f"--lora: {file} is not a sana-wm LoRA adapter (no {METADATA_KEY} metadata)")
    try:
        info = json.loads(metadata[METADATA_KEY])
        rank, alpha = int(info["rank"]), float(info["alpha"])
    except (ValueError, KeyError, TypeError):
        raise InputError(f"--lora: {file} has an unreadable {METADATA_KEY} config") from None
    modules = {key.rsplit(".lora_", 1)[0] for key in tensors}
    for module in sorted(modules):
        a, b = tensors.get(f"{module}.lora_A.weight"), tensors.get(f"{module}.lora_B.weight")
        if a is None or b is None:
            raise InputError(f"--lora: {file}: {module} lacks its lora_A or lora_B weight")
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != rank or b.shape[1] != rank:
            raise InputError(
                f"--lora: {file}: {module} has A {tuple(a.shape)}, B {tuple(b.shape)}, not rank {rank}"
            )
    if len(tensors) != 2 * len(modules) or not modules:
        raise InputError(f"--lora: {file} holds no adapter pairs (or stray tensors)")
    info["rank"], info["alpha"] = rank, alpha
    return tensors, info


@torch.no_grad()
def merge_adapter(model: nn.Module, path: str | os.PathLike[str], scale: float = 1.0) -> list[str]:
    """Merge the adapter at ``path`` into ``model``'s weights in place (module docstring); returns the
    adapted module names. Shapes are checked against ``model`` before any weight changes."""
    tensors, info = read_adapter(path)
    factor = scale * info["alpha"] / info["rank"]
    modules = dict(model.named_modules())
    names = sorted({key.rsplit(".lora_", 1)[0] for key in tensors})
    deltas = {}
    for name in names:
        linear = modules.get(name)
        if not isinstance(linear, nn.Linear):
            raise InputError(
                f"--lora: {path}: the model has no linear layer {name} (adapter for another model?)"
            )
        a, b = tensors[f"{name}.lora_A.weight"], tensors[f"{name}.lora_B.weight"]
        if (b.shape[0], a.shape[1]) != tuple(linear.weight.shape):
            raise InputError(
                f"--lora: {path}: {name} is {tuple(linear.weight.shape)} in the model, the adapter makes "
                f"{(b.shape[0], a.shape[1])} (adapter for another model size?)"
            )
        deltas[name] = factor * (b.float() @ a.float())
    for name in names:
        weight = modules[name].weight
        weight.copy_((weight.float() + deltas[name].to(weight.device)).to(weight.dtype))
    return names
