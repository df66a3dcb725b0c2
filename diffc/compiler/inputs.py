"""Model input declarations: `input x: sample[C, H, W]`, `input t: timestep[1000]`, `input y: label[N]` ..."""
from __future__ import annotations

from diffc.compiler.ir import InputIR
from diffc.errors import did_you_mean, fail
from diffc.interface import COND_KINDS

# kind -> (number of positional dims, allowed options with defaults)
INPUT_KINDS = {
    "sample": (3, {}),
    "timestep": (1, {"schedule": "linear"}),
    "time": (0, {"path": "linear"}),
    "sigma": (0, {}),
    "label": (1, {}),
    "text": (2, {}),
    "control": (1, {}),
}
FORMS = {"sample": "sample[channels, height, width]", "timestep": 'timestep[T, schedule = "linear"]',
         "time": "time", "sigma": "sigma", "label": "label[classes]", "text": "text[length, width]",
         "control": "control[K]"}
MAX_TIMESTEPS = 100_000      # per-step tables (schedules, DTR masks) are built from this count
ALLOWED = {"schedule": ("linear", "cosine"), "path": ("linear",)}


def make_input(evaluator, stmt, node, uses, scope, declared: list) -> InputIR:
    """The InputIR of `stmt`; dimensions are evaluated by `evaluator`, `declared` are the inputs so far."""
    if stmt.kind not in INPUT_KINDS:
        raise fail(f"unknown input kind '{stmt.kind}'", stmt.kind_loc, help=did_you_mean(stmt.kind, INPUT_KINDS)
                   or "kinds: " + ", ".join(FORMS.values()))
    ndims, defaults = INPUT_KINDS[stmt.kind]
    dims = [evaluator.constant(a, scope, "an input dimension") for a in stmt.args]
    if len(dims) != ndims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise fail(f"input '{stmt.name}' of kind {stmt.kind} is written {FORMS[stmt.kind]}", stmt.kind_loc)
    if stmt.kind == "timestep" and dims[0] > MAX_TIMESTEPS:
        raise fail(f"timestep[{dims[0]:,}] has more steps than diffc's limit of {MAX_TIMESTEPS:,}", stmt.args[0].loc,
                   help="discrete-time models use about 1000 steps (DDPM); use `time` or `sigma` for continuous time")
    options = dict(defaults)
    for kw in stmt.kwargs:
        if kw.name not in defaults:
            raise fail(f"{stmt.kind} has no option '{kw.name}'", kw.loc, help=did_you_mean(kw.name, defaults))
        value = evaluator.constant(kw.value, scope, f"option '{kw.name}'")
        if value not in ALLOWED[kw.name]:
            raise fail(f"{kw.name} must be one of {', '.join(ALLOWED[kw.name])}, got {value!r}", kw.value.loc)
        options[kw.name] = value
    for use in uses:
        if use.name in ("drop", "control") and stmt.kind not in COND_KINDS:
            raise fail(f"@{use.name} applies to conditions (label, text, control), not to {stmt.kind}", use.loc)
    for other in declared:
        if other.kind == stmt.kind == "sample" or (other.kind in ("timestep", "time", "sigma")
                                                   and stmt.kind in ("timestep", "time", "sigma")):
            raise fail(f"a model has one {'sample' if stmt.kind == 'sample' else 'noise-level'} input; "
                       f"'{other.name}' (line {other.loc.line}) is already one", stmt.loc)
    node.out_shapes = (shape_of(stmt.kind, dims),)
    if stmt.kind == "text":          # `txt.mask`: True where a token is real (diffc.interface)
        node.out_shapes += ((dims[0],),)
        node.meta["outputs"] = ("embedding", "mask")
    node.meta["kind"] = stmt.kind
    return InputIR(stmt.name, stmt.kind, tuple(dims), options, node, uses, stmt.loc)


def shape_of(kind: str, dims: list) -> tuple:
    if kind == "sample":
        return tuple(dims)
    if kind == "text":
        return tuple(dims)
    if kind == "control":
        return (dims[0],)
    return ()
