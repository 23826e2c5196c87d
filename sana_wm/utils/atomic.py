"""Write files under a temporary name and rename them into place only on success."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sana_wm.errors import InputError

MAX_NAME_BYTES = 200  # of one file name: file systems allow 255, the temporary name adds a few


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched, so a failed or
    interrupted command never leaves a partial output file behind. The temporary name keeps the
    final suffix so that format-sniffing writers (PyAV, PIL, matplotlib) pick the right format.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(final)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.stem}.{os.getpid()}.", suffix=f".tmp{final.suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file owner-only; give the output the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _remove_stale(final: Path) -> None:
    """Delete temporary files of ``final`` left by processes that no longer run (a SIGKILL mid-write); the
    writer's process id is part of each temporary name."""
    for tmp in final.parent.glob(f".{glob.escape(final.stem)}.*.tmp{glob.escape(final.suffix)}"):
        pid = tmp.name[len(final.stem) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def check_output_folder(folder: str | os.PathLike[str], flag: str) -> Path:
    """Refuse, before any work, a folder that cannot be created or written: it is a file, lies under a
    file, or its nearest existing ancestor is not writable."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{flag}: {folder} exists and is not a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{flag}: {existing} is a file, so {folder} cannot be created")
    try:  # a real file, not os.access: root passes that check for /proc, where nothing can be created
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise InputError(f"{flag}: cannot create files in {existing} ({err.strerror or err})") from None
    return folder


def check_output_file(path: str | os.PathLike[str], flag: str, *, suffix: str | None = None) -> Path:
    """:func:`check_output_folder` for the file's folder, plus the file itself: not a folder, a name of at
    most :data:`MAX_NAME_BYTES` bytes, and (if given) the ``suffix`` its writer needs."""
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise InputError(f"{flag}: expected a {suffix} path, got '{path}'")
    if path.is_dir():
        raise InputError(f"{flag}: {path} is a folder")
    if len(path.name.encode()) > MAX_NAME_BYTES:
        raise InputError(
            f"{flag}: the file name is {len(path.name.encode())} bytes long; at most {MAX_NAME_BYTES}"
        )
    check_output_folder(path.parent if str(path.parent) else Path("."), flag)
    return path
