"""Where the chunk-causal weights come from: the streaming release and the chunk-causal teacher.

Two official Hugging Face repositories (or local folders with the same layout):

- ``Efficient-Large-Model/SANA-WM_streaming`` (the default): ``sana_dit/model.pt`` (the distilled streaming
  student inside its training checkpoint, read tensors-only), ``ltx2_causal_vae/`` (the causal LTX-2 VAE,
  diffusers format), ``refiner_diffusers/{transformer,connectors}`` (the chunk-causal refiner) and
  ``gemma3_12b/`` (the refiner's Gemma-3). Its config is not in the repository (it ships with the official
  code): without ``--config`` the streaming release's architecture is used (chunk_size 3, see
  :func:`sana_wm.models.variants.sana_wm_streaming_1600m_720p`).
- ``Efficient-Large-Model/SANA-WM_chunk_causal``: ``dit/sana_wm_chunk_causal_1600m_720p.safetensors`` with its
  ``config.yaml`` (the chunk-causal teacher). It has no causal VAE or refiner: those come from the streaming
  repository.

``model_path`` may name a repository (``hf://Efficient-Large-Model/SANA-WM_streaming``; a repository whose
name contains ``chunk_causal`` is read in the teacher's layout, any other in the streaming layout), a local
folder in either layout, or a single checkpoint (file or ``hf://`` URI) of any format the loader reads. A
repository or folder also supplies the default VAE, refiner and Gemma-3 when it holds them. Look-ups follow
:mod:`sana_wm.inference.weights`: local, then the Hugging Face cache, then the Hub, with every missing piece
reported at once (:class:`~sana_wm.inference.weights.MissingWeightsError`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sana_wm.errors import InputError
from sana_wm.inference.weights import (
    DEFAULT_TEXT_ENCODER_PATH,
    Fetcher,
    MissingWeightsError,
    RefinerPaths,
    is_hf_uri,
    load_transformer_weights,
    looks_like_path,
    resolve_refiner_weights,
    split_hf_uri,
)

if TYPE_CHECKING:
    import torch

    from sana_wm.models import SanaWMConfig, SanaWMTransformer

STREAMING_REPO = "Efficient-Large-Model/SANA-WM_streaming"
CHUNK_CAUSAL_REPO = "Efficient-Large-Model/SANA-WM_chunk_causal"
STREAMING_MODEL_FILE = "sana_dit/model.pt"
CHUNK_CAUSAL_MODEL_FILE = "dit/sana_wm_chunk_causal_1600m_720p.safetensors"
CAUSAL_VAE_FOLDER = "ltx2_causal_vae"
STREAMING_REFINER_FOLDER = "refiner_diffusers"
STREAMING_GEMMA_FOLDER = "gemma3_12b"
DEFAULT_STREAMING_ROOT = f"hf://{STREAMING_REPO}"


@dataclass(frozen=True)
class StreamingPaths:
    """Local paths of the chunk-causal pipeline's parts, all existing.

    Attributes:
        model: stage-1 checkpoint: the streaming training checkpoint (``.pt``), a ``.safetensors`` file
            (official chunk-causal or ours) or a diffusers folder.
        config: an official ``config.yaml`` (or our / diffusers JSON) for it, or None (the checkpoint carries
            its config; a bare training checkpoint gets the streaming release's).
        vae: the causal LTX-2 VAE folder (``config.json`` + weights).
        text_encoder: the stage-1 Gemma-2 folder with its tokenizer.
        refiner: the chunk-causal refiner's folders, or None when not asked for.
    """

    model: Path
    config: Path | None
    vae: Path
    text_encoder: Path
    refiner: RefinerPaths | None


@dataclass(frozen=True)
class _Layout:
    """Where the parts of a repository (``hf://`` prefix) or local folder are; None: not in it."""

    model: str
    config: str | None
    vae: str | None
    refiner: str | None
    gemma: str | None


def resolve_streaming_weights(
    model_path: str | os.PathLike[str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    vae_path: str | os.PathLike[str] | None = None,
    text_encoder_path: str | os.PathLike[str] | None = None,
    refiner: bool = True,
    refiner_checkpoint: str | os.PathLike[str] | None = None,
    refiner_gemma_root: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
) -> StreamingPaths:
    """Turn the weight arguments (None = the streaming release) into existing local paths (module docstring).

    ``config`` overrides the repository's ``config.yaml`` (a preset name is left to the caller and resolves to
    None here, as in :func:`~sana_wm.inference.weights.resolve_weights`). ``local_files_only`` None follows
    ``HF_HUB_OFFLINE``.

    Raises:
        MissingWeightsError: one line per piece that is neither local nor cached nor downloadable, stage 1's
            first.
        InputError: a malformed ``hf://`` URI, or a local folder in neither layout.
    """
    fetcher = Fetcher(offline=bool(local_files_only))
    layout = _layout(model_path if model_path is not None else DEFAULT_STREAMING_ROOT)
    model = fetcher.file(layout.model, "--model_path")
    config_path = None
    if config is not None and (is_hf_uri(config) or looks_like_path(config)):
        config_path = fetcher.file(config, "--config")
    elif config is None and layout.config is not None:
        config_path = fetcher.file(layout.config, "--config")
    vae_default = layout.vae or f"{DEFAULT_STREAMING_ROOT}/{CAUSAL_VAE_FOLDER}"
    vae = fetcher.folder(vae_path or vae_default, "--vae_path", subfolder=CAUSAL_VAE_FOLDER)
    text_encoder = fetcher.folder(text_encoder_path or DEFAULT_TEXT_ENCODER_PATH, "--text_encoder_path")
    missing = list(fetcher.missing)
    refiner_paths = None
    if refiner:
        try:
            refiner_paths = resolve_refiner_weights(
                refiner_checkpoint
                or layout.refiner
                or f"{DEFAULT_STREAMING_ROOT}/{STREAMING_REFINER_FOLDER}",
                refiner_gemma_root or layout.gemma or f"{DEFAULT_STREAMING_ROOT}/{STREAMING_GEMMA_FOLDER}",
                local_files_only=fetcher.offline,
            )
        except MissingWeightsError as err:
            missing += err.missing
    if missing:
        raise MissingWeightsError(missing)
    assert model is not None and vae is not None and text_encoder is not None
    return StreamingPaths(model, config_path, vae, text_encoder, refiner_paths)


def load_streaming_transformer(
    paths: StreamingPaths,
    config: SanaWMConfig | str | os.PathLike[str] | None,
    device: torch.device,
    dtype: torch.dtype,
) -> SanaWMTransformer:
    """The chunk-causal stage-1 transformer of ``paths`` in eval mode (a training checkpoint read
    tensors-only). ``config`` (a config, preset name or file) overrides ``paths.config``.

    Raises:
        InputError: unreadable or mismatched weights, or a bidirectional model (streaming needs chunk-causal
            weights and config).
    """
    from sana_wm.models import SanaWMConfig
    from sana_wm.models.convert import read_config_file

    cfg = None
    if isinstance(config, SanaWMConfig):
        cfg = config
    elif config is not None and not is_hf_uri(config) and not looks_like_path(config):
        cfg = read_config_file(config)[0]  # a preset name
    elif paths.config is not None:
        cfg = read_config_file(paths.config)[0]
    model = load_transformer_weights(paths.model, cfg, device, dtype, training_checkpoint=True)
    if not model.config.chunk_causal:
        raise InputError(
            f"--model_path: {paths.model} is a bidirectional model; streaming needs a chunk-causal one "
            "(a config with chunk_size, e.g. the SANA-WM_streaming or SANA-WM_chunk_causal release)"
        )
    return model


def _layout(value: str | os.PathLike[str]) -> _Layout:
    """The parts of the repository or folder ``value``, or a lone checkpoint (file, ``hf://`` file URI)."""
    if is_hf_uri(value):
        repo, _, _, path = split_hf_uri(value, "--model_path")
        if path:
            return _Layout(str(value), None, None, None, None)
        base = str(value).rstrip("/")
        if "chunk_causal" in repo.lower():
            return _Layout(f"{base}/{CHUNK_CAUSAL_MODEL_FILE}", f"{base}/config.yaml", None, None, None)
        return _Layout(
            f"{base}/{STREAMING_MODEL_FILE}",
            None,
            f"{base}/{CAUSAL_VAE_FOLDER}",
            f"{base}/{STREAMING_REFINER_FOLDER}",
            f"{base}/{STREAMING_GEMMA_FOLDER}",
        )
    root = Path(value).expanduser()
    if not root.is_dir() or (root / "config.json").is_file() or (root / "transformer").is_dir():
        return _Layout(str(root), None, None, None, None)  # a file, or a diffusers model / pipeline folder
    parts = {
        "vae": root / CAUSAL_VAE_FOLDER,
        "refiner": root / STREAMING_REFINER_FOLDER,
        "gemma": root / STREAMING_GEMMA_FOLDER,
    }
    found = {name: str(path) if path.is_dir() else None for name, path in parts.items()}
    if (root / STREAMING_MODEL_FILE).is_file():
        model = root / STREAMING_MODEL_FILE
    else:
        weights = sorted((root / "dit").glob("*.safetensors"))
        if len(weights) != 1:
            raise InputError(
                f"--model_path: {root} holds neither {STREAMING_MODEL_FILE} nor one dit/*.safetensors "
                f"(found {len(weights)}); pass the checkpoint file"
            )
        model = weights[0]
    config = str(root / "config.yaml") if (root / "config.yaml").is_file() else None
    return _Layout(str(model), config, found["vae"], found["refiner"], found["gemma"])
