"""`diffc export`: write a compiled model as a standalone PyTorch file."""
from __future__ import annotations

import click

from diffc.commands.common import model_option, spec_argument


@click.command("export")
@spec_argument
@model_option
@click.option("--out", "-o", type=click.Path(dir_okay=False), required=True, help="The Python file to write.")
def export(spec, model, out):
    """Write SPEC's model as one readable PyTorch file that needs torch, not diffc.

    The module it defines has the compiled model's state_dict keys and outputs; its forward is the
    spec's graph as straight-line code, with the methods (DTR masks, stages, LayerSync) written out.

    \b
    Example:  diffc export specs/dit_dtr.diffspec --model DiT_tiny_DTR -o dit_tiny_dtr.py
              python -c "import dit_tiny_dtr, torch; m = dit_tiny_dtr.DiT_tiny_DTR()"
    """
    from diffc.compiler import compile_spec
    from diffc.compiler.export import export_source
    from diffc.errors import UserError
    from diffc.files import atomic_write
    compiled = compile_spec(spec, model)
    try:
        atomic_write(out, export_source(compiled))
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror or err}", help="pass -o a writable file path") from None
    click.echo(f"exported {compiled.model_name} to {out}")
