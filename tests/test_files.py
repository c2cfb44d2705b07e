"""nmt.files: atomic writes (whole or nothing, durable) and exclusive locks."""
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from nmt import files


def test_atomic_write_text_and_bytes(tmp_path):
    text, binary = tmp_path / "a.txt", tmp_path / "b.bin"
    files.atomic_write(str(text), "héllo\r\nworld")
    files.atomic_write(str(binary), b"\x00\xffdata")
    assert text.read_bytes() == "héllo\r\nworld".encode("utf-8")  # no newline translation
    assert binary.read_bytes() == b"\x00\xffdata"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin"]  # no temporary left


def test_atomic_write_replaces_and_keeps_the_umask_permissions(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("old")
    files.atomic_write(str(path), "new")
    assert path.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_stream_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old content")
    with pytest.raises(RuntimeError):
        with files.atomic_open(str(path)) as f:
            f.write("half of the new")
            raise RuntimeError("disk gone")
    assert path.read_text() == "old content"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text("{}")

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        files.atomic_write(str(path), '{"new": 1}')
    assert path.read_text() == "{}"
    assert os.listdir(tmp_path) == ["config.json"]


def test_atomic_open_streams_and_syncs_file_and_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(
        f"/proc/self/fd/{fd}")), real_fsync(fd)))
    path = tmp_path / "stream.bin"
    with files.atomic_open(str(path), "wb") as f:
        for i in range(3):
            f.write(bytes([i]) * 10)
        assert not path.exists()  # nothing at the target until the stream is whole
    assert path.read_bytes() == b"\x00" * 10 + b"\x01" * 10 + b"\x02" * 10
    assert synced[0].endswith(".tmp") and synced[-1] == str(tmp_path)


def test_atomic_open_refuses_append_and_read_modes(tmp_path):
    for mode in ("a", "r", "w+"):
        with pytest.raises(ValueError, match="mode"):
            with files.atomic_open(str(tmp_path / "x"), mode):
                pass


def test_fsync_path_accepts_files_and_directories(tmp_path):
    (tmp_path / "f").write_text("x")
    files.fsync_path(str(tmp_path / "f"))
    files.fsync_path(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        files.fsync_path(str(tmp_path / "missing"))


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from nmt import files
    with files.exclusive_lock(sys.argv[1], "the test dir"):
        print("locked", flush=True)
        time.sleep(120)
""")


def _hold_lock_in_subprocess(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, path], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": _tree()})
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _tree():
    return os.path.dirname(os.path.dirname(os.path.abspath(files.__file__)))


def test_a_lock_held_by_another_process_names_it(tmp_path):
    path = str(tmp_path / "lock")
    proc = _hold_lock_in_subprocess(path)
    try:
        with pytest.raises(files.LockError) as error:
            with files.exclusive_lock(path, "the test dir"):
                pass
        message = str(error.value)
        assert f"process {proc.pid} on {socket.gethostname()}" in message
        assert message.startswith(f"{path}: the test dir is in use")
        assert "\n" not in message
    finally:
        proc.terminate()
        proc.wait()


def test_the_lock_of_a_killed_process_is_free(tmp_path):
    path = str(tmp_path / "lock")
    proc = _hold_lock_in_subprocess(path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert open(path).read().split()[0] == str(proc.pid)  # its pid stays in the file...
    with files.exclusive_lock(path, "the test dir"):  # ...but the lock went with it
        assert open(path).read().split() == [str(os.getpid()), socket.gethostname()]


def test_a_lock_is_released_on_exit_and_on_error(tmp_path):
    path = str(tmp_path / "lock")
    with pytest.raises(KeyError):
        with files.exclusive_lock(path, "x"):
            raise KeyError("boom")
    with files.exclusive_lock(path, "x"):
        with pytest.raises(files.LockError):  # a second holder in this process is refused too
            with files.exclusive_lock(path, "x"):
                pass
    with files.exclusive_lock(path, "x"):
        pass


def test_lock_error_is_a_user_error_of_the_cli():
    from nmt.cli import common
    assert issubclass(files.LockError, common.USER_ERRORS)


FAULT = textwrap.dedent("""
    import sys
    from nmt import files
    for i in range(3):
        try:
            files.fault_point("write:x", "/some/x")
        except OSError as e:
            print(i, e.errno, e.filename, flush=True)
    print("done", flush=True)
""")


@pytest.mark.parametrize("spec, out, code", [
    ("", "done\n", 0),
    ("kill@write:x#2", "", -signal.SIGKILL),
    ("ENOSPC@write:x#2", "1 28 /some/x\ndone\n", 0),
    ("EACCES@write:x", "0 13 /some/x\ndone\n", 0),
    ("kill@ckpt.data", "done\n", 0),  # another point
])
def test_fault_points_act_only_as_the_environment_says(spec, out, code):
    env = {**os.environ, "PYTHONPATH": _tree(), files.FAULT_ENV: spec}
    result = subprocess.run([sys.executable, "-c", FAULT], capture_output=True, text=True,
                            env=env)
    assert (result.stdout, result.returncode) == (out, code), result.stderr


def test_a_fault_in_a_stream_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text("old")
    monkeypatch.setenv(files.FAULT_ENV, "ENOSPC@write:config.json")
    with pytest.raises(OSError, match="No space left"):
        files.atomic_write(str(path), "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["config.json"]


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


# --- temporaries left by killed writers ---

WRITER = textwrap.dedent("""
    import sys, time
    from nmt import files
    with files.atomic_open(sys.argv[1]) as f:
        f.write("half of it")
        f.flush()
        print("writing", flush=True)
        time.sleep(600)
""")


def _temporaries(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


def test_stale_temporaries_go_and_a_live_writers_stays(tmp_path):
    env = {**os.environ, "PYTHONPATH": _tree()}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "config.json")],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert writer.stdout.readline() == "writing\n"
        live = _temporaries(tmp_path)
        assert len(live) == 1 and f".config.json.{writer.pid}." in live[0]
        exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                capture_output=True, text=True, check=True)
        dead = tmp_path / f".log.jsonl.{exited.stdout.strip()}.0123abcd.tmp"
        dead.write_text("x")
        reused = tmp_path / f".run.json.{os.getpid()}.89abcdef.tmp"  # older than this process
        reused.write_text("x")
        os.utime(reused, (1_000_000, 1_000_000))
        (tmp_path / "keep.tmp").write_text("not an atomic write's")
        removed = files.remove_stale_temporaries(str(tmp_path))
        assert sorted(removed) == sorted([str(dead), str(reused)])
        assert _temporaries(tmp_path) == sorted(live + ["keep.tmp"])  # the live writer's stays
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert files.remove_stale_temporaries(str(tmp_path)) == [str(tmp_path / live[0])]
        assert sorted(os.listdir(tmp_path)) == ["keep.tmp"]
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


def test_a_new_file_of_this_process_is_a_live_writers(tmp_path):
    mine = tmp_path / f".x.{os.getpid()}.0011aabb.tmp"
    mine.write_text("being written")
    assert files.remove_stale_temporaries(str(tmp_path)) == []
    assert files.remove_stale_temporaries(str(tmp_path / "missing")) == []
