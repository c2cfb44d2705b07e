"""Files written whole or not at all, made durable, and locked against a second writer.

`atomic_write` and `atomic_open` write a temporary file in the target's
directory, fsync it, rename it over the target and fsync the directory: after a
crash or power loss the target holds either its old content or the new content,
never an empty or half-written file. `exclusive_lock` keeps a second process off
a file or directory that one process writes (fcntl.flock: the kernel releases it
when the holder dies, so a lock file left behind by a killed process is free).
"""
import contextlib
import errno
import fcntl
import os
import socket


class LockError(RuntimeError):
    """Another process holds the lock; the message names it."""


def fsync_path(path):
    """Flushes a file's data, or a directory's entries (renames into it), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary_path(path):
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


@contextlib.contextmanager
def atomic_open(path, mode="w"):
    """A file object ("w": text in UTF-8, "wb": bytes) whose content replaces `path`
    durably when the block ends normally; if it raises, `path` is left as it was."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes with mode 'w' or 'wb' (got {mode!r})")
    tmp = _temporary_path(path)
    # O_EXCL: a fresh file; 0o666 lets the umask give the usual permissions.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with (open(fd, "wb") if mode == "wb"
              else open(fd, "w", encoding="utf-8", newline="\n")) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_path(os.path.dirname(os.path.abspath(path)))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, data):
    """Replaces `path` with `data` (str, written as UTF-8, or bytes), durably."""
    with atomic_open(path, "wb" if isinstance(data, (bytes, bytearray)) else "w") as f:
        f.write(data)


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
