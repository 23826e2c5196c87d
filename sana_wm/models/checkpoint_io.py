"""Load and save the SANA-WM transformer: safetensors, and tensors-only training checkpoints (never code).

Four formats are read by :func:`load_transformer`:

(a) the official single file (``dit/sana_wm_1600m_720p.safetensors``): keys may carry a leading ``generator.``
    (distillation wrappers) and/or ``model.``; ``pos_embed`` and the unused learned null caption
    ``y_embedder.y_embedding`` are dropped; ``t_embedder.mlp.0/2`` are renamed ``t_embedder.linear_1/2``; an
    all-zero ``conv_k(_cam).bias`` (some exports of fla's bias-free short conv) is dropped. The config comes
    from ``config=`` or an official ``config.yaml`` beside the file or in its parent folder (the Hugging Face
    layout).
(b) a diffusers ``SanaWMTransformer3DModel`` folder: ``config.json`` plus ``*.safetensors`` (sharded with an
    ``*.safetensors.index.json``, or a single file); a pipeline root with a ``transformer/`` subfolder also
    works.
(c) our own file written by :func:`save_transformer`: weights plus the JSON config in the safetensors
    metadata;
(d) only when asked for (``training_checkpoint=True``: ``sana-wm convert``, the streaming release's loader):
    an official training checkpoint such as the streaming release's ``sana_dit/model.pt`` (``.pt``, ``.pth``,
    ``.ckpt``, ``.bin``), read with ``torch.load(weights_only=True)`` by
    :mod:`sana_wm.models.training_checkpoint`, which finds the generator; its keys then go through (a)'s
    renames. The config comes from ``config=``, a ``config.yaml`` beside the file or in its parent folder, or
    else is the streaming release's (:func:`sana_wm.models.variants.sana_wm_streaming_1600m_720p`: the release
    architecture with chunks of 3). Any other pickle is refused.

Loading is strict by default: any missing, unexpected or wrongly shaped key raises one :class:`InputError`
listing counts and the first names (the official loader only warns and silently keeps random weights). The
only tolerated gap is a missing ``attn.recall_gate`` buffer (always zero, never read), which is zero-filled.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from sana_wm.errors import InputError
from sana_wm.models.config import SanaWMConfig, config_from_diffusers, config_from_official_yaml
from sana_wm.models.dit import SanaWMTransformer
from sana_wm.models.training_checkpoint import read_training_checkpoint
from sana_wm.utils.atomic import atomic_output

log = logging.getLogger(__name__)

FORMAT_KEY = "format"
FORMAT_NAME = "sana_wm"
CONFIG_KEY = "sana_wm_config"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")
_TRAINING_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
_OFFICIAL_DROPPED = ("pos_embed", "y_embedder.y_embedding")
_OFFICIAL_RENAMES = (
    ("t_embedder.mlp.0.", "t_embedder.linear_1."),
    ("t_embedder.mlp.2.", "t_embedder.linear_2."),
)


@dataclass(frozen=True)
class CheckpointContents:
    """What :func:`read_checkpoint` found.

    Attributes:
        state: the weights under our key names (not yet checked against the config).
        config: the architecture to load them into.
        config_source: where ``config`` came from, for messages (``"config="``, a file path, ``"stored in the
            file"``, or the default's description).
        kind: the format read: ``"sana_wm"``, ``"official"``, ``"diffusers"`` or ``"training checkpoint"``.
        detail: a note on the source (for a training checkpoint: where the generator was found).
    """

    state: dict[str, torch.Tensor]
    config: SanaWMConfig
    config_source: str
    kind: str
    detail: str = ""


def save_transformer(model: SanaWMTransformer, path: str | os.PathLike[str]) -> None:
    """Write ``model``'s weights and config to one safetensors file (atomically)."""
    save_state_dict(model.state_dict(), model.config, path)


def save_state_dict(
    state: dict[str, torch.Tensor], config: SanaWMConfig, path: str | os.PathLike[str]
) -> None:
    """Write ``state`` (our key names, e.g. checked by :func:`check_state`) with ``config`` in our format,
    atomically. Tensors sharing storage (safetensors refuses them) are written as copies."""
    metadata = {FORMAT_KEY: FORMAT_NAME, CONFIG_KEY: json.dumps(config.to_dict())}
    save_tensors(state, path, metadata=metadata)


def save_tensors(
    state: dict[str, torch.Tensor], path: str | os.PathLike[str], *, metadata: dict[str, str] | None = None
) -> None:
    """Write ``state`` as it is (keys, dtypes, values) to one safetensors file with ``metadata``, atomically;
    tensors sharing storage (safetensors refuses them) are written as copies."""
    tensors: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for key, value in state.items():
        value = value.detach().to("cpu").contiguous()
        ptr = value.untyped_storage().data_ptr()
        if ptr in storages and value.numel():
            value = value.clone()
        storages.add(value.untyped_storage().data_ptr())
        tensors[key] = value
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def official_to_state_dict(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official single-file state dict to our (= diffusers') key names; see the module docstring."""
    state = {}
    for key, value in official.items():
        if key.startswith("generator."):
            key = key.removeprefix("generator.")
        key = key.removeprefix("model.")
        if key in _OFFICIAL_DROPPED:
            continue
        if key.endswith(("attn.conv_k.bias", "attn.conv_k_cam.bias")) and not bool(value.any()):
            continue
        for old, new in _OFFICIAL_RENAMES:
            if key.startswith(old):
                key = new + key.removeprefix(old)
        state[key] = value
    return state


def state_dict_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our (= diffusers') key names back to the official single file's: the inverse of
    :func:`official_to_state_dict` on a checked state (``t_embedder.linear_1/2`` -> ``t_embedder.mlp.0/2``,
    no prefix). The official file's ``pos_embed`` and learned null caption ``y_embedder.y_embedding`` are not
    written: sana-wm never reads them (the official loader is non-strict and keeps its own for them)."""
    official = {}
    for key, value in state.items():
        for old, new in _OFFICIAL_RENAMES:
            if key.startswith(new):
                key = old + key.removeprefix(new)
        official[key] = value
    return official


def load_transformer(
    path_or_dir: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    strict: bool = True,
    config: SanaWMConfig | None = None,
    training_checkpoint: bool = False,
) -> SanaWMTransformer:
    """Load a transformer from an official file, a diffusers folder or our own file (see module docstring).

    ``dtype`` casts every floating tensor (None keeps the stored dtypes); ``config`` overrides the stored
    config. With ``strict=False`` mismatching keys are skipped and the rest of the model keeps its
    initialisation. ``training_checkpoint`` also reads an official training checkpoint (format (d)).
    """
    contents = read_checkpoint(path_or_dir, config=config, training_checkpoint=training_checkpoint)
    return _build(
        contents.config,
        contents.state,
        device=torch.device(device),
        dtype=dtype,
        strict=strict,
        source=str(path_or_dir),
    )


def read_checkpoint(
    path_or_dir: str | os.PathLike[str],
    *,
    config: SanaWMConfig | None = None,
    training_checkpoint: bool = False,
) -> CheckpointContents:
    """The weights (our key names) and config of any format :func:`load_transformer` reads, without building
    the model; ``config`` overrides the stored config. The weights are not checked: see :func:`check_state`.
    """
    path = Path(path_or_dir)
    if not path.exists():
        raise InputError(f"checkpoint: {path} does not exist")
    if path.is_dir():
        state, stored = _read_diffusers_folder(path)
        kind, source = "diffusers", "config.json"
    elif training_checkpoint and path.suffix in _TRAINING_CHECKPOINT_SUFFIXES:
        return _read_training_checkpoint(path, config)
    else:
        state, stored, kind, source = _read_file(path, config)
    if config is not None:
        return CheckpointContents(state, config, "config=", kind)
    if stored is None:
        raise InputError(f"checkpoint: {path} has no config")
    return CheckpointContents(state, stored, source, kind)


def _read_training_checkpoint(path: Path, config: SanaWMConfig | None) -> CheckpointContents:
    from sana_wm.models.variants import sana_wm_streaming_1600m_720p

    generator = read_training_checkpoint(path)
    where = f"generator at {generator.where}" + (
        " (an EMA copy: the only generator in the file)" if generator.ema else ""
    )
    state = official_to_state_dict(generator.state)
    if config is not None:
        return CheckpointContents(state, config, "config=", "training checkpoint", where)
    found = _official_yaml_beside(path)
    if found is not None:
        return CheckpointContents(state, found[1], str(found[0]), "training checkpoint", where)
    source = (
        "the streaming release's (sana_wm_streaming_1600m_720p: release architecture, chunk_size 3); "
        "no config given and no config.yaml beside the file"
    )
    log.info("checkpoint %s: no config.yaml beside it; using %s", path, source)
    return CheckpointContents(state, sana_wm_streaming_1600m_720p(), source, "training checkpoint", where)


def _official_yaml_beside(path: Path) -> tuple[Path, SanaWMConfig] | None:
    """The official ``config.yaml`` beside ``path`` or in its parent folder (the Hugging Face layout)."""
    for folder in (path.parent, path.parent.parent):
        yaml_path = folder / "config.yaml"
        if yaml_path.is_file():
            import yaml  # PyYAML, only needed for official configs

            try:
                with open(yaml_path, encoding="utf-8") as handle:
                    data = yaml.safe_load(handle) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
                raise InputError(f"cannot read {yaml_path} ({' '.join(str(err).split())[:160]})") from None
            if not isinstance(data, dict):
                raise InputError(f"{yaml_path}: expected a mapping of sections, got {type(data).__name__}")
            return yaml_path, config_from_official_yaml(data)
    return None


def _read_file(
    path: Path, config: SanaWMConfig | None
) -> tuple[dict[str, torch.Tensor], SanaWMConfig | None, str, str]:
    """(state, stored config or None, kind, config source) of a single safetensors file."""
    if path.suffix in _TRAINING_CHECKPOINT_SUFFIXES:
        raise InputError(
            f"checkpoint: {path} is a pickle file; sana-wm reads safetensors only (a training checkpoint "
            "such as the streaming release's sana_dit/model.pt: run `sana-wm convert` on it once)"
        )
    if path.suffix in _PICKLE_SUFFIXES:
        raise InputError(
            f"checkpoint: {path} is a pickle file; sana-wm reads safetensors only (and, to convert them, "
            f"tensors-only torch checkpoints: {', '.join(_TRAINING_CHECKPOINT_SUFFIXES)})"
        )
    if path.suffix != ".safetensors":
        raise InputError(f"checkpoint: {path} is not a .safetensors file or a diffusers folder")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        reason = " ".join(str(err).split())[:200]
        raise InputError(f"cannot read {path} as safetensors ({reason})") from None
    if metadata.get(FORMAT_KEY) == FORMAT_NAME:
        return (
            state,
            SanaWMConfig.from_dict(json.loads(metadata[CONFIG_KEY])),
            "sana_wm",
            "stored in the file",
        )
    if config is not None:
        return official_to_state_dict(state), None, "official", "config="
    found = _official_yaml_beside(path)
    if found is not None:
        return official_to_state_dict(state), found[1], "official", str(found[0])
    raise InputError(
        f"checkpoint: {path} is an official checkpoint without a config.yaml beside it or in its parent "
        "folder; pass config="
    )


def _read_diffusers_folder(folder: Path) -> tuple[dict[str, torch.Tensor], SanaWMConfig]:
    if not (folder / "config.json").is_file() and (folder / "transformer" / "config.json").is_file():
        folder = folder / "transformer"
    if not (folder / "config.json").is_file():
        raise InputError(f"checkpoint: {folder} has no config.json (expected a diffusers model folder)")
    with open(folder / "config.json", encoding="utf-8") as handle:
        cfg = config_from_diffusers(json.load(handle))
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if len(indexes) > 1:
        raise InputError(
            f"checkpoint: {folder} has several safetensors indexes: {', '.join(p.name for p in indexes)}"
        )
    if indexes:
        with open(indexes[0], encoding="utf-8") as handle:
            shards = [folder / name for name in sorted(set(json.load(handle)["weight_map"].values()))]
    else:
        shards = sorted(folder.glob("*.safetensors"))
        if len(shards) > 1:
            names = ", ".join(p.name for p in shards)
            raise InputError(f"checkpoint: {folder} has several .safetensors files and no index: {names}")
    if not shards:
        pickled = [p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES]
        hint = f" (found {', '.join(pickled)}: convert to safetensors)" if pickled else ""
        raise InputError(f"checkpoint: {folder} has no .safetensors weights{hint}")
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        if not shard.is_file():
            raise InputError(f"checkpoint: shard {shard} listed in the index is missing")
        state.update(load_file(str(shard)))
    return state, cfg


def _first(names: list[str], count: int = 3) -> str:
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def mismatch_report(expected: dict[str, torch.Size], state: dict[str, torch.Tensor]) -> str:
    """One-line summary of missing / unexpected / shape-mismatched keys, of integer or boolean tensors where
    the model holds floating-point ones (and the reverse), and of non-finite values; empty when ``state``
    fits. ``expected`` maps each key to its shape, or to a tensor of the model's shape and dtype."""
    expected_tensors = {k: v for k, v in expected.items() if isinstance(v, torch.Tensor)}
    expected = {k: v.shape if isinstance(v, torch.Tensor) else v for k, v in expected.items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(expected[k])}"
        for k in expected
        if k in state and state[k].shape != expected[k]
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({_first(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} shape-mismatched ({_first(shapes)})")
    kinds = [
        f"{k} {str(state[k].dtype).removeprefix('torch.')} vs model {str(v.dtype).removeprefix('torch.')}"
        for k, v in expected_tensors.items()
        if k in state and state[k].is_floating_point() != v.is_floating_point()
    ]
    if kinds:
        parts.append(f"{len(kinds)} of the wrong dtype ({_first(kinds)})")
    non_finite = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if non_finite:
        parts.append(f"{len(non_finite)} holding NaN or infinity ({_first(non_finite)})")
    return "; ".join(parts)


def check_state(cfg: SanaWMConfig, state: dict[str, torch.Tensor], *, source: str) -> dict[str, torch.Tensor]:
    """``state`` checked strictly against the model ``cfg`` describes (built on the meta device: no memory),
    with the never-read ``attn.recall_gate`` buffers zero-filled where missing; any mismatch is one
    :class:`InputError` (:func:`mismatch_report`)."""
    state, _, report = _expected_and_report(cfg, state)
    if report:
        raise InputError(f"checkpoint {source}: {report}")
    return state


def _expected_and_report(
    cfg: SanaWMConfig, state: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], SanaWMTransformer, str]:
    with torch.device("meta"):
        model = SanaWMTransformer(cfg)
    expected = dict(model.state_dict())  # meta tensors: shapes and dtypes
    state = dict(state)
    for key in expected:
        if key.endswith("attn.recall_gate") and key not in state:
            state[key] = torch.zeros(expected[key].shape)
    return state, model, mismatch_report(expected, state)


def _build(
    cfg: SanaWMConfig,
    state: dict[str, torch.Tensor],
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    strict: bool,
    source: str,
) -> SanaWMTransformer:
    state, model, report = _expected_and_report(cfg, state)
    expected = dict(model.state_dict())
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    if not report:
        model.load_state_dict(state, strict=True, assign=True)
        return model.to(device)
    if strict:
        raise InputError(f"checkpoint {source}: {report} (pass strict=False to load only the matching keys)")
    model = SanaWMTransformer(cfg)
    fitting = {
        k: v
        for k, v in state.items()
        if k in expected
        and v.shape == expected[k].shape
        and v.is_floating_point() == expected[k].is_floating_point()
        and (not v.is_floating_point() or bool(torch.isfinite(v).all()))
    }
    model.load_state_dict(fitting, strict=False)
    return model.to(device=device, dtype=dtype)
