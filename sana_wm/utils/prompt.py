"""Reading the text prompt given as a file (``--prompt``)."""

from __future__ import annotations

import os
from pathlib import Path

from sana_wm.errors import InputError

MAX_PROMPT_BYTES = 1_000_000  # the text encoders read a few hundred tokens; the sidecar copies the prompt


def read_prompt_file(path: str | os.PathLike[str], name: str = "--prompt") -> str:
    """Return the prompt in a UTF-8 text file, surrounding white space removed (a BOM is tolerated).

    Raises:
        InputError: the file is missing, unreadable, not UTF-8, or holds only white space.
    """
    try:
        size = Path(path).stat().st_size
        if size > MAX_PROMPT_BYTES:
            raise InputError(
                f"{name}: {path} is {size} bytes; a prompt file may hold at most {MAX_PROMPT_BYTES}"
            )
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
