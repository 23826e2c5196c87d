"""Fixtures shared across test folders."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_demo_model.py"


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module of tiny models: they are all per-call overhead, and on a busy 2-core
    machine a second thread waiting for a core made an end-to-end test 10x slower (1.3 s against 15 s).
    Folders and modules that want it everywhere request it with ``pytest.mark.usefixtures`` or an autouse
    fixture."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete demo-model folder from ``scripts/train_demo_model.py --tiny --device cpu`` (~10 s)."""
    spec = importlib.util.spec_from_file_location("train_demo_model", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("demo") / "out"
    # Wall time is not asserted: speed is measured by benchmarks, not by unit tests on a shared CPU.
    assert module.main(["--out", str(out), "--tiny", "--device", "cpu"]) == 0
    return out


def _triton_python_modules() -> dict[str, ModuleType]:
    """Loaded ``triton`` modules, less the compiled extension (``triton._C``), which cannot be re-imported."""
    return {
        name: module
        for name, module in sys.modules.items()
        if (name == "triton" or name.startswith("triton.")) and not name.startswith("triton._C")
    }


def _reload_kernel_modules(stale: ModuleType | None) -> None:
    """Re-import the loaded ``sana_wm`` modules whose global ``triton`` is ``stale`` (the other import)."""
    for name, module in list(sys.modules.items()):
        if name.startswith("sana_wm.") and stale is not None and getattr(module, "triton", None) is stale:
            importlib.reload(module)


@pytest.fixture(scope="module")
def triton_interpreter() -> Iterator[None]:
    """Run ``@triton.jit`` kernels with the Triton interpreter (``TRITON_INTERPRET=1``) on CPU tensors.

    Triton reads the variable when a function is decorated, its own library functions included, and
    ``torch._dynamo`` imports triton early in a full test session. So the Python part of triton is imported
    afresh with the variable set, and kernel modules loaded before are re-imported; afterwards the original
    modules and the variable are put back (and kernel modules re-imported against them).
    """
    pytest.importorskip("triton")
    previous_env = os.environ.get("TRITON_INTERPRET")
    original = _triton_python_modules()
    for name in original:
        del sys.modules[name]
    os.environ["TRITON_INTERPRET"] = "1"
    interpreted = importlib.import_module("triton")
    _reload_kernel_modules(original.get("triton"))
    try:
        yield
    finally:
        if previous_env is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = previous_env
        for name in _triton_python_modules():
            del sys.modules[name]
        sys.modules.update(original)
        _reload_kernel_modules(interpreted)
