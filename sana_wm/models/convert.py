"""Convert a checkpoint the loader reads (official, diffusers, ours, a training checkpoint) into our format.

``sana-wm convert`` calls :func:`convert_checkpoint`: the weights are read (a training checkpoint such as the
streaming release's ``sana_dit/model.pt`` tensors-only, see :mod:`sana_wm.models.training_checkpoint`),
renamed to our keys, checked strictly against the config's model (built on the meta device, so no second
copy of the weights is made) and written with the config in the safetensors metadata. The result loads
anywhere with ``load_transformer(path)`` and no config.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sana_wm.errors import InputError
from sana_wm.models.checkpoint_io import check_state, read_checkpoint, save_state_dict
from sana_wm.models.config import SanaWMConfig, config_from_diffusers, config_from_official_yaml
from sana_wm.models.variants import PRESETS, preset
from sana_wm.utils.atomic import check_output_file


@dataclass(frozen=True)
class ConversionSummary:
    """What :func:`convert_checkpoint` wrote.

    Attributes:
        out: the written file.
        tensors: number of tensors.
        dtypes: tensor count per dtype name (e.g. ``{"bfloat16": 872}``).
        nbytes: bytes of tensor data.
        config: the config stored with the weights.
        config_source: where the config came from (a file, a preset, the checkpoint, or the default).
        kind: the input's format (``"training checkpoint"``, ``"official"``, ``"diffusers"``, ``"sana_wm"``).
        detail: a note on the input (for a training checkpoint, where the generator was found).
    """

    out: Path
    tensors: int
    dtypes: dict[str, int]
    nbytes: int
    config: SanaWMConfig
    config_source: str
    kind: str
    detail: str


def convert_checkpoint(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | SanaWMConfig | None = None,
    chunk_size: int | None = None,
) -> ConversionSummary:
    """Read ``src``, check it strictly and write it to ``out`` (``.safetensors``, atomically) in our format.

    ``config`` (a config file or preset name, see :func:`read_config_file`, or a config) overrides what the
    checkpoint carries or has beside it; ``chunk_size`` then overrides the config's chunk size (a training
    checkpoint without any config gets the streaming release's: chunk_size 3).

    Raises:
        InputError: unreadable input, a pickle that needs more than tensors, a config that does not fit the
            weights (one line listing missing / unexpected / mismatched keys), a bad ``out`` or
            ``chunk_size``.
    """
    out = check_output_file(out, "--out", suffix=".safetensors")
    if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
        raise InputError(f"--chunk_size: expected a positive integer, got {chunk_size}")
    cfg, cfg_source = (config, "config=") if isinstance(config, SanaWMConfig) else (None, "")
    if config is not None and cfg is None:
        cfg, cfg_source = read_config_file(config)
    if Path(src).resolve() == out.resolve():
        raise InputError(f"--out: {out} is the input file")
    contents = read_checkpoint(src, config=cfg, training_checkpoint=True)
    cfg = contents.config
    source = cfg_source or contents.config_source
    if chunk_size is not None and chunk_size != cfg.chunk_size:
        cfg = dataclasses.replace(cfg, chunk_size=chunk_size)
        source = f"{source}, chunk_size {chunk_size} from --chunk_size"
    state = check_state(cfg, contents.state, source=str(src))
    save_state_dict(state, cfg, out)
    dtypes = Counter(str(v.dtype).removeprefix("torch.") for v in state.values())
    return ConversionSummary(
        out=out,
        tensors=len(state),
        dtypes=dict(dtypes.most_common()),
        nbytes=sum(v.numel() * v.element_size() for v in state.values()),
        config=cfg,
        config_source=source,
        kind=contents.kind,
        detail=contents.detail,
    )


def read_config_file(value: str | os.PathLike[str]) -> tuple[SanaWMConfig, str]:
    """A config named by ``value`` and a description of it: a preset name, an official ``config.yaml``
    (``.yaml``/``.yml``), or a ``.json`` holding our config (``SanaWMConfig.to_dict()``) or a diffusers
    ``config.json``. Errors name ``--config``."""
    text = str(value)
    if text in PRESETS and not Path(text).exists():
        return preset(text), f"preset {text}"
    path = Path(text).expanduser()
    if not path.is_file():
        raise InputError(f"--config: {text} is neither a file nor a preset ({', '.join(PRESETS)})")
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise InputError(f"--config: {path} must be a .yaml (official) or .json (ours or diffusers) file")
    import yaml  # PyYAML, only needed for official configs

    try:
        raw = path.read_text(encoding="utf-8")
        data = json.loads(raw) if suffix == ".json" else yaml.safe_load(raw) or {}
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:  # ValueError: bad JSON
        raise InputError(f"--config: cannot read {path} ({' '.join(str(err).split())[:160]})") from None
    if not isinstance(data, dict):
        raise InputError(f"--config: {path} holds a {type(data).__name__}, not a mapping")
    if suffix != ".json":
        return config_from_official_yaml(data), str(path)
    if "_class_name" in data or "num_layers" in data:
        return config_from_diffusers(data), str(path)
    return SanaWMConfig.from_dict(data), str(path)
