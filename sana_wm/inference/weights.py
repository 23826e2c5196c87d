"""Where weights come from: local paths, ``hf://`` URIs, or the official release in the Hugging Face cache.

Components and their defaults (the public release; files land in the normal Hugging Face cache, ``HF_HOME``):

- stage-1 transformer ``--model_path``: ``hf://Efficient-Large-Model/SANA-WM_bidirectional/dit/
  sana_wm_1600m_720p.safetensors`` with its ``config.yaml`` (``--config``) from the same repository;
- VAE ``--vae_path``: the ``vae/`` folder of that repository (diffusers ``AutoencoderKLLTX2Video`` format);
- text encoder ``--text_encoder_path``: ``hf://Efficient-Large-Model/gemma-2-2b-it`` (tokenizer + Gemma-2);
- stage-2 refiner ``--refiner_checkpoint`` / ``--refiner_gemma_root``: the release's ``refiner/`` folder
  (:func:`resolve_two_stage_weights` looks both stages up and reports what is missing of either).

The streaming release and the chunk-causal teacher: :mod:`sana_wm.inference.streaming_weights`.

Each argument is a local path or an ``hf://[<type>s/]<namespace>/<name>[@<revision>][/<path>]`` URI. The cache
is tried first, so a cached release runs without any network access. When something is neither local nor
cached and cannot be downloaded (``HF_HUB_OFFLINE=1``, no connection, no access), :func:`resolve_weights`
raises :class:`MissingWeightsError` listing EVERY missing piece, one line each, with the flag that supplies a
local copy. After the first connection failure the remaining pieces are looked up in the cache only, so an
offline machine pays the Hub client's retry delays once.

:func:`model_config` and :func:`load_transformer_weights` turn the resolved transformer files into a model.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sana_wm.errors import InputError

if TYPE_CHECKING:
    import torch

    from sana_wm.models import SanaWMConfig, SanaWMTransformer

log = logging.getLogger(__name__)

OFFICIAL_REPO = "Efficient-Large-Model/SANA-WM_bidirectional"
TEXT_ENCODER_REPO = "Efficient-Large-Model/gemma-2-2b-it"
DEFAULT_MODEL_PATH = f"hf://{OFFICIAL_REPO}/dit/sana_wm_1600m_720p.safetensors"
DEFAULT_CONFIG = f"hf://{OFFICIAL_REPO}/config.yaml"
DEFAULT_VAE_PATH = f"hf://{OFFICIAL_REPO}/vae"
DEFAULT_TEXT_ENCODER_PATH = f"hf://{TEXT_ENCODER_REPO}"
DEFAULT_REFINER_CHECKPOINT = f"hf://{OFFICIAL_REPO}/refiner"
DEFAULT_REFINER_GEMMA_ROOT = f"hf://{OFFICIAL_REPO}/refiner/text_encoder"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")

# What a text-encoder or VAE folder must hold; other files in the repos (pickles, GGUF, ...) are not fetched.
_FOLDER_PATTERNS = ("*.json", "*.safetensors", "tokenizer.model")


@dataclass(frozen=True)
class Missing:
    """One weight file or folder that could not be found. ``line()`` is the user-facing message.

    ``source`` is the Hub repository, or None for a local path given by the user.
    """

    what: str
    source: str | None
    flag: str
    kind: str
    reason: str = ""

    def line(self) -> str:
        if self.source is None:
            return f"{self.flag}: no such file or folder: {self.what}"
        why = f" ({self.reason})" if self.reason else ""
        return f"missing {self.what} from {self.source}{why}: pass {self.flag} {self.kind}"


class MissingWeightsError(InputError):
    """Some weights are unavailable: ``str(err)`` has one line per missing piece, ``err.missing`` the list."""

    def __init__(self, missing: list[Missing]) -> None:
        super().__init__("\n".join(m.line() for m in missing))
        self.missing = missing


@dataclass(frozen=True)
class WeightPaths:
    """Local paths of every component, all existing.

    Attributes:
        model: transformer checkpoint: a ``.safetensors`` file (official or ours) or a diffusers folder.
        config: an official ``config.yaml`` for the transformer, or None to use what the checkpoint carries.
        vae: a diffusers ``AutoencoderKLLTX2Video`` folder (``config.json`` + weights).
        text_encoder: a transformers folder holding the Gemma-2 weights and its tokenizer.
    """

    model: Path
    config: Path | None
    vae: Path
    text_encoder: Path


def is_hf_uri(value: str | os.PathLike[str]) -> bool:
    return str(value).startswith("hf://")


def resolve_weights(
    model_path: str | os.PathLike[str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    vae_path: str | os.PathLike[str] | None = None,
    text_encoder_path: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    fetcher: Fetcher | None = None,
) -> WeightPaths:
    """Turn the four weight arguments (None = the official release) into existing local paths.

    ``config`` is only fetched by default together with the default ``model_path`` (an official checkpoint
    needs it); a ``config`` that is not a path or URI (a preset name such as ``"tiny"``) is left to the caller
    and resolves to None here. ``local_files_only`` None follows ``HF_HUB_OFFLINE``. ``fetcher`` (default: a
    new one) is the look-up state to use: its ``missing`` list collects this call's misses, its ``offline``
    tells the caller whether later look-ups should skip the network.

    Raises:
        MissingWeightsError: one line per piece that is neither local nor cached nor downloadable.
        InputError: a malformed ``hf://`` URI.
    """
    if fetcher is None:
        fetcher = Fetcher(offline=bool(local_files_only))
    model = fetcher.file(model_path or DEFAULT_MODEL_PATH, "--model_path")
    config_path = None
    if config is None and model_path is None:
        config_path = fetcher.file(DEFAULT_CONFIG, "--config")
    elif config is not None and (is_hf_uri(config) or looks_like_path(config)):
        config_path = fetcher.file(config, "--config")
    vae = fetcher.folder(vae_path or DEFAULT_VAE_PATH, "--vae_path", marker="config.json", subfolder="vae")
    text_encoder = fetcher.folder(text_encoder_path or DEFAULT_TEXT_ENCODER_PATH, "--text_encoder_path")
    if fetcher.missing:
        raise MissingWeightsError(fetcher.missing)
    assert model is not None and vae is not None and text_encoder is not None
    return WeightPaths(model=model, config=config_path, vae=vae, text_encoder=text_encoder)


def resolve_two_stage_weights(
    model_path: str | os.PathLike[str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    vae_path: str | os.PathLike[str] | None = None,
    text_encoder_path: str | os.PathLike[str] | None = None,
    refiner: bool = True,
    refiner_checkpoint: str | os.PathLike[str] | None = None,
    refiner_gemma_root: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
) -> tuple[WeightPaths, RefinerPaths | None]:
    """:func:`resolve_weights`, then (with ``refiner``) :func:`resolve_refiner_weights`.

    The refiner's paths are None without ``refiner``. After a failed connection the refiner's folders are
    looked up in the cache only.

    Raises:
        MissingWeightsError: one line per missing piece of either stage, stage 1's first.
    """
    fetcher = Fetcher(offline=bool(local_files_only))
    missing: list[Missing] = []
    paths = refiner_paths = None
    try:
        paths = resolve_weights(
            model_path, config=config, vae_path=vae_path, text_encoder_path=text_encoder_path, fetcher=fetcher
        )
    except MissingWeightsError as err:
        missing = err.missing
    if refiner:
        try:
            refiner_paths = resolve_refiner_weights(
                refiner_checkpoint, refiner_gemma_root, local_files_only=fetcher.offline
            )
        except MissingWeightsError as err:
            missing = [*missing, *err.missing]
    if missing:
        raise MissingWeightsError(missing)
    assert paths is not None
    return paths, refiner_paths


@dataclass(frozen=True)
class RefinerPaths:
    """Local folders of the refiner's parts: diffusers ``transformer``, ``connectors``; Gemma-3, tokenizer."""

    transformer: Path
    connectors: Path
    text_encoder: Path
    tokenizer: Path


def resolve_refiner_weights(
    checkpoint: str | os.PathLike[str] | None = None,
    gemma_root: str | os.PathLike[str] | None = None,
    *,
    local_files_only: bool | None = None,
) -> RefinerPaths:
    """Find the refiner's folders locally, in the Hugging Face cache, or on the Hub (None = the release).

    ``checkpoint`` is a folder (or ``hf://`` URI) holding ``transformer/`` and ``connectors/``, by default
    ``hf://Efficient-Large-Model/SANA-WM_bidirectional/refiner``; ``gemma_root`` a Gemma-3 folder with its
    tokenizer files (or a sibling ``tokenizer/``), by default that repository's ``refiner/text_encoder``.

    Raises:
        MissingWeightsError: one line per missing folder, naming ``--refiner_checkpoint`` or
            ``--refiner_gemma_root``.
    """
    fetcher = Fetcher(offline=bool(local_files_only))
    root = str(checkpoint or DEFAULT_REFINER_CHECKPOINT)
    if not is_hf_uri(root) and Path(root).expanduser().suffix == ".safetensors":
        raise InputError(
            f"--refiner_checkpoint: {root} is a file; pass the folder with transformer/ and connectors/"
        )
    parts = {}
    for name in ("transformer", "connectors"):
        where = f"{root.rstrip('/')}/{name}" if is_hf_uri(root) else Path(root).expanduser() / name
        parts[name] = fetcher.folder(where, "--refiner_checkpoint")
    gemma = fetcher.folder(gemma_root or DEFAULT_REFINER_GEMMA_ROOT, "--refiner_gemma_root")
    if fetcher.missing:
        raise MissingWeightsError(fetcher.missing)
    assert gemma is not None and parts["transformer"] is not None and parts["connectors"] is not None
    tokenizer = gemma
    if not any((gemma / f).is_file() for f in _TOKENIZER_FILES) and (gemma.parent / "tokenizer").is_dir():
        tokenizer = gemma.parent / "tokenizer"
    return RefinerPaths(parts["transformer"], parts["connectors"], gemma, tokenizer)


def model_config(
    config: SanaWMConfig | str | os.PathLike[str] | None, yaml_path: os.PathLike[str] | None
) -> SanaWMConfig | None:
    """The transformer architecture to load with: ``config`` itself, the official ``config.yaml`` resolved at
    ``yaml_path``, a preset named by ``config``, or None (the checkpoint carries its own)."""
    from sana_wm.models import SanaWMConfig, config_from_official_yaml, preset
    from sana_wm.models.variants import PRESETS

    if isinstance(config, SanaWMConfig):
        return config
    if yaml_path is not None:
        import yaml

        try:
            with open(yaml_path, encoding="utf-8") as handle:
                return config_from_official_yaml(yaml.safe_load(handle) or {})
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise InputError(f"--config: cannot read {yaml_path} ({' '.join(str(err).split())})") from None
    if config is not None and str(config) in PRESETS:
        return preset(str(config))
    if config is not None:
        raise InputError(f"--config: {config} is neither a config file nor a preset ({', '.join(PRESETS)})")
    return None


def load_transformer_weights(
    path: os.PathLike[str],
    config: SanaWMConfig | None,
    device: torch.device,
    dtype: torch.dtype,
    *,
    training_checkpoint: bool = False,
) -> SanaWMTransformer:
    """``checkpoint_io.load_transformer`` in eval mode; unreadable or mismatched files are one-line errors.
    ``training_checkpoint`` also reads a tensors-only training checkpoint (the streaming release's
    ``model.pt``)."""
    from safetensors import SafetensorError

    from sana_wm.models.checkpoint_io import load_transformer

    try:
        return load_transformer(
            path, device=device, dtype=dtype, config=config, training_checkpoint=training_checkpoint
        ).eval()
    except InputError as err:
        raise InputError(f"--model_path: {err}") from None
    except (SafetensorError, OSError) as err:
        reason = " ".join(str(err).split())
        raise InputError(f"--model_path: cannot read {path} as safetensors ({reason})") from None


def looks_like_path(value: str | os.PathLike[str]) -> bool:
    """Whether a ``--config`` value names a file (not a preset such as ``"tiny"``)."""
    text = str(value)
    return os.sep in text or text.endswith((".yaml", ".yml", ".json")) or Path(text).exists()


class Fetcher:
    """Looks pieces up locally, then in the cache, then on the Hub; collects what is missing.

    ``offline`` turns True at the first connection failure, so one fetcher shared by several look-ups (or
    its ``offline`` passed on as ``local_files_only``) pays the Hub client's retry delays only once.
    """

    def __init__(self, *, offline: bool) -> None:
        from huggingface_hub import is_offline_mode

        self.offline = offline or is_offline_mode()
        self.missing: list[Missing] = []

    def file(self, value: str | os.PathLike[str], flag: str) -> Path | None:
        if not is_hf_uri(value):
            return self._local(value, flag, "FILE")
        repo, repo_type, revision, path = split_hf_uri(value, flag)
        if not path:
            raise InputError(f"{flag}: {value} names a repository, not a file in it")
        from huggingface_hub import hf_hub_download

        def fetch(local_only: bool) -> Path:
            return Path(
                hf_hub_download(
                    repo, path, repo_type=repo_type, revision=revision, local_files_only=local_only
                )
            )

        return self._fetch(fetch, Missing(path, repo, flag, "FILE"))

    def folder(
        self, value: str | os.PathLike[str], flag: str, *, marker: str = "config.json", subfolder: str = ""
    ) -> Path | None:
        """A folder holding ``marker`` (or whose ``subfolder`` holds it, for a local repository root)."""
        if not is_hf_uri(value):
            folder = self._local(value, flag, "DIR")
            if folder is None or (folder / marker).is_file():
                return folder
            if subfolder and (folder / subfolder / marker).is_file():
                return folder / subfolder
            raise InputError(f"{flag}: {folder} has no {marker}")
        repo, repo_type, revision, path = split_hf_uri(value, flag)
        prefix = f"{path.strip('/')}/" if path else ""
        patterns = [prefix + p for p in _FOLDER_PATTERNS]
        from huggingface_hub import snapshot_download

        def fetch(local_only: bool) -> Path:
            root = snapshot_download(
                repo,
                repo_type=repo_type,
                revision=revision,
                allow_patterns=patterns,
                local_files_only=local_only,
            )
            folder = Path(root) / prefix
            # A cached snapshot of the same repository may lack this folder's files.
            if not (folder / marker).is_file() or not any(folder.glob("*.safetensors")):
                from huggingface_hub.errors import LocalEntryNotFoundError

                raise LocalEntryNotFoundError(f"{prefix or 'the repository'} is not complete in the cache")
            return folder

        return self._fetch(fetch, Missing(prefix or "the weights", repo, flag, "DIR"))

    def _local(self, value: str | os.PathLike[str], flag: str, kind: str) -> Path | None:
        path = Path(value).expanduser()
        if path.exists():
            return path
        self.missing.append(Missing(str(path), None, flag, kind))
        return None

    def _fetch(self, fetch: Callable[[bool], Path], missing: Missing) -> Path | None:
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

        try:
            return fetch(True)
        except (LocalEntryNotFoundError, OSError):
            pass
        if self.offline:
            self.missing.append(_with_reason(missing, "not in the Hugging Face cache, offline mode"))
            return None
        if not hub_reachable():  # seconds, where the Hub client's own retries took 30-40 s to give up
            self.offline = True
            self.missing.append(
                _with_reason(missing, "not in the Hugging Face cache and the Hub cannot be reached")
            )
            return None
        log.info("downloading %s from %s (Hugging Face Hub)", missing.what, missing.source)
        try:
            with _quiet_hub_retries():
                return fetch(False)
        except RepositoryNotFoundError as err:
            reason = "repository not found or access denied" + _status(err)
        except HfHubHTTPError as err:
            reason = f"the Hub refused the download{_status(err)}"
        except LocalEntryNotFoundError:
            # huggingface_hub's signal for "no connection and not cached": stop trying the network.
            self.offline = True
            reason = "not in the Hugging Face cache and the Hub cannot be reached"
        except OSError as err:
            self.offline = True
            reason = f"download failed: {' '.join(str(err).split())[:120]}"
        self.missing.append(_with_reason(missing, reason))
        return None


HUB_PROBE_TIMEOUT_S = 3.0


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hub's endpoint opens within ``timeout_s`` (name lookup included)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _with_reason(missing: Missing, reason: str) -> Missing:
    return Missing(missing.what, missing.source, missing.flag, missing.kind, reason)


def _status(err: Exception) -> str:
    response = getattr(err, "response", None)
    code = getattr(response, "status_code", None)
    return f", HTTP {code}" if code else ""


def split_hf_uri(value: str | os.PathLike[str], flag: str) -> tuple[str, str, str | None, str]:
    """(repository id, repository type, revision or None, path in it or "") of an ``hf://`` URI; a malformed
    one is an :class:`InputError` naming ``flag``."""
    from huggingface_hub import parse_hf_uri
    from huggingface_hub.errors import HfUriError

    try:
        uri = parse_hf_uri(str(value))
    except HfUriError as err:
        raise InputError(f"{flag}: {' '.join(str(err).split())}") from None
    return uri.id, uri.type, uri.revision, uri.path_in_repo or ""


@contextlib.contextmanager
def _quiet_hub_retries() -> Iterator[None]:
    """Silence huggingface_hub's per-retry warnings while it backs off on a dead connection."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
