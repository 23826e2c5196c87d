"""Fixtures shared across test folders, and the Triton mode of the whole session.

Without a CUDA device, ``@triton.jit`` kernels run in the Triton interpreter on CPU tensors. Triton reads
``TRITON_INTERPRET`` when a function is decorated (its own library functions too, at import), so the
variable is set here, before anything imports triton (importing torch does not; ``torch._dynamo`` does):
every kernel module is then decorated once, in interpreter mode, for the whole session. On a CUDA machine
the kernels run compiled (the GPU suite); export ``TRITON_INTERPRET=1`` to run the interpreter tests there.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    if "triton" in sys.modules:  # a plugin imported it first: its kernels would be compiled, not interpreted
        raise RuntimeError("tests/conftest.py: triton was imported before TRITON_INTERPRET=1 could be set")
    os.environ["TRITON_INTERPRET"] = "1"

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


@pytest.fixture(scope="session")
def triton_interpreter() -> None:
    """For tests that run Triton kernels on CPU tensors. It fails where triton is missing (the ``test`` extra
    installs it, so CI runs every kernel test) and skips only a session that runs the kernels compiled (a
    CUDA machine without ``TRITON_INTERPRET=1``)."""
    import triton  # noqa: F401  (an ImportError here is a failure, not a skip)

    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("this session runs Triton kernels compiled (CUDA); TRITON_INTERPRET=1 runs this test")
