"""`diffc graph SPEC -o FILE`: draw a model as DOT, Mermaid, HTML, SVG or PNG (never imports torch)."""
from __future__ import annotations

import click

from diffc.commands.common import error_format_option, model_option, spec_argument
from diffc.files import atomic_write
from diffc.errors import UserError
from diffc.graph.render import FORMATS, format_for, render


@click.command("graph", epilog="""\b
Examples:
  diffc graph specs/dit.diffspec --model DiT_XL_2 -o dit.png
  diffc graph specs/dit.diffspec --model DiT_tiny --expand -o tiny.html
  diffc graph specs/dit.diffspec | dot -Tsvg > dit.svg""")
@spec_argument
@model_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output file; its extension picks the format (.dot .mmd .html .svg .png). Default: DOT on stdout.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help="Format, overriding the extension.")
@click.option("--expand", is_flag=True, help="One node per layer instead of folding repeated blocks (`blocks x28`).")
@error_format_option
def graph(spec, model, output, fmt, expand, error_format):
    """Draw SPEC's model: composites as clusters, shapes on edges, @sync dashed, @route/@mp/@stage coloured.

    SVG and PNG need Graphviz's `dot`; DOT, Mermaid and HTML are written without it.
    """
    from diffc.compiler import compile_spec
    from diffc.graph.view import build_view
    fmt = format_for(output, fmt)
    if output is None and fmt == "png":
        raise UserError("PNG output needs a file", help="pass -o FILE.png")
    compiled = compile_spec(spec, model)
    view = build_view(compiled, expand=expand)
    data = render(view, fmt)
    if output is None:
        click.echo(data.decode(), nl=False)
        return
    atomic_write(output, data)
    mode = "expanded" if expand else "folded"
    click.echo(f"wrote {output} ({fmt}, {compiled.model_name}, {len(view.nodes)} nodes, {mode})", err=True)
