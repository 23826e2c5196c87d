"""Load and save the SANA-WM transformer from safetensors (never pickle).

Three formats are read by :func:`load_transformer`:

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
    metadata.

Loading is strict by default: any missing, unexpected or wrongly shaped key raises one :class:`InputError`
listing counts and the first names (the official loader only warns and silently keeps random weights). The
only tolerated gap is a missing ``attn.recall_gate`` buffer (always zero, never read), which is zero-filled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from sana_wm.errors import InputError
from sana_wm.models.config import SanaWMConfig, config_from_diffusers, config_from_official_yaml
from sana_wm.models.dit import SanaWMTransformer
from sana_wm.utils.atomic import atomic_output

FORMAT_KEY = "format"
FORMAT_NAME = "sana_wm"
CONFIG_KEY = "sana_wm_config"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")
_OFFICIAL_DROPPED = ("pos_embed", "y_embedder.y_embedding")
_OFFICIAL_RENAMES = (
    ("t_embedder.mlp.0.", "t_embedder.linear_1."),
    ("t_embedder.mlp.2.", "t_embedder.linear_2."),
)


def save_transformer(model: SanaWMTransformer, path: str | os.PathLike[str]) -> None:
    """Write ``model``'s weights and config to one safetensors file (atomically)."""
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    metadata = {FORMAT_KEY: FORMAT_NAME, CONFIG_KEY: json.dumps(model.config.to_dict())}
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


def load_transformer(
    path_or_dir: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    strict: bool = True,
    config: SanaWMConfig | None = None,
) -> SanaWMTransformer:
    """Load a transformer from an official file, a diffusers folder or our own file (see module docstring).

    ``dtype`` casts every floating tensor (None keeps the stored dtypes); ``config`` overrides the stored
    config. With ``strict=False`` mismatching keys are skipped and the rest of the model keeps its
    initialisation.
    """
    path = Path(path_or_dir)
    if not path.exists():
        raise InputError(f"checkpoint: {path} does not exist")
    if path.is_dir():
        state, stored = _read_diffusers_folder(path)
    else:
        state, stored = _read_file(path, config)
    cfg = config or stored
    if cfg is None:
        raise InputError(f"checkpoint: {path} has no config")
    return _build(cfg, state, device=torch.device(device), dtype=dtype, strict=strict, source=str(path))


def _read_file(
    path: Path, config: SanaWMConfig | None
) -> tuple[dict[str, torch.Tensor], SanaWMConfig | None]:
    if path.suffix in _PICKLE_SUFFIXES:
        raise InputError(
            f"checkpoint: {path} is a pickle file; sana-wm reads safetensors only (convert it to "
            ".safetensors with torch.load + safetensors.torch.save_file in a trusted environment)"
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
        return state, SanaWMConfig.from_dict(json.loads(metadata[CONFIG_KEY]))
    if config is not None:
        return official_to_state_dict(state), None
    for folder in (path.parent, path.parent.parent):
        yaml_path = folder / "config.yaml"
        if yaml_path.is_file():
            import yaml  # PyYAML, only needed for official configs

            with open(yaml_path, encoding="utf-8") as handle:
                return official_to_state_dict(state), config_from_official_yaml(yaml.safe_load(handle) or {})
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


def _build(
    cfg: SanaWMConfig,
    state: dict[str, torch.Tensor],
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    strict: bool,
    source: str,
) -> SanaWMTransformer:
    with torch.device("meta"):
        model = SanaWMTransformer(cfg)
    expected = dict(model.state_dict())  # meta tensors: shapes and dtypes
    for key in expected:
        if key.endswith("attn.recall_gate") and key not in state:
            state[key] = torch.zeros(expected[key].shape)
    report = mismatch_report(expected, state)
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
