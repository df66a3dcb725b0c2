"""`diffc export`: a compiled model as one standalone PyTorch file (torch only; no diffc import).

The file holds the block classes the model uses (their source from diffc.blocks.nn, with every helper
they reach), the few runtime functions of diffc.compiler.runtime the forward calls, and one nn.Module
whose __init__ builds the same module tree (same state_dict keys, same init order) and whose forward is
the generated straight-line code of diffc.compiler.codegen.
"""
from __future__ import annotations

import ast
import inspect
import keyword
import math
import re
import sys
import textwrap
import types

import attrs

from diffc.compiler import runtime
from diffc.compiler.codegen import Target, generate_forward, inlined
from diffc.compiler.ir import nodes_in_order
from diffc.errors import UserError
from diffc.methods import methods_in_order
from diffc.registry import REGISTRY


class Sources:
    """Top-level definitions copied from diffc modules, each after the ones it uses, plus their imports."""

    def __init__(self):
        self.defs: dict[str, str] = {}       # name -> source, in dependency order
        self.owner: dict[str, object] = {}
        self.imports: set[str] = set()

    def add(self, name: str, obj) -> None:
        if name in self.owner:
            if self.owner[name] is not obj:
                raise UserError(f"cannot export: two different definitions are named '{name}'")
            return
        self.owner[name] = obj
        module = sys.modules[obj.__module__]
        if not _exportable(module.__name__):
            raise UserError(f"cannot export '{name}' from {module.__name__}: only diffc's own blocks are exported")
        if isinstance(obj, (types.FunctionType, type)):
            source = textwrap.dedent(inspect.getsource(obj))
            for base in (obj.__mro__[1:] if isinstance(obj, type) else ()):
                if base.__module__.startswith("diffc"):
                    self.add(base.__name__, base)
            for ref in sorted(_free_names(source)):
                self._global(ref, module)
        else:
            source = f"{name} = {literal(obj)}"
        self.defs[name] = source

    def _global(self, ref: str, module) -> None:
        if ref not in module.__dict__:
            return                            # a builtin
        value = module.__dict__[ref]
        if isinstance(value, types.ModuleType):
            if value.__name__.startswith("diffc"):
                raise UserError(f"cannot export {module.__name__}: it uses the diffc module {value.__name__}")
            parent, _, last = value.__name__.rpartition(".")
            self.imports.add(f"import {value.__name__}" if value.__name__ == ref else
                             f"from {parent} import {ref}" if last == ref else f"import {value.__name__} as {ref}")
        elif getattr(value, "__module__", "").startswith("diffc"):
            self.add(ref, value)
        elif isinstance(value, (int, float, str, tuple)):
            self.defs.setdefault(ref, f"{ref} = {literal(value)}")
        else:
            self.imports.add(f"from {value.__module__} import {value.__name__} as {ref}"
                             if value.__name__ != ref else f"from {value.__module__} import {ref}")


def _exportable(module: str) -> bool:
    return module.startswith(("diffc.blocks.nn", "diffc.methods")) or module in ("diffc.compiler.runtime",
                                                                                  "diffc.schedules")


def _free_names(source: str) -> set[str]:
    """Names a definition reads that it does not bind itself (arguments, assignments, imports, loops)."""
    tree = ast.parse(source)
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    top = tree.body[0]
    return used - bound - {top.name}


def literal(value) -> str:
    """Python source for a block parameter value (numbers, strings, None, lists, tuples, dicts)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({ascii(repr(value))})"
    if isinstance(value, str):
        return ascii(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    raise UserError(f"cannot export a block parameter of type {type(value).__name__}")


def _params(p) -> str:
    if p is None:
        return "SimpleNamespace()"
    fields = ", ".join(f"{f.name}={literal(getattr(p, f.name))}" for f in attrs.fields(type(p)))
    return f"SimpleNamespace({fields})"


def _path(parts) -> str:
    """`self.enc["0"].blocks` style access to a node in the module tree."""
    if not parts:
        return "self"
    text = f"self.{parts[0]}" if _plain(parts[0]) else f"getattr(self, {ascii(parts[0])})"
    for part in parts[1:]:
        text += f"[{ascii(part)}]"
    return text


def _plain(part: str) -> bool:
    return part.isidentifier() and part.isascii() and not keyword.iskeyword(part)


def _param_path(parts) -> str:
    owner, leaf = _path(parts[:-1]), parts[-1]
    return f"{owner}.{leaf}" if _plain(leaf) else f"getattr({owner}, {ascii(leaf)})"


def export_source(compiled) -> str:
    graph, interface, name = compiled.graph, compiled.interface, compiled.model_name
    sources = Sources()
    init, containers, leaves = [], set(), {}
    methods = methods_in_order()
    for node in nodes_in_order(graph):
        if REGISTRY.block(node.block) is None or inlined(node, REGISTRY, methods):
            continue
        info = REGISTRY.block(node.block)
        cls = info.load_module()
        sources.add(cls.__name__, cls)
        parts = node.name.split(".")
        for k in range(1, len(parts)):
            prefix = tuple(parts[:k])
            if prefix in leaves:
                raise UserError(f"cannot export: node '{node.name}' sits inside node '{'.'.join(prefix)}'")
            if prefix not in containers:
                containers.add(prefix)
                init.append(f"{_assign(prefix)} = nn.ModuleDict()")
        leaves[tuple(parts)] = node
        shapes = f"{literal(dict(node.in_shapes or {}))}, {literal(tuple(tuple(s) for s in node.out_shapes))}"
        if "param" in info.tags:
            made = f"{cls.__name__}.make({_params(node.params)}, {literal(tuple(node.out_shapes[0]))})"
            init.append(_register_param(parts, made))
        else:
            init.append(f"{_assign(tuple(parts))} = {cls.__name__}({_params(node.params)}, {shapes})")
    refs = {n.name: (_param_path(n.name.split(".")) if "param" in REGISTRY.block(n.block).tags
                     else _path(n.name.split("."))) for n in leaves.values()}
    target = Target(ref=lambda node: refs[node.name], buffer=lambda b: f"self.{b}", force_stage="None")
    plan = generate_forward(graph, interface, target)
    for buffer, (factory, key) in plan.buffers.items():
        sources.add(factory.__name__, factory)
        made = f"{factory.__name__}({literal(key)[1:-1]})"
        init.append(f"self.register_buffer({ascii(buffer)}, {made}, persistent=False)")
    for fn_name, fn in {"make_context": runtime.make_context, **plan.names}.items():
        if not re.search(rf"\b{fn_name}\(", plan.source):
            continue
        if fn.__module__.startswith("diffc"):
            sources.add(fn_name, fn)         # a method's own run-time function: copied (torch only)
        else:                                # e.g. a plug-in's torch.utils.checkpoint: imported
            sources.imports.add(f"from {fn.__module__} import {fn.__name__} as {fn_name}")
    return _file(name, compiled, sources, init, plan.source, interface)


def _assign(parts: tuple) -> str:
    if len(parts) == 1 and _plain(parts[0]):
        return f"self.{parts[0]}"
    if len(parts) == 1:
        raise UserError(f"cannot export a top-level node named '{parts[0]}' (not an attribute name)")
    return f"{_path(parts[:-1])}[{ascii(parts[-1])}]"


def _register_param(parts, made: str) -> str:
    if len(parts) == 1:
        return f"{_assign(tuple(parts))} = {made}"
    return f"{_path(parts[:-1])}.register_parameter({ascii(parts[-1])}, {made})"


def _file(name, compiled, sources, init, forward, interface) -> str:
    noise = interface.noise
    cls = re.sub(r"[^A-Za-z0-9_]", "_", name)
    cls = cls if cls[:1].isalpha() else "Model_" + cls
    header = [f'"""{cls}: a diffusion network exported by `diffc export` (standalone: torch only).',
              "", "    pred, aux = model(x, noise_level, cond)", "",
              "x [N, C, H, W]; noise_level [N] (or a scalar); cond: dict of conditions (a missing one is null).",
              '"""', "from __future__ import annotations", "", "from types import SimpleNamespace", ""]
    imports = sorted(sources.imports | {"import torch", "import torch.nn.functional as F", "from torch import nn"},
                     key=lambda line: (line.startswith("from"), line))
    body = header + imports + ["", ""]
    for source in sources.defs.values():
        body += [source.rstrip(), "", ""]
    body.append(f"NOISE = SimpleNamespace(kind={literal(noise.kind)}, steps={literal(noise.steps)}, "
                f"schedule={literal(noise.schedule)})")
    body += ["", "", f"class {cls}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    body += ["        " + line for line in init]
    body.append("")
    body += ["    " + line if line else "" for line in forward.rstrip().splitlines()]
    return "\n".join(body) + "\n"
