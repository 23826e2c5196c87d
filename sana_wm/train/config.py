"""The typed run configuration: one frozen dataclass per component, composed by :class:`RunConfig`.

A run is described by a :class:`RunConfig` built by a recipe (a Python function in ``recipes/``), read from
a JSON/YAML file, and adjusted by strict ``section.field=value`` overrides:

- unknown keys are errors naming the full dotted path;
- every value is checked against the field's annotation (``int``, ``float``, ``bool``, ``str``,
  ``Literal[...]``, ``X | None``, ``tuple[float, ...]``, nested sections);
- the resolved config is saved as JSON with every checkpoint and compared on resume.

Component configs live beside the code that uses them (``losses.LossConfig``, ``optim.OptimConfig``, ...);
this module owns only the composition and the generic (de)serialisation.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from sana_wm.errors import InputError
from sana_wm.models.config import SanaWMConfig
from sana_wm.train.checkpoint import CheckpointConfig
from sana_wm.train.dataset import DataConfig
from sana_wm.train.dmd import DMDConfig
from sana_wm.train.ema import EMAConfig
from sana_wm.train.lora import LoraConfig
from sana_wm.train.losses import LossConfig
from sana_wm.train.metrics import MetricsConfig
from sana_wm.train.ode import ODEConfig
from sana_wm.train.optim import OptimConfig
from sana_wm.train.parallel import ParallelConfig

T = TypeVar("T")
Mode = Literal["flow", "ode_pairs", "ode_regression", "self_forcing_dmd"]


@dataclass(kw_only=True, frozen=True)
class RunConfig:
    """Everything one training run needs.

    Attributes:
        mode: what the run does (the official stage-1 and distillation stages):

            - ``flow``: flow matching on ``data`` (``loss``): the bidirectional model, or with
              ``model.chunk_size`` and ``loss.chunk_size`` the chunk-causal teacher by diffusion forcing
              (the official chunk mixture, ``loss.chunk_mode = mixture``);
            - ``ode_pairs``: the teacher's (``ode``) sampler trajectories on ``data``'s clips, written as
              safetensors shards (no training; ``sana_wm.train.ode``);
            - ``ode_regression``: the chunk-causal student regressed onto those shards;
            - ``self_forcing_dmd``: the student rolls its chunks out with caches and learns from a frozen real
              score and an online critic (``dmd``; ``sana_wm.train.dmd``).
        out_dir: run directory (``checkpoints/``, ``metrics.jsonl``, ``run_config.json``); a run started
            again with the same ``out_dir`` resumes from its latest complete checkpoint.
        seed: seeds the initialisation, the data order and every per-sample random draw (official 3407).
        max_steps: optimiser steps of the whole run.
        global_batch_size: samples per optimiser step over all ranks and accumulation steps; the per-rank
            micro-batch is ``global_batch_size / (world_size · grad_accum_steps)``, so a recipe trains the
            same way on any number of processes (official: 1 per rank).
        grad_accum_steps: micro-batches per optimiser step.
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``.
        cpu_threads: intra-op threads on CPU (0 keeps PyTorch's default; 1 is much faster for tiny
            models on a busy machine).
        init_from: weights to start from (any file or folder ``load_transformer`` reads), else random.
        trainable: ``fnmatch`` patterns over parameter names (state-dict names, e.g. ``blocks.*.attn.proj.*``)
            of the parameters to train; empty trains all. The others keep their initial weights bit for bit
            (no gradient, not in the optimiser, unchanged in the EMA); a pattern that matches no parameter is
            an :class:`InputError` when the model is built. Fixed for the life of a run (a resume with
            another set is refused: the optimiser state would not fit).
        lora: LoRA fine-tuning (``lora.rank > 0``; :mod:`sana_wm.train.lora`): only the adapters train
            (``trainable`` must then be empty); fixed for the life of a run like ``trainable``.
    """

    model: SanaWMConfig = field(default_factory=SanaWMConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    ode: ODEConfig = field(default_factory=ODEConfig)
    dmd: DMDConfig = field(default_factory=DMDConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    mode: Mode = "flow"
    out_dir: str = "runs/sana_wm"
    seed: int = 3407
    max_steps: int = 1000
    global_batch_size: int = 1
    grad_accum_steps: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int = 0
    init_from: str | None = None
    trainable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for pattern in self.trainable:
            if not isinstance(pattern, str) or not pattern.strip():
                raise InputError(f"trainable: expected non-empty name patterns, got {pattern!r}")
        if self.lora.enabled and self.trainable:
            raise InputError("trainable: with lora.rank > 0 only the adapters train; leave trainable empty")
        if self.lora.enabled and self.mode != "flow":
            raise InputError(f"lora.rank: LoRA training is for the flow mode, not {self.mode}")
        for name in ("max_steps", "global_batch_size", "grad_accum_steps"):
            if getattr(self, name) < 1:
                raise InputError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"seed: must be in [0, 2^63), got {self.seed}")
        if self.cpu_threads < 0:
            raise InputError(f"cpu_threads: must be >= 0, got {self.cpu_threads}")
        if self.mode in ("ode_regression", "self_forcing_dmd") and self.model.chunk_size is None:
            raise InputError(
                f"model.chunk_size: the {self.mode} mode trains a chunk-causal student (set it, e.g. 3)"
            )
        if self.mode == "self_forcing_dmd" and self.grad_accum_steps != 1:
            raise InputError("grad_accum_steps: self_forcing_dmd steps once per batch (must be 1)")
        if self.global_batch_size % self.grad_accum_steps:
            raise InputError(
                f"global_batch_size: {self.global_batch_size} is not divisible by grad_accum_steps "
                f"{self.grad_accum_steps}"
            )

    def micro_batch_size(self, world_size: int) -> int:
        """Samples per rank per forward pass; an :class:`InputError` if the global batch does not split."""
        per_step = world_size * self.grad_accum_steps
        if self.global_batch_size % per_step:
            raise InputError(
                f"global_batch_size: {self.global_batch_size} is not divisible by world_size {world_size} "
                f"x grad_accum_steps {self.grad_accum_steps}"
            )
        return self.global_batch_size // per_step

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        return config_from_dict(cls, data)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON-serialisable ``dict`` of a (nested) config dataclass; tuples become lists."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"tuple[{', '.join(_type_name(a) for a in typing.get_args(tp))}]"
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` (from JSON/YAML or already typed) checked against annotation ``tp``."""
    origin = typing.get_origin(tp)
    bad = InputError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if _is_config(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise bad
        return config_from_dict(tp, value, where=where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise bad
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except InputError:
                continue
        raise bad
    if origin is Literal:
        if value in typing.get_args(tp) and type(value) in {type(a) for a in typing.get_args(tp)}:
            return value
        raise bad
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise bad
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise InputError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise InputError(f"{where}: unsupported config type {_type_name(tp)}")


def config_from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build config dataclass ``cls`` from a (nested) mapping; unknown keys and wrong types are errors.

    Missing keys keep their defaults. Errors name the dotted path, e.g. ``loss.flow_shift``.
    """
    if not isinstance(data, Mapping):
        raise InputError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        prefix = f"{where}." if where else ""
        raise InputError(
            f"{prefix}{unknown[0]}: unknown config key (known in {where or 'the run config'}: "
            f"{', '.join(known)})"
        )
    values = {name: _coerce(data[name], hints[name], f"{where}.{name}" if where else name) for name in data}
    return cls(**values)


def _parse_text(text: str, tp: Any, where: str) -> Any:
    """An override's right-hand side parsed for annotation ``tp``."""
    origin = typing.get_origin(tp)
    if _is_config(tp):
        raise InputError(f"{where}: is a section; set one of its fields ({where}.FIELD=VALUE)")
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() in ("none", "null"):
            return _coerce(None, tp, where)
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return _parse_text(text, arg, where)
            except InputError:
                continue
        raise InputError(f"{where}: expected {_type_name(tp)}, got {text!r}")
    if origin is Literal:
        return _coerce(text, tp, where)
    if origin is tuple:
        parts = [p.strip() for p in text.strip().strip("()[]").split(",") if p.strip()]
        args = typing.get_args(tp)
        inner = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if inner is None and len(parts) != len(args):
            raise InputError(f"{where}: expected {len(args)} comma-separated values, got {text!r}")
        kinds = [inner] * len(parts) if inner is not None else list(args)
        return tuple(
            _parse_text(p, k, f"{where}[{i}]") for i, (p, k) in enumerate(zip(parts, kinds, strict=True))
        )
    try:
        if tp is bool:
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
    except ValueError:
        raise InputError(f"{where}: expected {_type_name(tp)}, got {text!r}") from None
    if tp is str:
        return text
    raise InputError(f"{where}: unsupported config type {_type_name(tp)}")


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Return ``cfg`` with ``dotted.path=value`` overrides applied, each checked against its field's type.

    Example: ``["loss.flow_shift=3.0", "optim.betas=0.9,0.95", "init_from=none"]``. All overrides are applied
    before the sections validate themselves, so dependent fields can change together (``model.depth=4
    model.plucker_blocks=4``).
    """
    data = dataclasses.asdict(cfg)  # type: ignore[call-overload]
    for item in overrides:
        path, sep, text = item.partition("=")
        path = path.strip()
        if not sep or not path:
            raise InputError(f"override {item!r}: expected KEY=VALUE (e.g. optim.lr=1e-4)")
        _set(type(cfg), data, path.split("."), text, path)
    return config_from_dict(type(cfg), data)


def _set(cls: type, data: dict[str, Any], keys: list[str], text: str, full: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    done = full[: len(full) - len(".".join(keys))].rstrip(".")
    if keys[0] not in names:
        section = done or "the run config"
        raise InputError(f"{full}: unknown config key {keys[0]!r} (known in {section}: {', '.join(names)})")
    tp = _hints(cls)[keys[0]]
    if len(keys) == 1:
        data[keys[0]] = _parse_text(text, tp, full)
    elif _is_config(tp):
        _set(tp, data[keys[0]], keys[1:], text, full)
    else:
        raise InputError(f"{full}: {done + '.' if done else ''}{keys[0]} is not a section")


def load_config_file(path: str | os.PathLike[str]) -> RunConfig:
    """A :class:`RunConfig` from a ``.json`` (e.g. a checkpoint's ``run_config.json``) or ``.yaml`` file."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"--config: {file} does not exist")
    if file.suffix not in (".json", ".yaml", ".yml"):
        raise InputError(f"--config: {file} is not a .json, .yaml or .yml file")
    import yaml  # PyYAML, a declared dependency

    try:
        text = file.read_text(encoding="utf-8")
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text) or {}
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())[:160]
        raise InputError(f"--config: {file} is not valid {file.suffix[1:].upper()} ({reason})") from None
    if not isinstance(data, dict):
        raise InputError(f"--config: {file} holds a {type(data).__name__}, not a mapping of settings")
    return RunConfig.from_dict(data)


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (nested mappings compared leaf-wise)."""
    out = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        name = f"{prefix}{key}"
        if isinstance(left, Mapping) and isinstance(right, Mapping):
            out += config_diff(left, right, name + ".")
        elif left != right:
            out.append(name)
    return out


def load_recipe(spec: str) -> RunConfig:
    """The :class:`RunConfig` of a recipe: ``FILE.py[:FUNCTION]`` or a name in ``./recipes/``.

    ``FUNCTION`` defaults to the file's stem (``recipes/debug.py`` → ``debug()``); it takes no arguments.
    """
    import importlib.util

    target, _, function = spec.partition(":")
    path = Path(target)
    if not path.suffix and not path.exists():
        path = Path("recipes") / f"{target}.py"
    if not path.is_file():
        raise InputError(f"--recipe: {spec!r} is neither a .py file nor a recipe in ./recipes/")
    module_spec = importlib.util.spec_from_file_location(f"sana_wm_recipe_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise InputError(f"--recipe: cannot import {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    name = function or path.stem
    build = getattr(module, name, None)
    if not callable(build):
        raise InputError(f"--recipe: {path} has no function {name}()")
    cfg = build()
    if not isinstance(cfg, RunConfig):
        raise InputError(f"--recipe: {path}:{name}() returned {type(cfg).__name__}, not a RunConfig")
    return cfg
