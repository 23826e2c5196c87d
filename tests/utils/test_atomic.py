import os
import stat

import pytest

from sana_wm.utils.atomic import atomic_output


def test_success_renames_into_place_with_default_permissions(tmp_path) -> None:
    target = tmp_path / "sub" / "out.txt"
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".txt" and tmp.parent == target.parent
        tmp.write_text("hello")
        assert not target.exists()
    assert target.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_failure_leaves_no_file_and_keeps_the_old_one(tmp_path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_temporary_files_of_dead_writers_are_cleared_by_the_next_write(tmp_path) -> None:
    """A SIGKILL mid-write leaves ``.<stem>.<pid>.<random>.tmp.<suffix>``; the next write of the same file
    removes it when that process is gone, and leaves a live writer's file alone."""
    import os

    from sana_wm.utils.atomic import atomic_output

    dead = tmp_path / ".demo.2147483647.abc123.tmp.mp4"  # no process has this id
    live = tmp_path / f".demo.{os.getppid()}.def456.tmp.mp4"
    other = tmp_path / ".other.2147483647.abc.tmp.mp4"
    for path in (dead, live, other):
        path.write_bytes(b"partial")
    with atomic_output(tmp_path / "demo.mp4") as tmp:
        assert f".demo.{os.getpid()}." in tmp.name
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["demo.mp4", live.name, other.name])
