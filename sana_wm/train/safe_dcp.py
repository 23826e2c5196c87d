"""Reading DCP checkpoints without running code from them.

``torch.distributed.checkpoint`` keeps two things as pickles: the ``.metadata`` file (read with a plain
``pickle.load`` by ``FileSystemReader``) and every non-tensor value (our ``train.step``, ``train.samples``,
read with ``torch.load(weights_only=False)`` by ``DefaultLoadPlanner``). A crafted checkpoint could run code
at either point. :class:`SafeReader` unpickles the metadata with an allow-list of the types DCP itself writes
there, and :class:`SafePlanner` reads values with ``torch.load(weights_only=True)``; anything else is an
:class:`~sana_wm.errors.InputError` before a single object of it is built.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import torch
from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

from sana_wm.errors import InputError

# module -> names a DCP .metadata pickle may refer to (None: every public class of that module).
_ALLOWED: dict[str, frozenset[str] | None] = {
    "torch.distributed.checkpoint.metadata": None,
    "torch.distributed.checkpoint.filesystem": frozenset({"_StorageInfo"}),
    "torch.distributed.checkpoint._extension": None,
    "torch.serialization": frozenset({"_get_layout"}),
    "torch": frozenset({"Size"}),
    "pathlib": frozenset({"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath", "Path"}),
    "collections": frozenset({"OrderedDict"}),
    "builtins": frozenset({"set", "frozenset", "slice"}),
}


class _MetadataUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, where: str) -> None:
        super().__init__(file)
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get(module, frozenset())
        dtype = module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)
        if dtype or (allowed is None and not name.startswith("__")) or (allowed and name in allowed):
            return super().find_class(module, name)
        raise InputError(
            f"checkpoint {self.where}: its .metadata refers to {module}.{name}, which a DCP checkpoint never "
            "holds; refusing to load it (a checkpoint may only hold tensors and DCP's own metadata)"
        )


class SafeReader(FileSystemReader):
    """``FileSystemReader`` whose ``.metadata`` is unpickled through an allow-list of DCP's own types."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as handle:
            try:
                metadata = _MetadataUnpickler(handle, str(self.path)).load()
            except InputError:
                raise
            except Exception as err:  # a torn or foreign file: say so in one line
                raise InputError(
                    f"checkpoint {self.path}: unreadable .metadata ({type(err).__name__})"
                ) from None
        if not isinstance(metadata, Metadata):
            raise InputError(
                f"checkpoint {self.path}: .metadata holds {type(metadata).__name__}, not DCP metadata"
            )
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafePlanner(DefaultLoadPlanner):
    """``DefaultLoadPlanner`` that reads non-tensor values with ``torch.load(weights_only=True)``."""

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        fqn = read_item.dest_index.fqn
        try:
            loaded = torch.load(value, weights_only=True)
        except pickle.UnpicklingError:
            raise InputError(
                f"checkpoint: the value {fqn} is refused (loading it would construct objects other than "
                "tensors and plain Python values)"
            ) from None
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[fqn], loaded)
        else:
            self.state_dict[fqn] = loaded


def load(state: dict[str, Any], path: str, **kwargs: Any) -> None:
    """``dcp.load`` of ``state`` from the folder ``path`` through :class:`SafeReader` and
    :class:`SafePlanner`; a refusal is raised as the :class:`InputError` itself (DCP would swallow a metadata
    error and wrap a value error in its ``CheckpointException``)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException

    reader = SafeReader(path)
    reader.read_metadata()  # refuses a hostile .metadata here, before DCP's own fallbacks
    try:
        dcp.load(state, storage_reader=reader, planner=SafePlanner(), **kwargs)
    except CheckpointException as err:
        for failure in err.failures.values():
            cause = failure[0] if isinstance(failure, tuple) else failure
            if isinstance(cause, InputError):
                raise cause from None
        raise
