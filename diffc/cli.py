"""`diffc` command line. Sub-commands load lazily so that check/fmt/graph/blocks never import torch."""
from __future__ import annotations

import importlib
import sys

import click

from diffc.errors import Interrupted, UserError, did_you_mean

# name -> "module:function"; each module defines a click command.
COMMANDS = {
    "check": "diffc.commands.language:check",
    "compile": "diffc.commands.language:compile_cmd",
    "export": "diffc.commands.export:export",
    "fmt": "diffc.commands.fmt:fmt",
    "graph": "diffc.commands.graph:graph",
    "blocks": "diffc.commands.language:blocks",
    "train": "diffc.commands.train:train",
    "sample": "diffc.commands.sample:sample",
    "eval": "diffc.commands.evaluate:eval_cmd",
    "ema": "diffc.commands.ema:ema",
    "stages": "diffc.commands.stages:stages",
    "import-weights": "diffc.commands.language:import_weights",
    "study": "diffc.commands.study:study",
    "encode": "diffc.commands.encode:encode",
    "decode": "diffc.commands.encode:decode",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:  # a command whose module is not written yet
            if exc.name == module:
                return None
            raise

    def resolve_command(self, ctx, args):
        """An unknown command name is a usage error (exit 2) that suggests the closest one (difflib)."""
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            hint = did_you_mean(args[0], self.list_commands(ctx))
            raise click.UsageError(f"no such command '{args[0]}'" + (f"; {hint}" if hint else "")
                                   + f"\ncommands: {', '.join(self.list_commands(ctx))}", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="diffc")
def cli():
    """diffc: declarative diffusion models. Write a .diffspec, then check, compile, graph, train, sample, eval."""


def main(argv=None):
    """Entry point: user errors print located diagnostics and exit 2, never a traceback."""
    try:
        cli.main(args=argv, prog_name="diffc", standalone_mode=False)
    except UserError as err:
        fmt = "json" if _wants_json(argv) else "text"
        click.echo(err.render(fmt), err=fmt == "text")
        sys.exit(2)
    except Interrupted as stop:             # a signal stopped a run after it saved its state
        click.echo(str(stop), err=True)
        sys.exit(stop.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:   # bad flags, missing files: click's usage errors
        err.show()
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    sys.exit(0)


def _wants_json(argv) -> bool:
    args = sys.argv[1:] if argv is None else argv
    return any(a == "--error-format=json" or (a == "json" and i and args[i - 1] == "--error-format")
               for i, a in enumerate(args))


if __name__ == "__main__":
    main()
