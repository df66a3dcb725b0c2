"""`diffc fmt SPEC`: print a spec in canonical form (dsl/printer.py); `--write` rewrites it, `--check` tests it."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from diffc.files import atomic_write


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
    from diffc.text import read_text
    text = read_text(spec, "spec")
    formatted = format_text(text, str(spec))
    if check:
        if formatted != text:
            click.echo(f"would reformat {spec}", err=True)
            sys.exit(1)
    elif write:
        if formatted == text:
            click.echo(f"{spec} is already formatted", err=True)
        else:
            atomic_write(spec, formatted)
            click.echo(f"reformatted {spec}", err=True)
    else:
        click.echo(formatted, nl=False)
