"""Reading the text prompt given as a file (``--prompt``)."""

from __future__ import annotations

import os
from pathlib import Path

from sana_wm.errors import InputError


def read_prompt_file(path: str | os.PathLike[str], name: str = "--prompt") -> str:
    """Return the prompt in a UTF-8 text file, surrounding white space removed (a BOM is tolerated).

    Raises:
        InputError: the file is missing, unreadable, not UTF-8, or holds only white space.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{name}: file not found: {path}") from None
    except OSError as err:
        raise InputError(f"{name}: cannot read {path}: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{name}: {path} is not UTF-8 text (bad byte at offset {err.start})") from None
    text = text.strip()
    if not text:
        raise InputError(f"{name}: {path} is empty")
    return text
