"""Options and helpers shared by the commands."""
from __future__ import annotations

import math
import re

import click

from diffc.bounds import SEED, Bound
from diffc.errors import UserError

spec_argument = click.argument("spec", type=click.Path(dir_okay=False))
model_option = click.option("--model", "-m", default=None, help="Model or preset in the spec (default: the spec's `default`, else its last model).")
error_format_option = click.option("--error-format", type=click.Choice(["text", "json"]), default="text",
                                   help="Diagnostics as text (file:line:col with a caret) or JSON for editors.")

format_option = click.option("--format", "file_format", type=click.Choice(["pt", "safetensors"]), default=None,
                             help="Model file format: pt (torch.save) or safetensors (read by diffusers, ComfyUI and "
                                  "any safetensors reader; no pickle). Default: by the file name's suffix.")


class DeviceType(click.ParamType):
    """`cpu`, `cuda` or `cuda:N`, checked as text here (no torch import); availability in `resolve_device`."""
    name = "cpu|cuda|cuda:N"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and re.fullmatch(r"cpu|cuda(:\d+)?", value):
            return value
        self.fail(f"'{value}' is not a device; use cpu, cuda or cuda:N", param, ctx)


device_option = click.option("--device", type=DeviceType(), default=None,
                             help="cpu, cuda or cuda:N (default: cuda when a GPU is available, else cpu)")


def resolve_device(device: str | None) -> str:
    """The --device value to use: the default filled in, a CUDA device checked to exist (else exit 2)."""
    import torch
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise UserError(f"--device {device}: " + (f"this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}"
                                                      if count else "no CUDA device is available"),
                            help="use --device cpu" + (", or one of the devices listed" if count else ""))
    return device


class FiniteFloat(click.ParamType):
    """A float flag that is finite and, given a Bound (diffc.bounds), inside it: `--guidance nan` is a usage error."""
    name = "float"

    def __init__(self, bound: Bound | None = None):
        self.bound = bound

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"'{value}' is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number", param, ctx)
        if self.bound is not None and not self.bound.accepts(number):
            self.fail(f"{number:g} is not {self.bound.meaning or 'allowed'} ({self.bound})", param, ctx)
        return number


SEED_TYPE = click.IntRange(SEED.low, SEED.high)      # the recipe's seed range
