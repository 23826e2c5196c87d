"""Distributed checkpoints (``torch.distributed.checkpoint``) and export to one inference file.

A checkpoint is the folder ``OUT_DIR/checkpoints/step_NNNNNNNN`` holding DCP shards of

- ``model``: parameters and buffers (FSDP2 shards, or plain tensors single-process);
- ``optim``: AdamW state (``get_optimizer_state_dict``);
- ``ema``: the weight average, when enabled;
- ``train``: ``step`` and ``samples`` (global samples consumed: the data position, since the data order and
  every random draw are functions of the step);
- ``rng``: each rank's torch RNG states (``rank{r}_cpu``/``rank{r}_cuda``);
- ``<name>.model`` / ``<name>.optim`` for every further trained model of the run (``extra``: the self-forcing
  DMD critic, ``critic``);

plus ``run_config.json`` (the resolved run config). It is written to ``step_NNNNNNNN.partial`` and renamed
once every rank has finished, so only complete checkpoints carry the final name; :func:`latest_checkpoint`
ignores anything else. DCP reshards on load, so a run may resume on a different number of processes (RNG
states of ranks that did not exist are then left alone).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch import nn

import sana_wm.train.safe_dcp as safe_dcp
from sana_wm.errors import InputError
from sana_wm.models import SanaWMConfig, SanaWMTransformer, save_transformer
from sana_wm.train.safe_dcp import SafeReader

CHECKPOINTS = "checkpoints"
CONFIG_FILE = "run_config.json"
_STEP_DIR = re.compile(r"^step_(\d{8})$")


@dataclass(kw_only=True, frozen=True)
class CheckpointConfig:
    """Attributes:
    every: save every this many optimiser steps (and at the last step and on SIGTERM); 0 = only those.
    keep_last: complete checkpoints to keep (older ones are deleted); 0 keeps all.
    """

    every: int = 50
    keep_last: int = 3

    def __post_init__(self) -> None:
        if self.every < 0 or self.keep_last < 0:
            raise InputError(
                f"checkpoint: every and keep_last must be >= 0, got {self.every}, {self.keep_last}"
            )


def step_dir(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS / f"step_{step:08d}"


def complete_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = Path(out_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / ".metadata").is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = complete_checkpoints(out_dir)
    return found[-1] if found else None


def _dcp_kwargs() -> dict[str, Any]:
    return {"no_dist": not (torch.distributed.is_available() and torch.distributed.is_initialized())}


@contextlib.contextmanager
def _quiet_single_process() -> Iterator[None]:
    """DCP warns on every single-process save/load, even when asked for one (``no_dist=True``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        yield


def _rng_state(rank: int) -> dict[str, torch.Tensor]:
    state = {f"rank{rank}_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state[f"rank{rank}_cuda"] = torch.cuda.get_rng_state()
    return state


Extra = Mapping[str, tuple[nn.Module, torch.optim.Optimizer]]


def _state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: Mapping[str, torch.Tensor] | None,
    step: int = 0,
    samples: int = 0,
    log_window: torch.Tensor | None = None,
    extra: Extra | None = None,
    window_size: int = 3,
) -> dict[str, Any]:
    """The DCP state dict: live model/optimiser/EMA tensors (loaded in place), the counters and the metrics
    window not yet logged (``log_window``: the rank-mean sums of loss and grad norm, and its step count,
    then any further sums a mode keeps), and the ``extra`` models with their optimisers."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    state: dict[str, Any] = {
        "model": get_model_state_dict(model),
        "optim": get_optimizer_state_dict(model, optimizer),
        "train": {
            "step": torch.tensor(step),
            "samples": torch.tensor(samples),
            "log_window": torch.zeros(window_size, dtype=torch.float64)
            if log_window is None
            else log_window.cpu().double(),
        },
    }
    if ema is not None:
        state["ema"] = dict(ema)
    for name, (other, other_optimizer) in (extra or {}).items():
        state[name] = {
            "model": get_model_state_dict(other),
            "optim": get_optimizer_state_dict(other, other_optimizer),
        }
    return state


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: Mapping[str, torch.Tensor] | None,
    samples: int,
    config: Mapping[str, Any],
    rank: int,
    keep_last: int,
    barrier: Callable[[], None],
    log_window: torch.Tensor | None = None,
    extra: Extra | None = None,
) -> Path:
    """Write the checkpoint of ``step`` (collective: every rank calls it) and prune old ones on rank 0."""
    final = step_dir(out_dir, step)
    partial = final.with_name(final.name + ".partial")
    if rank == 0:
        for stale in [partial, *final.parent.glob("*.deleting")]:
            shutil.rmtree(stale, ignore_errors=True)
        partial.mkdir(parents=True)
    barrier()
    state = _state(model, optimizer, ema, step, samples, log_window, extra)
    state["rng"] = _rng_state(rank)
    with _quiet_single_process():
        dcp.save(state, checkpoint_id=str(partial), **_dcp_kwargs())
    if rank == 0:
        (partial / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        if keep_last:
            for old in complete_checkpoints(out_dir)[:-keep_last]:
                # Renamed first, so a kill during the deletion never leaves a "complete" partial folder.
                doomed = old.rename(old.with_name(old.name + ".deleting"))
                shutil.rmtree(doomed, ignore_errors=True)
    barrier()
    return final


def _saved_keys(path: Path) -> set[str]:
    return set(SafeReader(str(path)).read_metadata().state_dict_metadata)


def _safe_load(state: dict[str, Any], path: Path, **kwargs: Any) -> None:
    """``dcp.load`` that runs no code from the checkpoint (:mod:`sana_wm.train.safe_dcp`)."""
    safe_dcp.load(state, str(path), **kwargs)


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: Mapping[str, torch.Tensor] | None,
    rank: int,
    extra: Extra | None = None,
    window_size: int = 3,
) -> tuple[int, int, torch.Tensor]:
    """Restore model, optimiser, EMA, the ``extra`` models and optimisers and this rank's RNG in place;
    returns ``(step, samples, log_window)`` (the metrics window not yet logged at the checkpoint, of
    ``window_size`` sums; zeros for a checkpoint written without it)."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    path = Path(path)
    keys = _saved_keys(path)
    for name in extra or {}:
        if not any(k.startswith(f"{name}.model.") for k in keys):
            raise InputError(f"checkpoint {path}: has no {name} weights (a run of another training mode?)")
    state = _state(model, optimizer, ema, extra=extra, window_size=window_size)
    if ema is not None and not any(k.startswith("ema.") for k in keys):
        raise InputError(f"checkpoint {path}: has no EMA weights but ema.decay > 0 (set ema.decay=0)")
    if "train.log_window" not in keys:
        del state["train"]["log_window"]
    rng = {k: v.clone() for k, v in _rng_state(rank).items() if f"rng.{k}" in keys}
    if rng:
        state["rng"] = rng
    with _quiet_single_process():
        _safe_load(state, path, **_dcp_kwargs())
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optimizer, state["optim"])
    for name, (other, other_optimizer) in (extra or {}).items():
        set_model_state_dict(other, state[name]["model"])
        set_optimizer_state_dict(other, other_optimizer, state[name]["optim"])
    if f"rank{rank}_cpu" in rng:
        torch.set_rng_state(rng[f"rank{rank}_cpu"])
    if f"rank{rank}_cuda" in rng:
        torch.cuda.set_rng_state(rng[f"rank{rank}_cuda"])
    window = state["train"].get("log_window", torch.zeros(window_size, dtype=torch.float64))
    return int(state["train"]["step"]), int(state["train"]["samples"]), window


def read_run_config(path: str | Path) -> dict[str, Any]:
    """The ``run_config.json`` saved with a checkpoint, as a dict."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise InputError(f"checkpoint {path}: has no {CONFIG_FILE}")
    return json.loads(file.read_text(encoding="utf-8"))


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or the latest complete checkpoint of a run folder."""
    path = Path(path)
    if (path / ".metadata").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise InputError(f"checkpoint: {path} is neither a checkpoint nor a run folder with checkpoints")
    return latest


def export_inference(checkpoint: str | Path, out_path: str | Path, *, weights: str = "ema") -> Path:
    """Write one inference safetensors file (weights + model config) from a training checkpoint.

    Runs in one process: DCP gathers the shards of any world size into full tensors. ``weights`` is
    ``ema`` (default; an :class:`InputError` if the run had no EMA), ``model`` (the raw weights) or, for a
    self-forcing DMD run, ``critic`` (its fake score, e.g. to continue it in a later stage); for a LoRA run
    ``lora`` (the raw adapters alone, :func:`sana_wm.models.lora.save_adapter`) or ``lora_ema`` (their EMA),
    while ``ema``/``model`` write the base with the adapters merged in.
    Returns the checkpoint folder used.
    """
    if weights not in ("ema", "model", "critic", "lora", "lora_ema"):
        raise InputError(f"--weights: expected ema, model, critic, lora or lora_ema, got {weights!r}")
    path = resolve_checkpoint(checkpoint)
    run = read_run_config(path)
    if run.get("lora", {}).get("rank", 0) > 0:
        return _export_lora(path, run, out_path, weights)
    if weights.startswith("lora"):
        raise InputError(f"--weights {weights}: checkpoint {path} is not from a LoRA run (lora.rank = 0)")
    model_cfg = SanaWMConfig.from_dict(run["model"])
    if weights == "critic":
        if not any(k.startswith("critic.model.") for k in _saved_keys(path)):
            raise InputError(f"checkpoint {path}: has no critic (not a self_forcing_dmd run)")
        model_cfg = dataclasses.replace(model_cfg, chunk_size=run["dmd"]["fake_chunk_size"])
    with torch.device("meta"):
        model = SanaWMTransformer(model_cfg)
    model.to_empty(device="cpu")
    if weights == "critic":
        state: dict[str, Any] = {"critic": {"model": model.state_dict()}}
        with _quiet_single_process():
            _safe_load(state, path, no_dist=True)
        model.load_state_dict(state["critic"]["model"])
        save_transformer(model, out_path)
        return path
    _load_model_weights(model, path, ema=weights == "ema", other="--weights model")
    save_transformer(model, out_path)
    return path


def _load_model_weights(model: torch.nn.Module, path: Path, *, ema: bool, other: str) -> None:
    """Load the checkpoint's model weights into ``model`` (CPU, one process), with ``ema`` its EMA in place
    of the trained parameters (an :class:`InputError` naming ``other`` if the run kept none)."""
    state: dict[str, Any] = {"model": model.state_dict()}
    if ema:
        if not any(k.startswith("ema.") for k in _saved_keys(path)):
            raise InputError(f"checkpoint {path}: has no EMA weights (export with {other})")
        state["ema"] = {name: torch.empty_like(p) for name, p in model.named_parameters()}
    with _quiet_single_process():
        _safe_load(state, path, no_dist=True)
    full = dict(state["model"])
    full.update(state.get("ema", {}))
    model.load_state_dict(full)


def _export_lora(path: Path, run: dict[str, Any], out_path: str | Path, weights: str) -> Path:
    """:func:`export_inference` of a LoRA run: the adapters alone, or the base with them merged."""
    from sana_wm.models.lora import save_adapter
    from sana_wm.train.lora import LoraConfig, adapter_tensors, inject_lora

    if weights == "critic":
        raise InputError(f"checkpoint {path}: has no critic (a LoRA flow run)")
    lora = LoraConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in run["lora"].items()})
    model_cfg = SanaWMConfig.from_dict(run["model"])
    with torch.device("meta"):
        model = SanaWMTransformer(model_cfg)
    inject_lora(model, lora)
    model.to_empty(device="cpu")
    _load_model_weights(model, path, ema=weights in ("ema", "lora_ema"), other="--weights model or lora")
    if weights.startswith("lora"):
        save_adapter(
            adapter_tensors(model.state_dict()),
            out_path,
            rank=lora.rank,
            alpha=lora.alpha,
            targets=list(lora.patterns()),
            model_config=run["model"],
        )
        return path
    save_transformer(_merge_peft(model), out_path)
    return path


def _merge_peft(model: SanaWMTransformer) -> SanaWMTransformer:
    """``model`` with every peft LoRA layer merged into its base layer and replaced by it."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())
    return model
