"""Atomic durable writes and the exclusive lock (nmt/files.py)."""
import os
import socket

import pytest

from nmt import files


def test_atomic_write_replaces_text_and_bytes(tmp_path):
    path = str(tmp_path / "config.json")
    files.atomic_write(path, "näive\n")
    assert open(path, encoding="utf-8").read() == "näive\n"
    files.atomic_write(path, b"\x00\xff")
    assert open(path, "rb").read() == b"\x00\xff"
    assert os.listdir(tmp_path) == ["config.json"]


def test_atomic_open_keeps_the_old_file_when_the_block_raises(tmp_path):
    path = str(tmp_path / "out.txt")
    files.atomic_write(path, "old\n")
    with pytest.raises(RuntimeError):
        with files.atomic_open(path) as f:
            f.write("new, half")
            raise RuntimeError
    assert open(path).read() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_open_syncs_the_file_before_the_rename_and_the_directory_after(
        tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = str(tmp_path / "out.txt")
    files.atomic_write(path, "x")
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert events[0][1] != path and os.path.dirname(events[0][1]) == str(tmp_path)
    assert events[2][1] == os.path.realpath(tmp_path)


def test_a_second_lock_names_the_holder_and_the_file_goes_at_the_end(tmp_path):
    path = str(tmp_path / "out.lock")
    with files.exclusive_lock(path, "the output"):
        assert open(path).read().split() == [str(os.getpid()), socket.gethostname()]
        with pytest.raises(files.LockError) as info:
            with files.exclusive_lock(path, "the output"):
                pass
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: the output is in use by process {os.getpid()} "
                              f"on {socket.gethostname()}")
    assert not os.path.exists(path)
    with files.exclusive_lock(path, "the output"):  # free again
        pass


def test_a_lock_file_left_by_a_dead_process_is_taken_over(tmp_path):
    path = tmp_path / "out.lock"
    path.write_text("999999999 elsewhere\n")  # nobody holds a flock on it
    with files.exclusive_lock(str(path), "the output"):
        assert path.read_text().split()[0] == str(os.getpid())
