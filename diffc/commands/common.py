"""Options and helpers shared by the commands."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

spec_argument = click.argument("spec", type=click.Path(dir_okay=False))
model_option = click.option("--model", "-m", default=None, help="Model or preset in the spec (default: the spec's `default`, else its last model).")
error_format_option = click.option("--error-format", type=click.Choice(["text", "json"]), default="text",
                                   help="Diagnostics as text (file:line:col with a caret) or JSON for editors.")


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write via a temporary file in the same directory and os.replace: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
