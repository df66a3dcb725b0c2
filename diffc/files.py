"""Writing files so that a crash never leaves a partial or lost file (checkpoints, specs, graphs, models)."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

from diffc.errors import UserError


def atomic_write(path: str | Path, content: bytes | str | Callable) -> None:
    """Write `content` (bytes, text, or a function writing to a binary handle) to a temporary file in the
    same folder, fsync it, then rename it over `path` and fsync the folder: a kill at any moment leaves
    the old file or the complete new one. An existing file keeps its permissions; a new one gets the umask's.
    A failed write (disk full, quota, permissions) removes the temporary file and is a UserError."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(path, exc) from None
    handle = _Recording(os.fdopen(fd, "wb"))
    try:
        with handle.file:
            if callable(content):
                content(handle)
            else:
                handle.write(content.encode() if isinstance(content, str) else content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        cause = exc if isinstance(exc, OSError) else handle.error   # torch.save reports a failed write as RuntimeError
        if cause is not None:
            raise _write_error(path, cause) from None
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class _Recording:
    """A binary file that remembers the first OSError its writes raised."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data):
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name):
        return getattr(self.file, name)


def _write_error(path: Path, exc: OSError) -> UserError:
    return UserError(f"cannot write {path}: {exc.strerror or exc}", file=str(path),
                     help="free some space or choose another location; any earlier version of the file is intact")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable_folder(folder: str | Path, what: str = "output folder") -> Path:
    """Create `folder` if needed and prove a file can be written in it: run before the work, not after."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".diffc-write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"cannot write to {what} {folder}: {exc.strerror or exc}",
                        help="choose a folder you can write to") from None
    return folder


def json_text(data, **options) -> str:
    """JSON for files other tools read: NaN and infinities become null (strict JSON has no NaN)."""
    return json.dumps(_finite(data), allow_nan=False, **options)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
