"""The README's Python example runs as written (offline, CPU, the bundled demo model)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.usefixtures("one_thread")
def test_the_python_example_runs_as_written() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### From Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    frames = namespace["frames"]
    assert frames.shape == (17, 192, 352, 3) and frames.dtype == np.uint8
    assert len(namespace["out"].c2w) == 17


def test_the_first_section_is_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first = text[: text.index("\n## ")]
    commands = re.search(r"```bash\n(.*?)```", first, re.S).group(1).strip().splitlines()
    assert len(commands) == 2
    assert "sana-wm demo" in commands[0] and "pytest" in commands[1]
