"""`diffc fmt SPEC`: print a spec in canonical form (dsl/printer.py); `--write` rewrites it, `--check` tests it."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import click


@click.command("fmt", epilog="""\b
Examples:
  diffc fmt specs/dit.diffspec            print the canonical form
  diffc fmt specs/dit.diffspec --write    rewrite the file (only if it changes)
  diffc fmt specs/dit.diffspec --check    exit 1 if the file is not canonical (CI)""")
@click.argument("spec", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--write", is_flag=True, help="rewrite SPEC in place, only when its text changes")
@click.option("--check", is_flag=True, help="change nothing; exit 1 if SPEC is not in canonical form")
def fmt(spec: Path, write: bool, check: bool):
    """Print SPEC in canonical form; formatting never changes the module a spec compiles to."""
    from diffc.dsl.printer import format_text
    if write and check:
        raise click.UsageError("--write and --check cannot be used together")
    text = spec.read_text()
    formatted = format_text(text, str(spec))
    if check:
        if formatted != text:
            click.echo(f"would reformat {spec}", err=True)
            sys.exit(1)
    elif write:
        if formatted == text:
            click.echo(f"{spec} is already formatted", err=True)
        else:
            write_atomically(spec, formatted)
            click.echo(f"reformatted {spec}", err=True)
    else:
        click.echo(formatted, nl=False)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` via a temporary file in the same folder, keeping its permissions."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
