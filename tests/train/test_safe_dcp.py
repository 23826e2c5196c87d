"""A DCP checkpoint is data: loading one runs no code from it (sana_wm.train.safe_dcp)."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp

from sana_wm.errors import InputError
from sana_wm.train.checkpoint import _safe_load, _saved_keys


class _Payload:
    """Unpickling this creates ``marker``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _save(state: dict, folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=str(folder), no_dist=True)


def _load(state: dict, folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _safe_load(state, folder, no_dist=True)


def test_a_real_checkpoint_loads_exactly(tmp_path) -> None:
    saved = {
        "model": {"w": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.bfloat16)},
        "train": {"step": 7, "samples": 112},
    }
    _save(saved, tmp_path / "ck")
    assert _saved_keys(tmp_path / "ck") == {"model.w", "model.b", "train.step", "train.samples"}
    state = {"model": {"w": torch.zeros(3, 4), "b": torch.zeros(5, dtype=torch.bfloat16)}, "train": {}}
    state["train"] = {"step": 0, "samples": 0}
    _load(state, tmp_path / "ck")
    assert torch.equal(state["model"]["w"], saved["model"]["w"])
    assert torch.equal(state["model"]["b"], saved["model"]["b"])
    assert state["train"] == {"step": 7, "samples": 112}


def test_hostile_metadata_is_refused_before_it_runs(tmp_path) -> None:
    _save({"model": {"w": torch.ones(2)}}, tmp_path / "ck")
    marker = tmp_path / "pwned"
    (tmp_path / "ck" / ".metadata").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(InputError, match=r"refers to posix\.system|refers to os\.system"):
        _saved_keys(tmp_path / "ck")
    with pytest.raises(InputError, match="refusing to load it"):
        _load({"model": {"w": torch.zeros(2)}}, tmp_path / "ck")
    assert not marker.exists()


def test_a_hostile_value_is_refused_before_it_runs(tmp_path) -> None:
    marker = tmp_path / "pwned"
    _save({"train": {"step": _Payload(marker)}}, tmp_path / "ck")
    assert not marker.exists()  # saving pickles without running it
    with pytest.raises(InputError, match="the value train.step is refused"):
        _load({"train": {"step": 0}}, tmp_path / "ck")
    assert not marker.exists()


def test_a_torn_metadata_file_is_one_line(tmp_path) -> None:
    _save({"model": {"w": torch.ones(2)}}, tmp_path / "ck")
    data = (tmp_path / "ck" / ".metadata").read_bytes()
    (tmp_path / "ck" / ".metadata").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="unreadable .metadata"):
        _saved_keys(tmp_path / "ck")
