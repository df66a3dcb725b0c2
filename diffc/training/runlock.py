"""One training per run directory: RUN/train.lock holds the trainer's PID under an exclusive flock.

The kernel drops a flock when its process dies (even by kill -9), so a lock file left behind by a dead run is
simply taken over, with a note naming the old PID. Taking the lock also sweeps `.*.tmp` files that killed atomic
writes (diffc.files.atomic_write) left in the run directory: with the lock held, no writer can own them.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path
from typing import Callable

from diffc.errors import UserError

LOCK_NAME = "train.lock"
_TEMPORARY = re.compile(r"^\..+\.tmp$")          # atomic_write: .<name>.<random>.tmp beside the target


@contextlib.contextmanager
def run_lock(run_dir, note: Callable[[str], None] = print):
    """Hold RUN's lock for the `with` body; UserError naming the holder's PID when another training holds it."""
    import fcntl
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot write to run directory {run_dir}: {exc.strerror or exc}",
                        help="choose a writable --run-dir") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = _read_pid(fd)
            raise UserError(f"run directory {run_dir} is in use by another training (PID {holder or 'unknown'})",
                            file=str(run_dir / LOCK_NAME),
                            help="wait for it to finish or stop it, or train into another --run-dir") from None
        previous = _read_pid(fd)
        if previous and previous != os.getpid():
            note(f"note: taking over the lock of run directory {run_dir} from PID {previous}, which is no longer "
                 "running")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        removed = remove_temporary_files(run_dir)
        if removed:
            note(f"note: removed {len(removed)} temporary file(s) ({sum(removed) / 2 ** 20:.1f} MiB) left by "
                 "interrupted writes")
        try:
            yield
        finally:
            os.ftruncate(fd, 0)                   # released cleanly: the next run takes it without a note
    finally:
        os.close(fd)                              # closing drops the flock


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def remove_temporary_files(run_dir: Path) -> list[int]:
    """Delete atomic-write leftovers in RUN and its sub-folders (one level); the sizes of those removed."""
    sizes = []
    for folder in [run_dir, *(p for p in run_dir.iterdir() if p.is_dir() and not p.is_symlink())]:
        for path in folder.iterdir():
            if _TEMPORARY.match(path.name) and path.is_file() and not path.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    size = path.stat().st_size
                    path.unlink()
                    sizes.append(size)
    return sizes
