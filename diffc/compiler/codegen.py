"""Code generation: the lowered IR -> straight-line Python source for a model's forward.

The source is built only from the IR's structure: every name in it is a sanitised identifier made here,
every constant a number or an `ascii()` string literal; nothing the user wrote is pasted in. Each method's
share (DTR mask gathers, @stage routing, LayerSync losses) comes from one small function in
diffc.compiler.codegen_methods, so a method's code lives in one place.

A `Target` says how the generated code reaches a node's module, parameter or buffer: the compiled
module indexes a tuple of its modules (diffc.compiler.emit), an exported file uses attribute paths.
"""
from __future__ import annotations

import keyword
import re

import attrs

from diffc.compiler import codegen_methods as methods
from diffc.compiler.ir import nodes_in_order

ARGS = ("self", "x", "noise_level", "cond")
RUNTIME_NAMES = ("NOISE", "make_context", "route_rows", "stage_members", "slice_context")
RESERVED = set(ARGS) | set(RUNTIME_NAMES) | {"n", "ctx", "aux", "torch", "F", "math", "nn", "nm", "SimpleNamespace"}


class Namer:
    """Unique, valid Python identifiers derived from node names (`blocks.3.attn` -> `blocks_3_attn`)."""

    def __init__(self):
        self.used: set[str] = set(RESERVED)

    def __call__(self, text: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", text) or "v"
        if base[0].isdigit():
            base = "v" + base
        if keyword.iskeyword(base) or base in RESERVED:
            base += "_"
        name, k = base, 2
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        assert name.isidentifier() and name.isascii()
        return name


@attrs.define
class Target:
    """How generated code refers to the model's pieces."""
    ref: object               # node -> expression for its module (or parameter)
    buffer: object            # buffer name -> expression
    prologue: tuple = ()      # lines run first (e.g. binding the module tuple)
    force_stage: str = "self.force_stage"   # expression: None, or the stage every sample is sent to


@attrs.define
class Forward:
    """The generated forward: source text plus the DTR mask tables it reads."""
    source: str
    buffers: dict             # buffer name -> route table key (channels, window, weight, tasks)


class Generator:
    """Emits one line per node in topological order; method hooks add their lines where needed."""

    def __init__(self, graph, interface, target: Target, registry):
        self.graph, self.interface, self.target, self.registry = graph, interface, target, registry
        self.model = graph.graph["model"]
        self.nodes = nodes_in_order(graph)
        self.names = Namer()
        self.lines: list[str] = []
        self.values: dict = {}            # (node name, port) -> expression
        self.cache: dict = {}             # per-forward memo for method hooks (masks, slices, contexts)
        self.buffers: dict = {}
        self.stage_of = {}                # node name -> (region index, stage) or None
        self.regions = [(r["label"], list(r["boundaries"])) for r in self.model.stage_regions]
        region_index = {label: i for i, (label, _) in enumerate(self.regions)}
        self.tags = {}                    # node name -> registry tags (blocks only)
        for node in self.nodes:
            self.stage_of[node.name] = (region_index[node.stage[0]], node.stage[1]) if node.stage else None
            if node.block not in ("input", "stage_merge"):
                self.tags[node.name] = registry.block(node.block).tags

    def emit(self, line: str) -> None:
        self.lines.append(line)

    # ---- the whole function -----------------------------------------------------------------------
    def generate(self) -> Forward:
        self.lines.extend(self.target.prologue)
        self._noise_prologue()
        for node in self.nodes:
            if node.block == "input":
                self._input(node)
            elif node.block == "stage_merge":
                methods.stage_merge(self, node)
            else:
                self._call(node)
        self._returns()
        body = "\n".join("    " + line for line in self.lines)
        source = f"def forward({', '.join(ARGS)}=None):\n{body}\n"
        return Forward(source, self.buffers)

    def _noise_prologue(self) -> None:
        if any(n.context.get("kind") in ("label", "text", "control") for n in self.nodes):
            self.emit("cond = cond or {}")
        self.emit("n = x.shape[0]")
        self.emit("noise_level = torch.as_tensor(noise_level, device=x.device)")
        self.emit("if noise_level.ndim == 0:")
        self.emit("    noise_level = noise_level.expand(n)")
        if self.needs_context():
            self.emit(f"ctx = make_context(noise_level, NOISE, {bool(self.regions)})")
        methods.stage_prologue(self)

    def needs_context(self) -> bool:
        return bool(self.regions) or any(n.route is not None for n in self.nodes) or any(
            "context" in tags for tags in self.tags.values())

    # ---- nodes ------------------------------------------------------------------------------------
    def _input(self, node) -> None:
        kind = node.context["kind"]
        if kind == "sample":
            self.values[(node.name, 0)] = "x"
            return
        if kind in ("timestep", "time", "sigma"):
            self.values[(node.name, 0)] = "noise_level"
            return
        spec = self.interface.condition(node.name)
        name = self.names(node.name)
        self.emit(f"{name} = cond.get({ascii(node.name)})")
        self.emit(f"if {name} is None:")
        if spec.kind == "label":
            self.emit(f"    {name} = torch.full((n,), {int(spec.classes)}, dtype=torch.long, device=x.device)")
        elif spec.kind == "control":
            self.emit(f"    {name} = torch.full((n, {_dims(spec.dims)}), float('nan'), device=x.device)")
        else:
            self.emit(f"    {name} = torch.zeros((n, {_dims(spec.dims)}), device=x.device)")
        self.values[(node.name, 0)] = name
        if spec.kind == "text":
            mask = self.names(node.name + "_mask")
            self.emit(f"{mask} = cond.get({ascii(node.name + '.mask')})")
            self.emit(f"if {mask} is None:")
            self.emit(f"    {mask} = torch.ones({name}.shape[:2], dtype=torch.bool, device=x.device)")
            self.values[(node.name, 1)] = mask

    def _call(self, node) -> None:
        stage, tags = self.stage_of[node.name], self.tags[node.name]
        outputs = self.registry.block(node.block).outputs
        if "param" in tags:
            self.values[(node.name, 0)] = self.target.ref(node)
            return
        args = [self.arg(w, stage) for w in node.inputs if w is not None]
        if inlined(node, self.registry):
            name = self.names(node.name)
            expr = self.registry.block(node.block).load_module().inline(node.params, node.in_shapes, *args)
            self.emit(f"{name} = {expr}")
            self.values[(node.name, 0)] = name
            return
        kwargs = []
        if node.route is not None:
            kwargs.append(f"route_mask={methods.route_mask(self, node, stage, args[0])}")
        if "context" in tags:
            kwargs.append(f"ctx={methods.stage_context(self, stage)}")
        fn = self.target.ref(node)
        outs = [self.names(node.name if len(outputs) == 1 else f"{node.name}_{o}") for o in outputs]
        for port, out in enumerate(outs):
            self.values[(node.name, port)] = out
        lhs = outs[0] if len(outs) == 1 else ", ".join(outs)
        self.emit(f"{lhs} = {fn}({', '.join(args + kwargs)})  # {re.sub(r'[^A-Za-z0-9_]', '_', node.block)}")

    def arg(self, wire, stage) -> str:
        """The expression for a wire as seen by a node of `stage` (its stage's rows of an outer value)."""
        value = self.values[(wire.node.name, wire.port)]
        producer = wire.node.name
        if stage is None or self.stage_of[producer] == stage or "param" in self.tags.get(producer, ()):
            return value             # weights have no batch rows
        return methods.stage_slice(self, value, stage)

    def _returns(self) -> None:
        first, *rest = self.model.outputs
        self.emit("aux = {}")
        for key, refs in self.model.taps.items():
            if isinstance(refs, tuple):
                self.emit(f"aux[{ascii(key)}] = {methods.sync_loss(self, refs)}")
            else:
                self.emit(f"aux[{ascii(key)}] = {self.values[(refs.node.name, refs.port)]}")
        for k, wire in enumerate(rest, 1):
            self.emit(f"aux['out{k}'] = {self.values[(wire.node.name, wire.port)]}")
        self.emit(f"return {self.values[(first.node.name, first.port)]}, aux")


def _dims(dims) -> str:
    return ", ".join(str(int(d)) for d in dims)


def inlined(node, registry) -> bool:
    """A stateless block whose torch class writes itself as an expression: no module is built for it."""
    if node.block in ("input", "stage_merge") or node.route is not None:
        return False
    info = registry.block(node.block)
    return "stateless" in info.tags and "context" not in info.tags and hasattr(info.load_module(), "inline")


def generate_forward(graph, interface, target: Target) -> Forward:
    from diffc.registry import REGISTRY
    return Generator(graph, interface, target, REGISTRY).generate()
