"""The diffc compiler: parse -> resolve -> check -> lower -> emit.

`compile_spec` runs the plain-Python passes (no torch); `build_model` adds the emit pass.
"""
from __future__ import annotations

import os
from pathlib import Path

import attrs

from diffc.compiler.check import check
from diffc.compiler.interface_of import interface_of
from diffc.compiler.lower import lower
from diffc.compiler.program import Program, load_program, load_text
from diffc.compiler.resolve import resolve
from diffc.errors import UserError, attach_source


@attrs.define
class Compiled:
    """A checked, lowered model: its IR graph and interface (plain Python)."""
    program: Program
    graph: object
    interface: object
    model_name: str

    @property
    def ir(self):
        return self.graph.graph["model"]


@attrs.define
class BuiltModel:
    module: object
    interface: object
    spec_path: str
    spec_text: str
    spec_hash: str
    model_name: str
    recipe_path: Path | None
    compiled: Compiled


def compile_program(program: Program, model: str | None = None) -> Compiled:
    """resolve -> check -> lower -> (re-check substituted blocks); raises UserError with sources attached."""
    sources = program.sources()
    try:
        name = program.choose_model(model)
        graph = check(resolve(program, name), sources)
        graph = check(lower(graph), sources)
        return Compiled(program, graph, interface_of(graph), name)
    except UserError as err:
        attach_source(err.diagnostics, sources)
        raise


def compile_spec(path: str | Path, model: str | None = None) -> Compiled:
    return compile_program(load_program(path), model)


def emit_module(compiled: Compiled, device="cpu", seed: int | None = None):
    """The torch module; with `seed`, its initial weights are a function of the seed alone (the global RNG is
    restored afterwards), so two fresh runs of one recipe start from the same weights."""
    import torch
    from diffc.compiler.emit import CompiledModel
    try:
        with torch.device(device), torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            return CompiledModel(compiled.graph, compiled.interface)
    except UserError as err:
        attach_source(err.diagnostics, compiled.program.sources())
        raise


def _built(compiled: Compiled, device, spec_path: str, seed: int | None = None) -> BuiltModel:
    program = compiled.program
    recipe = None
    if program.recipe is not None:
        recipe = Path(os.path.normpath(Path(program.entry.path).parent / program.recipe.path))
    return BuiltModel(emit_module(compiled, device, seed), compiled.interface, spec_path, program.text(),
                      program.digest(), compiled.model_name, recipe, compiled)


def build_model(spec_path: str | Path, model: str | None = None, device="cpu",
                seed: int | None = None) -> BuiltModel:
    """Compile a spec file and build its torch module (device "meta" allocates no weights; `seed` fixes the
    initial weights)."""
    return _built(compile_spec(spec_path, model), device, str(spec_path), seed)


def build_model_from_text(text: str, filename: str = "<text>", model: str | None = None, device="cpu",
                          folder: str | Path | None = None) -> BuiltModel:
    """Like build_model, from source text. Imports come from the files bundled in `text` (a checkpoint's
    spec), or, only when `folder` is given, from the disk as for a spec file in that folder."""
    return _built(compile_program(load_text(text, filename, folder), model), device, filename)
