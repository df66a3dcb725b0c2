"""Options and helpers shared by the commands."""
from __future__ import annotations

import click

spec_argument = click.argument("spec", type=click.Path(dir_okay=False))
model_option = click.option("--model", "-m", default=None, help="Model or preset in the spec (default: the spec's `default`, else its last model).")
error_format_option = click.option("--error-format", type=click.Choice(["text", "json"]), default="text",
                                   help="Diagnostics as text (file:line:col with a caret) or JSON for editors.")
