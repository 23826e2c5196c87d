"""Hand our weights to other tools: a diffusers folder or the official single file (``sana-wm export``).

Two formats, each read back by ``--model_path`` (:func:`sana_wm.models.checkpoint_io.load_transformer`):

- ``diffusers``: ``config.json`` + ``diffusion_pytorch_model.safetensors`` that diffusers'
  ``SanaWMTransformer3DModel.from_pretrained`` loads (same keys as ours; the config through
  :func:`~sana_wm.models.config.config_to_diffusers`). When the source has more than the transformer (the
  demo model's VAE, or ``--vae_path`` / ``--text_encoder_path`` / the whole ``--official`` release) the
  folder is a ``SanaWMPipeline`` root instead: ``model_index.json``, ``transformer/``, ``vae/`` and
  ``scheduler/`` (``FlowMatchEulerDiscreteScheduler`` with the model's flow shift), plus ``text_encoder/`` and
  ``tokenizer/`` when the source has a Gemma-2 folder. Components the source lacks are ``[null, null]`` in
  ``model_index.json`` and named in the folder's ``README.md`` (the demo model has no text encoder: it is
  prompt-free, so diffusers takes ``prompt_embeds`` of zeros, see :func:`_readme`). The VAE and text encoder
  are copied byte for byte.
- ``official``: ``dit/<name>.safetensors`` under the official key names (no prefix, ``t_embedder.mlp.0/2``;
  :func:`~sana_wm.models.checkpoint_io.state_dict_to_official`) and ``config.yaml`` beside ``dit/``, as the
  Hugging Face release lays them out. Only sizes of the official registry can be written
  (:func:`~sana_wm.models.config.official_model_name`): the official code builds its model from that name.

The weights are checked strictly against their config before anything is written, everything is written
into a temporary folder beside ``out`` and renamed into place at the end: a failed export leaves no folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from sana_wm.errors import InputError
from sana_wm.inference.source import ModelSource
from sana_wm.models.checkpoint_io import check_state, read_checkpoint, save_tensors, state_dict_to_official
from sana_wm.models.config import SanaWMConfig, config_to_diffusers, config_to_official_yaml
from sana_wm.utils.atomic import check_output_folder

FORMATS = ("diffusers", "official")
log = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype | None] = {
    "keep": None,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
_MODEL_FILES = ("config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
)


@dataclass(frozen=True)
class Components:
    """What an export reads: the transformer file or folder, its config (None: it carries its own), the
    VAE and Gemma-2 folders when the source has them, the sampler's flow shift and a description."""

    model: Path
    config: SanaWMConfig | None
    vae: Path | None
    text_encoder: Path | None
    flow_shift: float
    description: str
    demo_dir: Path | None = None


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_model` wrote: the folder, its layout (``"transformer"``, ``"pipeline"`` or
    ``"official"``), its files (relative paths), the transformer's tensor count and bytes, its config,
    and each pipeline component's state (``"written"``, ``"copied from ..."`` or why it is absent)."""

    out: Path
    layout: str
    files: list[str]
    tensors: int
    nbytes: int
    config: SanaWMConfig
    source: str
    components: dict[str, str] = field(default_factory=dict)


def export_model(
    source: ModelSource,
    out: str | os.PathLike[str],
    *,
    fmt: str = "diffusers",
    dtype: str = "keep",
) -> ExportSummary:
    """Write ``source``'s transformer (and, for ``diffusers``, its other components) to the new folder
    ``out`` in ``fmt``; ``dtype`` casts the floating-point weights (``"keep"``: as stored).

    Raises:
        InputError: an unknown format or dtype, an ``out`` that exists and is not an empty folder, missing
            or mismatched weights, a size the official registry lacks (``official``); nothing is written.
        MissingWeightsError: weights neither local nor cached nor downloadable.
    """
    if fmt not in FORMATS:
        raise InputError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if dtype not in DTYPES:
        raise InputError(f"--dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    out = _check_out(Path(out))
    parts = resolve_components(source)
    try:
        contents = read_checkpoint(parts.model, config=parts.config)
        state = check_state(contents.config, contents.state, source=str(parts.model))
    except InputError as err:
        raise InputError(f"--model_path: {err}") from None
    cfg = contents.config
    if fmt == "diffusers" and cfg.chunk_causal:
        log.warning(
            "a chunk-causal model: diffusers 0.42.1 has no chunk-causal mode and runs it bidirectionally; "
            "sana-wm reads the folder back chunk-causal (_sana_wm_chunk_size in config.json)"
        )
    if DTYPES[dtype] is not None:
        state = {k: v.to(DTYPES[dtype]) if v.is_floating_point() else v for k, v in state.items()}
    official_yaml = config_to_official_yaml(cfg) if fmt == "official" else None  # refuses before writing
    with _staged_folder(out) as tmp:
        if official_yaml is not None:
            layout, components = "official", _write_official(tmp, state, cfg, official_yaml)
        elif parts.vae is None and parts.text_encoder is None and parts.demo_dir is None:
            layout, components = "transformer", {}
            _write_diffusers_transformer(tmp, state, cfg)
        else:
            layout, components = "pipeline", _write_pipeline(tmp, state, cfg, parts)
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    return ExportSummary(
        out=out,
        layout=layout,
        files=files,
        tensors=len(state),
        nbytes=sum(v.numel() * v.element_size() for v in state.values()),
        config=cfg,
        source=parts.description,
        components=components,
    )


def resolve_components(source: ModelSource) -> Components:
    """The local files of ``source``: the demo model's, or the release's with the pieces named (the whole
    release, downloaded into the Hugging Face cache if needed, when no weight flag is given). A release
    source with only ``--model_path`` exports the transformer alone."""
    if source.demo_dir is not None:
        from sana_wm.inference.demo_model import TRANSFORMER_FILE, VAE_SUBFOLDER, read_demo_settings

        settings = read_demo_settings(source.demo_dir)
        return Components(
            model=source.demo_dir / TRANSFORMER_FILE,
            config=None,
            vae=source.demo_dir / VAE_SUBFOLDER,
            text_encoder=None,
            flow_shift=settings.flow_shift,
            description=f"the demo model in {source.demo_dir}",
            demo_dir=source.demo_dir,
        )
    from sana_wm.inference import weights
    from sana_wm.inference.request import DEFAULT_FLOW_SHIFT

    whole = source.model_path is None and source.vae_path is None and source.text_encoder_path is None
    fetcher = weights.Fetcher(offline=False)
    model = fetcher.file(source.model_path or weights.DEFAULT_MODEL_PATH, "--model_path")
    config_path = None
    if source.config is None and source.model_path is None:
        config_path = fetcher.file(weights.DEFAULT_CONFIG, "--config")
    elif source.config is not None and (
        weights.is_hf_uri(source.config) or weights.looks_like_path(source.config)
    ):
        config_path = fetcher.file(source.config, "--config")
    vae = text_encoder = None
    if whole or source.vae_path is not None:
        vae = fetcher.folder(source.vae_path or weights.DEFAULT_VAE_PATH, "--vae_path", subfolder="vae")
    if whole or source.text_encoder_path is not None:
        text_encoder = fetcher.folder(
            source.text_encoder_path or weights.DEFAULT_TEXT_ENCODER_PATH, "--text_encoder_path"
        )
    if fetcher.missing:
        raise weights.MissingWeightsError(fetcher.missing)
    assert model is not None
    return Components(
        model=model,
        config=weights.model_config(source.config, config_path),
        vae=vae,
        text_encoder=text_encoder,
        flow_shift=DEFAULT_FLOW_SHIFT,
        description="the released SANA-WM" if whole else str(model),
    )


def _check_out(out: Path) -> Path:
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise InputError(f"--out: {out} exists and is not an empty folder; choose a new folder")
    return check_output_folder(out, "--out")


@contextlib.contextmanager
def _staged_folder(out: Path) -> Iterator[Path]:
    """A new temporary folder beside ``out``, renamed to ``out`` when the block succeeds, removed if not."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        mask = _umask()  # mkdtemp / mkstemp make owner-only entries: give them plain mkdir / open permissions
        tmp.chmod(0o777 & ~mask)
        for path in tmp.rglob("*"):
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
        if out.is_dir():
            out.rmdir()  # empty: checked before the work began
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_diffusers_transformer(folder: Path, state: dict[str, torch.Tensor], cfg: SanaWMConfig) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    config = {**config_to_diffusers(cfg), "_diffusers_version": version("diffusers")}
    _write_json(folder / "config.json", config)
    save_tensors(state, folder / WEIGHTS_FILE, metadata={"format": "pt"})


def _write_pipeline(
    folder: Path, state: dict[str, torch.Tensor], cfg: SanaWMConfig, parts: Components
) -> dict[str, str]:
    """The ``SanaWMPipeline`` root; returns each component's state for the summary and the README."""
    _write_diffusers_transformer(folder / "transformer", state, cfg)
    components = {"transformer": "written", "scheduler": f"written (flow shift {parts.flow_shift:g})"}
    index: dict[str, Any] = {
        "_class_name": "SanaWMPipeline",
        "_diffusers_version": version("diffusers"),
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "transformer": ["diffusers", "SanaWMTransformer3DModel"],
    }
    scheduler = {
        "_class_name": "FlowMatchEulerDiscreteScheduler",
        "_diffusers_version": version("diffusers"),
        "num_train_timesteps": 1000,
        "shift": parts.flow_shift,
    }
    _write_json(folder / "scheduler" / "scheduler_config.json", scheduler)
    if parts.vae is not None:
        _copy(parts.vae, folder / "vae", _MODEL_FILES)
        index["vae"] = ["diffusers", "AutoencoderKLLTX2Video"]
        components["vae"] = f"copied from {parts.vae}"
    else:
        index["vae"] = [None, None]
        components["vae"] = "absent: no --vae_path given"
    if parts.text_encoder is not None:
        # The tokenizer also stays beside Gemma-2: --text_encoder_path <out>/text_encoder reads one folder.
        _copy(parts.text_encoder, folder / "text_encoder", _MODEL_FILES + _TOKENIZER_FILES)
        _copy(parts.text_encoder, folder / "tokenizer", _TOKENIZER_FILES)
        index["text_encoder"] = [
            "transformers",
            _json_field(parts.text_encoder / "config.json", "architectures"),
        ]
        index["tokenizer"] = ["transformers", _json_field(folder / "tokenizer" / "tokenizer_config.json")]
        components["text_encoder"] = components["tokenizer"] = f"copied from {parts.text_encoder}"
    else:
        index["text_encoder"] = index["tokenizer"] = [None, None]
        why = (
            "absent: the demo model is prompt-free (null caption)"
            if parts.demo_dir is not None
            else "absent: no --text_encoder_path given"
        )
        components["text_encoder"] = components["tokenizer"] = why
    _write_json(folder / "model_index.json", index)
    if parts.demo_dir is not None:
        from sana_wm.inference.demo_model import MODEL_CARD_FILE

        if (parts.demo_dir / MODEL_CARD_FILE).is_file():
            shutil.copyfile(parts.demo_dir / MODEL_CARD_FILE, folder / MODEL_CARD_FILE)
    (folder / "README.md").write_text(_readme(cfg, parts, components), encoding="utf-8")
    return components


def _write_official(
    folder: Path, state: dict[str, torch.Tensor], cfg: SanaWMConfig, official_yaml: dict[str, Any]
) -> dict[str, str]:
    import yaml

    text = official_yaml["text_encoder"]
    if text.get("text_encoder_name") == "gemma-2-2b-it":
        from sana_wm.text_encoder import CHI_PROMPT

        text["chi_prompt"] = list(CHI_PROMPT)
    model = official_yaml["model"]["model"]
    size = model.split("_")[1].lower()  # SanaMSVideoCamCtrl_1600M_P1_D20 -> 1600m
    name = f"sana_wm{'_chunk_causal' if cfg.chunk_causal else ''}_{size}_720p.safetensors"
    (folder / "dit").mkdir()
    save_tensors(state_dict_to_official(state), folder / "dit" / name, metadata={"format": "pt"})
    with open(folder / "config.yaml", "w", encoding="utf-8") as handle:
        yaml.safe_dump(official_yaml, handle, sort_keys=False, allow_unicode=True, width=1000)
    return {"dit": f"dit/{name} ({model})", "config": "config.yaml"}


def _copy(src: Path, dst: Path, patterns: tuple[str, ...]) -> None:
    """Files of ``src`` matching ``patterns`` into ``dst``, byte for byte (Hugging Face cache links
    followed)."""
    dst.mkdir(parents=True, exist_ok=True)
    found = sorted({p for pattern in patterns for p in src.glob(pattern) if p.is_file()})
    if not found:
        raise InputError(f"export: {src} holds none of {', '.join(patterns)}")
    for path in found:
        shutil.copyfile(path, dst / path.name)


def _json_field(path: Path, key: str = "tokenizer_class") -> str:
    """A transformers class name recorded in ``path`` (the first of a list); a readable error if not."""
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError) as err:
        raise InputError(f"export: cannot read {path} ({' '.join(str(err).split())[:120]})") from None
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str):
        raise InputError(f"export: {path} names no {key}")
    return value


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _readme(cfg: SanaWMConfig, parts: Components, components: dict[str, str]) -> str:
    lines = [
        "# SANA-WM in the diffusers layout (written by `sana-wm export`)",
        "",
        f"Source: {parts.description}. Transformer: depth {cfg.depth}, width {cfg.hidden_size}, "
        f"{'chunk-causal, chunk_size ' + str(cfg.chunk_size) if cfg.chunk_causal else 'bidirectional'}."
        + (
            " diffusers 0.42.1 has no chunk-causal mode: it runs these weights bidirectionally."
            if cfg.chunk_causal
            else ""
        ),
        "",
        "| component | state |",
        "| --- | --- |",
        *(f"| {name} | {state} |" for name, state in components.items()),
        "",
        "Load the transformer alone with `SanaWMTransformer3DModel.from_pretrained(folder, subfolder="
        '"transformer")`, or back into sana-wm with `--model_path <folder>` (and `--vae_path <folder>`, '
        "`--text_encoder_path <folder>/text_encoder` where they are here).",
    ]
    if parts.text_encoder is None:
        lines += [
            "",
            "No text encoder or tokenizer: load the pipeline with `SanaWMPipeline.from_pretrained(folder, "
            "text_encoder=None, tokenizer=None)` and pass the text features yourself "
            "(`prompt_embeds` of shape (1, 1, L, "
            f"{cfg.caption_channels}) with `prompt_attention_mask` (1, L), and the negative pair).",
        ]
    if parts.demo_dir is not None:
        lines += [
            "",
            "The demo model is prompt-free: it was trained on the null caption, all-zero features of one "
            "token, with `guidance_scale=1`. diffusers 0.42.1 cannot take a one-token mask, so pass that "
            f"token plus a masked padding token, which gets no weight: `prompt_embeds = torch.zeros(1, 1, 2, "
            f"{cfg.caption_channels})`, `prompt_attention_mask = torch.tensor([[1, 0]])`, the same for the "
            "negative pair. Its camera, size and step settings are in MODEL_CARD.md; the scheduler's shift "
            "is its flow shift.",
        ]
    return "\n".join(lines) + "\n"
