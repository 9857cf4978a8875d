"""Atomic file writes: a temporary file in the target's directory, flushed, then renamed.

A failure at any point (an exception, a full disk, Ctrl-C) removes the temporary
file and leaves whatever was at the target untouched, so no reader ever sees a
half-written model, plot or data file.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator
from os import PathLike
from typing import BinaryIO


@contextlib.contextmanager
def atomic_write(path: str | PathLike) -> Iterator[BinaryIO]:
    """Open a binary file that replaces ``path`` only when the ``with`` block succeeds.

    A symlink is followed (its target is replaced, the link stays), an existing file's
    permissions are kept, and a target that is not a regular file (``/dev/stdout``, a
    FIFO) is written directly, since it cannot be replaced.
    """
    path = os.path.realpath(os.fspath(path))
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with open(path, "wb") as f:
            yield f
        return
    directory = os.path.dirname(path)
    _remove_stale_temporaries(directory, os.path.basename(path))
    # the writer's pid in the name lets a later write tell a killed writer's leftover
    # from a file another live process is still writing
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}-{secrets.token_hex(6)}.tmp")
    # O_EXCL: never write through someone else's file; mode 0o666 minus the umask,
    # the permissions a plain open() gives (mkstemp's would be private 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        if existing is not None:
            os.chmod(tmp, stat.S_IMODE(existing.st_mode))
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))


def _remove_stale_temporaries(directory: str, name: str) -> None:
    """Delete temporary files a killed writer of ``name`` left behind (SIGKILL or a power cut
    gives it no chance to clean up): those whose writer process no longer exists."""
    if os.name != "posix":  # no cheap liveness check: leave them
        return
    # exactly the names atomic_write gives this target: another target's dotted name
    # (".model.2024-06-01.npz.<pid>-<hex>.tmp" beside "model") must not match
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)-[0-9a-f]{{12}}\.tmp")
    try:
        candidates = [(e, m) for e in os.listdir(directory) if (m := pattern.fullmatch(e))]
    except OSError:
        return
    for entry, match in candidates:
        pid = int(match.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:  # the writer is gone: its file can never be completed
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, entry))
        except (PermissionError, OverflowError, OSError):  # alive (another user's) or not a pid
            pass


def ensure_writable_dir(directory: str | PathLike) -> None:
    """Create ``directory`` if needed and prove a file can be written there (``OSError`` if not):
    commands call this before long work, so an unwritable output fails first, not last."""
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory):
        pass
