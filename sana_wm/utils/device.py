"""Device and dtype defaults, in one place: CUDA when present, bfloat16 there and float32 on the CPU."""

from __future__ import annotations

import torch

from sana_wm.errors import InputError

DTYPES: dict[str, torch.dtype] = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None, flag: str = "--device") -> torch.device:
    """``None`` -> :func:`default_device`; a device that is unknown or not here is an :class:`InputError`."""
    if device is None:
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"{flag}: {err}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{flag}: {device} requested but CUDA is not available")
    count = torch.cuda.device_count() if resolved.type == "cuda" else 0
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= count:
        raise InputError(f"{flag}: {device} requested but this machine has {count} GPU(s)")
    if resolved.type not in ("cpu", "cuda"):
        raise InputError(f"{flag}: {device} is not supported (use cpu or cuda)")
    return resolved


def resolve_dtype(
    dtype: str | torch.dtype | None, device: torch.device, flag: str = "--dtype"
) -> torch.dtype:
    """``None`` -> bfloat16 on CUDA, float32 elsewhere; names as in :data:`DTYPES`."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"{flag}: {dtype!r} is not one of {', '.join(DTYPES)}")
    return DTYPES[dtype]
