"""Durable file writes and exclusive locks.

A file written with `atomic_write` or `atomic_open` is, after a crash or a power
loss, either its old content or its whole new content: the data goes to a unique
temporary file in the same directory, which is flushed, fsynced and renamed over
the target, and the directory is fsynced so that the rename itself is on disk.
A process killed while writing leaves its temporary, `.NAME.PID.ID.tmp`, behind;
`remove_stale_temporaries` removes those whose writer is gone.

`exclusive_lock` keeps two processes from using one run dir or output at once:
an fcntl.flock on a lock file, which the kernel releases when its process dies,
so a killed process never leaves a stale lock behind.

`fault_point` marks the places where bench/fault_injection.py kills the process
or fails a write; it does nothing unless NMT_FAULT_INJECTION is set.
"""
import contextlib
import errno
import fcntl
import os
import re
import signal
import socket
import uuid

# _temp_name's pattern: the writer's PID tells a live writer's file from a dead one's.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


class LockError(RuntimeError):
    """Another process holds the lock (a user error: the CLI reports it as one line)."""


def fsync_path(path):
    """Flushes a file's data, or a directory's entries (renames into it), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(path):
    """A name beside `path` that no other writer, thread or process, picks."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def remove_stale_temporaries(directory):
    """Removes the temporary files of atomic writes in `directory` whose writer is gone:
    the process their name gives has exited, or started after the file was last
    written (its PID was reused). A live writer's file stays. -> the removed paths."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        match = _TEMP_NAME.match(entry)
        path = os.path.join(directory, entry)
        try:
            written = os.stat(path).st_mtime
        except FileNotFoundError:  # renamed into place meanwhile
            continue
        if match and not _writer_alive(int(match["pid"]), written):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return removed


def _writer_alive(pid, written):
    """Whether process `pid` may still be writing a file last written at `written`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    started = _start_time(pid)
    # A writer starts before its file is written; 1 s covers the clocks' rounding.
    return started is None or started <= written + 1.0


def _start_time(pid):
    """When process `pid` started (seconds since the epoch), or None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rpartition(")")[2].split()
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def atomic_write(path, data):
    """Writes `data` (str as UTF-8, or bytes) to `path` whole or not at all."""
    mode = "wb" if isinstance(data, (bytes, bytearray, memoryview)) else "w"
    with atomic_open(path, mode) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_open(path, mode="w"):
    """A file object to stream into; on a normal exit its content replaces `path`
    durably, on an exception `path` is left as it was and the temporary goes."""
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w', 'wt' or 'wb' (got {mode!r})")
    tmp = _temp_name(path)
    # O_EXCL: never write through a file someone else made; 0o666 honours the umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with (os.fdopen(fd, "wb") if "b" in mode
              else os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            yield f
            fault_point("write:" + os.path.basename(path), path)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_path(os.path.dirname(os.path.abspath(path)))


def _holder(path):
    """What the lock file says about its holder: "process PID on HOST", or a guess."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            pid, _, host = f.read().strip().partition(" ")
    except OSError:
        pid = host = ""
    if pid.isdigit():
        return f"process {pid} on {host or 'an unknown host'}"
    return "another process"


@contextlib.contextmanager
def exclusive_lock(path, what):
    """Holds an exclusive lock on the lock file `path` (written with "PID HOST") for
    the block; removes the file at the end. If another process holds it, LockError:
    "PATH: WHAT is in use by process PID on HOST". A file left by a dead process is
    taken over (the kernel dropped its lock)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise LockError(f"{path}: {what} is in use by {_holder(path)}; wait for it to "
                            f"finish, or stop it") from None
        # The holder before us may have removed the file after we opened it: then our
        # lock is on a file nobody else sees, so open the path again.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        yield
    finally:
        # Removed while still locked, so no process can lock the file being removed.
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        os.close(fd)


FAULT_ENV = "NMT_FAULT_INJECTION"
_fault_counts = {}


def fault_point(name, path, before=None):
    """A place where bench/fault_injection.py makes a write fail; does nothing unless
    the environment sets NMT_FAULT_INJECTION="ACTION@NAME[#N]". At the N-th (default
    first) time this process reaches the point `name`, it runs `before()` (the state
    the fault leaves on disk), then ACTION: "kill" (SIGKILL this process), or
    "ENOSPC" / "EACCES" (raise that OSError for `path`)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    action, _, target = spec.partition("@")
    target, _, nth = target.partition("#")
    if target != name:
        return
    key = (spec, name)  # a new spec counts afresh
    _fault_counts[key] = _fault_counts.get(key, 0) + 1
    if _fault_counts[key] != int(nth or 1):
        return
    if before is not None:
        before()
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = getattr(errno, action)  # ENOSPC, EACCES
    raise OSError(code, os.strerror(code), path)
