"""The demo model's chunk-causal version, stored as a small patch over its bidirectional transformer.

The bundled assets have a size budget, so the chunk-causal demo transformer is not a second copy of the
weights: ``scripts/train_demo_model.py --chunk_causal`` fine-tunes a subset of the bidirectional demo
transformer's tensors under chunk-causal attention (every other tensor frozen, bit for bit) and
:func:`write_patch` stores only that subset in :data:`PATCH_FILE` beside the base
(``transformer.safetensors``). The patch file is a safetensors file whose

- tensors are the fine-tuned ones, under the base's key names, in the base's dtype (fp16 for the demo);
- metadata holds :data:`PATCH_FORMAT` under ``format``, the chunk-causal model's config JSON under
  ``sana_wm_config`` (the base's architecture with ``chunk_size``, e.g. 3), the base's file name under
  ``base_file`` and the SHA-256 of the base file's bytes under ``base_sha256``.

:func:`load_chunk_causal_demo_transformer` reads both files, refuses a base whose hash differs (a retrained
bidirectional model makes the patch meaningless: it was tuned against the old weights), a patch key that the
base does not hold or holds with another shape, and then loads base-with-patch strictly into the chunk-causal
model.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from sana_wm.errors import InputError
from sana_wm.inference.demo_model import DEMO_DIR, TRANSFORMER_FILE
from sana_wm.models import SanaWMConfig, SanaWMTransformer
from sana_wm.models.checkpoint_io import CONFIG_KEY, FORMAT_KEY, check_state, read_checkpoint
from sana_wm.utils.atomic import atomic_output

PATCH_FILE = "transformer_chunk_causal.safetensors"
PATCH_FORMAT = "sana-wm-demo-patch/1"
BASE_FILE_KEY = "base_file"
BASE_SHA_KEY = "base_sha256"


@dataclass(frozen=True)
class DemoPatch:
    """A patch as stored: ``tensors`` (base key names), the patched model's ``config``, the base's file
    name (in the patch's folder unless told otherwise) and the SHA-256 hex digest of its bytes."""

    tensors: dict[str, torch.Tensor]
    config: SanaWMConfig
    base_file: str
    base_sha256: str

    @property
    def num_params(self) -> int:
        return sum(t.numel() for t in self.tensors.values())


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _base(path: Path) -> tuple[SanaWMConfig, dict[str, torch.Tensor]]:
    if not path.is_file():
        raise InputError(f"demo patch: base transformer {path} does not exist")
    contents = read_checkpoint(path)
    if contents.kind != "sana_wm":
        raise InputError(f"demo patch: base {path} is not a sana_wm safetensors file ({contents.kind})")
    return contents.config, contents.state


def write_patch(
    base_path: str | os.PathLike[str],
    trained: torch.nn.Module | Mapping[str, torch.Tensor],
    keys: Iterable[str],
    out_path: str | os.PathLike[str],
    *,
    config: SanaWMConfig | None = None,
) -> DemoPatch:
    """Write ``trained``'s tensors ``keys`` as a patch over the base file ``base_path`` (atomically).

    ``trained`` is a :class:`~sana_wm.models.SanaWMTransformer` (its ``config`` is stored unless ``config``
    is given) or a state dict (``config`` required). Tensors are stored in the base's dtypes. Refused, with
    an :class:`InputError`: an empty ``keys``, a key missing from the base or from ``trained`` or shaped
    differently, a ``config`` the base's tensors do not fit, and a ``trained`` that differs from the base
    outside ``keys`` (compared in the base's dtype), since base + patch would then not be ``trained``.
    """
    base_path = Path(base_path)
    if isinstance(trained, torch.nn.Module):
        config = config or getattr(trained, "config", None)
        state = trained.state_dict()
    else:
        state = dict(trained)
    if not isinstance(config, SanaWMConfig):
        raise InputError("demo patch: pass config= with a state dict (the patched model's architecture)")
    _, base = _base(base_path)
    keys = sorted(set(keys))
    if not keys:
        raise InputError("demo patch: no tensors to store")
    for key in keys:
        if key not in base:
            raise InputError(f"demo patch: {key} is not a tensor of the base {base_path.name}")
        if key not in state:
            raise InputError(f"demo patch: {key} is not a tensor of the trained model")
        if tuple(state[key].shape) != tuple(base[key].shape):
            raise InputError(
                f"demo patch: {key} has shape {tuple(state[key].shape)}, the base {tuple(base[key].shape)}"
            )
    check_state(config, base, source=f"{base_path} as the patched model")
    differing = sorted(
        key
        for key, value in base.items()
        if key not in keys
        and (key not in state or not torch.equal(state[key].detach().cpu().to(value.dtype), value))
    )
    if differing:
        shown = ", ".join(differing[:3]) + (", ..." if len(differing) > 3 else "")
        raise InputError(
            f"demo patch: the trained model differs from the base outside the patch in {len(differing)} "
            f"tensor(s) ({shown}); base + patch would not reproduce it"
        )
    tensors = {k: state[k].detach().cpu().to(base[k].dtype).contiguous() for k in keys}
    patch = DemoPatch(tensors, config, base_path.name, file_sha256(base_path))
    metadata = {
        FORMAT_KEY: PATCH_FORMAT,
        CONFIG_KEY: json.dumps(config.to_dict()),
        BASE_FILE_KEY: patch.base_file,
        BASE_SHA_KEY: patch.base_sha256,
    }
    with atomic_output(out_path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return patch


def read_patch(path: str | os.PathLike[str]) -> DemoPatch:
    """The tensors and metadata of a patch file (not yet checked against its base)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"demo patch: {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise InputError(f"demo patch: cannot read {path} ({' '.join(str(err).split())[:160]})") from None
    if metadata.get(FORMAT_KEY) != PATCH_FORMAT:
        raise InputError(f"demo patch: {path} is not a {PATCH_FORMAT} file")
    missing = [k for k in (CONFIG_KEY, BASE_FILE_KEY, BASE_SHA_KEY) if not metadata.get(k)]
    if missing:
        raise InputError(f"demo patch: {path} lacks metadata {', '.join(missing)}")
    base_file = metadata[BASE_FILE_KEY]
    if Path(base_file).name != base_file or base_file in (".", ".."):
        raise InputError(f"demo patch: {path} names base {base_file!r}, not a file name")
    try:
        config = SanaWMConfig.from_dict(json.loads(metadata[CONFIG_KEY]))
    except json.JSONDecodeError:
        raise InputError(f"demo patch: {path} holds an unreadable config") from None
    return DemoPatch(tensors, config, base_file, metadata[BASE_SHA_KEY])


def merged_state(
    folder: str | os.PathLike[str] = DEMO_DIR, *, patch_path: str | os.PathLike[str] | None = None
) -> tuple[SanaWMConfig, dict[str, torch.Tensor]]:
    """The chunk-causal config and the base's state with the patch's tensors in place (stored dtypes).

    The patch is ``patch_path`` (default ``folder/`` :data:`PATCH_FILE`); its base is the file it names, in
    ``folder``. Checks: the base's SHA-256 is the recorded one, every patch key is a base key of the same
    shape, and the merged state fits the patch's config strictly.
    """
    folder = Path(folder)
    path = Path(patch_path) if patch_path is not None else folder / PATCH_FILE
    patch = read_patch(path)
    base_path = folder / patch.base_file
    if not base_path.is_file():
        raise InputError(f"demo patch: {path} patches {base_path}, which does not exist")
    found = file_sha256(base_path)
    if found != patch.base_sha256:
        raise InputError(
            f"demo patch: {path} was made for another {patch.base_file} (sha256 {patch.base_sha256[:12]}..., "
            f"found {found[:12]}...): the bidirectional model changed since; retrain the chunk-causal patch "
            "(scripts/train_demo_model.py --chunk_causal)"
        )
    _, base = _base(base_path)
    unknown = sorted(k for k in patch.tensors if k not in base)
    if unknown:
        raise InputError(f"demo patch: {path} holds tensors its base lacks: {', '.join(unknown[:3])}")
    shapes = [
        f"{k} {tuple(v.shape)} vs base {tuple(base[k].shape)}"
        for k, v in patch.tensors.items()
        if v.shape != base[k].shape
    ]
    if shapes:
        raise InputError(f"demo patch: {path} has tensors shaped unlike its base's: {', '.join(shapes[:3])}")
    state = {**base, **patch.tensors}
    return patch.config, check_state(patch.config, state, source=f"{base_path} + {path.name}")


def load_chunk_causal_demo_transformer(
    folder: str | os.PathLike[str] = DEMO_DIR,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = torch.float32,
    *,
    patch_path: str | os.PathLike[str] | None = None,
) -> SanaWMTransformer:
    """The demo model's chunk-causal transformer: ``folder``'s base transformer with the patch applied
    (:func:`merged_state`), on ``device`` in ``dtype`` (None keeps the stored fp16)."""
    config, state = merged_state(folder, patch_path=patch_path)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    with torch.device("meta"):
        model = SanaWMTransformer(config)
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(torch.device(device))


def chunk_causal_demo_available(folder: str | os.PathLike[str] = DEMO_DIR) -> bool:
    """Whether ``folder`` holds a chunk-causal patch and the base transformer (not checked further)."""
    return (Path(folder) / PATCH_FILE).is_file() and (Path(folder) / TRANSFORMER_FILE).is_file()
