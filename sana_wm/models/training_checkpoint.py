"""Read the generator's weights out of an official training checkpoint (a ``torch.save`` file), tensors only.

The streaming release (Hugging Face ``Efficient-Large-Model/SANA-WM_streaming``, ``sana_dit/model.pt``) is the
distillation run's checkpoint: generator, critic and optimiser state in one file. Its nesting is not
documented, so :func:`read_training_checkpoint` looks for the generator:

- the file is unpickled with ``torch.load(weights_only=True)`` (memory-mapped where the file allows it):
  only tensors, containers and plain values can come out of it; a file that needs any other class is
  refused with one line, never unpickled with arbitrary code;
- the nested mappings are walked through wrapper keys only (:data:`GENERATOR_KEYS`, e.g. ``generator``,
  ``generator_ema``, ``model``, ``state_dict``, ``module``); critic, score models, optimiser and scheduler
  state (:data:`NEVER_GENERATOR`) are never entered. A flat mapping whose keys carry such a role prefix
  (``generator.model.x`` beside ``critic.model.x``) is split by that prefix first;
- of the tensor mappings found, the plain generator wins over its EMA copy: the EMA is used only when it is
  the only one (the released generator is what the official streaming script loads; an EMA, when a run kept
  one, is reported so the choice is visible). Two different non-EMA candidates are ambiguous: an error
  naming both;
- wrapper components (``_orig_mod.`` of ``torch.compile``, ``_fsdp_wrapped_module.``,
  ``_checkpoint_wrapped_module.``) are removed anywhere in a key, then leading ``generator.`` / ``module.`` /
  ``model.`` prefixes.

The returned keys are the official ones (e.g. ``t_embedder.mlp.0.weight``, ``pos_embed``):
``checkpoint_io.official_to_state_dict`` renames them and the strict key report checks them.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sana_wm.errors import InputError

# Keys whose value may hold the generator (walked into), in the order a tie is reported.
GENERATOR_KEYS = (
    "generator",
    "generator_ema",
    "generator_state_dict",
    "ema",
    "model",
    "model_state_dict",
    "state_dict",
    "module",
    "net",
)
# Keys that hold something else; never walked into, never chosen (also anything containing these words).
NEVER_GENERATOR = ("critic", "score", "teacher", "discriminator", "optim", "sched")
_WRAPPER_PARTS = ("_orig_mod.", "_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")
_LEADING_PREFIXES = ("generator.", "module.", "model.")
_MAX_DEPTH = 4


@dataclass(frozen=True)
class GeneratorWeights:
    """The generator's tensors under official key names, and where in the file they were found.

    Attributes:
        state: key → tensor (the wrapper prefixes removed; official names otherwise).
        where: the path of mapping keys that led to them, e.g. ``"generator"`` or ``"(top level)"``.
        ema: whether they are an EMA copy (chosen only when no plain generator exists).
    """

    state: dict[str, torch.Tensor]
    where: str
    ema: bool


def read_training_checkpoint(path: str | os.PathLike[str]) -> GeneratorWeights:
    """The generator of the training checkpoint at ``path`` (see the module docstring).

    Raises:
        InputError: the file is missing, not a torch checkpoint, needs classes beyond tensors and plain
            containers, or holds no (or more than one) generator state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint: {path} does not exist")
    return find_generator(load_tensors_only(path), source=str(path))


def load_tensors_only(path: Path) -> Any:
    """``torch.load(weights_only=True)`` on CPU, memory-mapped if the file is in the zip format; every failure
    is one :class:`InputError`."""
    mmap = zipfile.is_zipfile(path)  # torch's legacy (non-zip) format cannot be memory-mapped
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        reason = " ".join(str(err).split())
        detail = reason.split("WeightsUnpickler error:", 1)[-1].split(" Check the documentation")[0]
        detail = detail.strip().split(". ")[0][:160]
        if "global" not in detail.lower():  # not a class refused by the allow-list: a damaged or foreign file
            raise InputError(f"checkpoint: cannot read {path} as a torch checkpoint ({detail})") from None
        raise InputError(
            f"checkpoint: {path} is not a tensors-only checkpoint; refusing to unpickle arbitrary objects "
            f"({detail})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as err:
        reason = " ".join(str(err).split())[:160]
        raise InputError(f"checkpoint: cannot read {path} as a torch checkpoint ({reason})") from None


def find_generator(obj: Any, *, source: str) -> GeneratorWeights:
    """Locate the generator's state dict in the unpickled checkpoint ``obj`` (see the module docstring)."""
    if not isinstance(obj, Mapping):
        raise InputError(f"checkpoint: {source} holds a {type(obj).__name__}, not a mapping of tensors")
    found: list[tuple[tuple[str, ...], dict[str, torch.Tensor]]] = []
    _walk(obj, (), found)
    if not found:
        top = ", ".join(str(k) for k in list(obj)[:8]) or "nothing"
        raise InputError(
            f"checkpoint: {source} holds no generator state dict (top-level keys: {top}; looked under "
            f"{', '.join(GENERATOR_KEYS)})"
        )
    plain = [(p, s) for p, s in found if not _is_ema(p)]
    chosen = plain or found
    distinct = {_where(p): (p, s) for p, s in chosen}
    if len(distinct) > 1:
        raise InputError(
            f"checkpoint: {source} holds several generator state dicts ({', '.join(distinct)}); convert the "
            "one you mean in a trusted environment"
        )
    path, state = chosen[0]
    return GeneratorWeights(_strip(state), _where(path), _is_ema(path))


def _walk(
    obj: Mapping[Any, Any],
    path: tuple[str, ...],
    found: list[tuple[tuple[str, ...], dict[str, torch.Tensor]]],
) -> None:
    """Collect the parameter-like tensor mappings under ``obj`` (non-tensor entries beside them, such as a
    step count, are not part of them; nested mappings are walked through wrapper keys only)."""
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    nested: dict[str, Any] = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Mapping)}
    split = _split_by_role(tensors)
    if split is not None:
        nested.update(split)
    elif any("." in key for key in tensors):  # parameter names are dotted, unlike a "step" counter
        found.append((path, tensors))
    if len(path) >= _MAX_DEPTH:
        return
    for key, value in nested.items():
        if _walks_into(key):
            _walk(value, (*path, key), found)


def _walks_into(key: str) -> bool:
    lowered = key.lower()
    return lowered in GENERATOR_KEYS and not any(word in lowered for word in NEVER_GENERATOR)


def _split_by_role(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]] | None:
    """A flat dict keyed ``<role>.<rest>`` with several roles (or a non-generator one) → nested by role."""
    roles = {key.split(".", 1)[0] for key in tensors}
    known = {r for r in roles if r.lower() in GENERATOR_KEYS or any(w in r.lower() for w in NEVER_GENERATOR)}
    if roles != known or not any(_is_role(r) for r in roles):
        return None
    nested: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        role, _, rest = key.partition(".")
        nested.setdefault(role, {})[rest] = value
    return nested


def _is_role(name: str) -> bool:
    """Whether a first key component names a training role (not just a ``model.`` / ``module.`` prefix)."""
    lowered = name.lower()
    return lowered.startswith("generator") or lowered == "ema" or any(w in lowered for w in NEVER_GENERATOR)


def _is_ema(path: tuple[str, ...]) -> bool:
    return any("ema" in part.lower().split("_") for part in path)


def _where(path: tuple[str, ...]) -> str:
    return "/".join(path) if path else "(top level)"


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for part in _WRAPPER_PARTS:
            key = key.replace(part, "")
        stripped = True
        while stripped:
            stripped = False
            for prefix in _LEADING_PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key.removeprefix(prefix), True
        if key in out:
            raise InputError(f"checkpoint: two generator tensors map to the same key {key!r}")
        out[key] = value
    return out
