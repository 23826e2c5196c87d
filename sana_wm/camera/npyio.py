"""Read a user-supplied ``.npy`` array safely (no pickle) with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sana_wm.errors import InputError

MAX_ELEMENTS = 16_000_000  # values in one camera or intrinsics file (a million 4x4 poses)


def load_npy(path: str | os.PathLike[str], name: str) -> np.ndarray:
    """Load a real-valued ``.npy`` array as float64 for validation.

    Args:
        path: file path; it must end in ``.npy``.
        name: the input's name in error messages, e.g. ``"--camera"``.

    Raises:
        InputError: missing or unreadable file, another format, a pickled/object array, or a
            non-numeric dtype.
    """
    file = Path(path)
    if file.suffix.lower() != ".npy":
        raise InputError(f"{name}: expected a .npy file (numpy.save), got '{file}'")
    if not file.is_file():
        raise InputError(f"{name}: file not found: '{file}'")
    try:
        with open(file, "rb") as handle:  # the header first: a tiny file may claim a huge shape
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle)
        elements = int(np.prod(shape, dtype=np.float64))
        if elements * dtype.itemsize > file.stat().st_size or elements > MAX_ELEMENTS:
            raise InputError(
                f"{name}: '{file}' claims shape {shape} ({elements} values), which the file does not hold "
                f"or which exceeds {MAX_ELEMENTS} values"
            )
        array = np.load(file, allow_pickle=False)
    except InputError:
        raise
    except (OSError, ValueError, EOFError) as err:
        reason = " ".join(str(err).split())
        raise InputError(f"{name}: cannot read '{file}' as a .npy array ({reason})") from None
    if not isinstance(array, np.ndarray):
        raise InputError(f"{name}: '{file}' is not a single .npy array")
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise InputError(f"{name}: '{file}' holds dtype {array.dtype}; expected real numbers")
    return array.astype(np.float64)
