"""Emit pass: the checked, lowered IR -> a torch.nn.Module.

Modules with weights or buffers sit in a tree of ModuleDicts that mirrors the dotted node names, so
state_dict keys are the spec's names (blocks.3.attn.qkv.weight). Forward is straight-line Python generated
from the IR once (diffc.compiler.codegen) and compiled here: no per-node interpreter at run time.
"""
from __future__ import annotations

import itertools
import keyword
import linecache

import torch
import torch.nn.functional as F
from torch import nn

from diffc.compiler import runtime
from diffc.compiler.codegen import Target, generate_forward, inlined
from diffc.compiler.ir import nodes_in_order
from diffc.errors import fail
from diffc.methods import methods_in_order
from diffc.registry import REGISTRY


class CompiledModel(nn.Module):
    """`pred, aux = model(x, noise_level, cond)`; see diffc.interface for the contract."""

    def __init__(self, graph, interface):
        super().__init__()
        self.interface = interface
        self.force_stage: int | None = None      # diffc compile: route every sample to one stage (meta FLOPs)
        objects, refs = [], {}                   # the generated code calls objects[i] for node i
        methods = methods_in_order()
        for node in nodes_in_order(graph):
            if REGISTRY.block(node.block) is None or inlined(node, REGISTRY, methods):   # inputs, merges, inlined
                continue
            owner, leaf, obj = self._build(node)
            if owner is None:
                refs[node.name] = f"nm[{len(objects)}]"
                objects.append(obj)
            elif owner is self:                   # parameters by name, so load_state_dict(assign=True) holds
                refs[node.name] = _attribute("self", leaf)
            else:
                refs[node.name] = _attribute(f"nm[{len(objects)}]", leaf)
                objects.append(owner)
        self._node_objects = tuple(objects)
        target = Target(ref=lambda node: refs[node.name], buffer=lambda name: f"self.{name}",
                        prologue=("nm = self._node_objects",))
        plan = generate_forward(graph, interface, target)
        for name, (factory, key) in plan.buffers.items():
            self.register_buffer(name, factory(*key), persistent=False)
        self.forward_source = plan.source
        self._forward = _compile(plan.source, interface, plan.names)

    # ---- construction ---------------------------------------------------------------------------
    def _build(self, node):
        """(owner, leaf, None) for a parameter node, else (None, None, module); registers weights by name."""
        info = REGISTRY.block(node.block)
        cls = info.load_module()
        if "param" in info.tags:
            param = cls.make(node.params, node.out_shapes[0])
            return self._register(node, param=param), node.name.split(".")[-1], None
        module = cls(node.params, node.in_shapes, node.out_shapes)
        if any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
            self._register(node, module=module)
        return None, None, module

    def _register(self, node, module=None, param=None) -> None:
        *path, leaf = node.name.split(".")
        parent = self
        for part in path:
            child = parent._modules.get(part)
            if child is None:
                child = nn.ModuleDict()
                self._add(parent, part, child, node)
            elif not isinstance(child, nn.ModuleDict):
                raise fail(f"'{node.name}' would nest weights inside the weights of node '{part}'", node.loc,
                           help="rename one of them (`as \"name\"`) so state_dict keys do not clash")
            parent = child
        if param is not None:
            if leaf in parent._parameters or leaf in parent._modules:
                raise fail(f"weights named '{node.name}' clash with another node", node.loc)
            parent.register_parameter(leaf, param)
        else:
            self._add(parent, leaf, module, node)
        return parent

    @staticmethod
    def _add(parent, name, module, node) -> None:
        if name in parent._modules or (parent.__class__ is not nn.ModuleDict and hasattr(parent, name)):
            raise fail(f"node name '{node.name}' clashes with an existing name ('{name}')", node.loc,
                       help="rename the node with `as \"name\"`")
        parent.add_module(name, module)

    # ---- forward --------------------------------------------------------------------------------
    def forward(self, x, noise_level, cond=None):
        return self._forward(self, x, noise_level, cond)


_SOURCES = itertools.count()


def _attribute(owner: str, leaf: str) -> str:
    if leaf.isidentifier() and leaf.isascii() and not keyword.iskeyword(leaf):
        return f"{owner}.{leaf}"
    return f"getattr({owner}, {ascii(leaf)})"


def _compile(source: str, interface, names: dict):
    """Compile generated source (never user text) into a function; its lines show up in tracebacks."""
    filename = f"<diffc forward {next(_SOURCES)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {**names, "torch": torch, "F": F, "NOISE": interface.noise, "make_context": runtime.make_context}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["forward"]
