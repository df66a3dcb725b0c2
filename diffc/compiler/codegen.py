"""Code generation: the lowered IR -> straight-line Python source for a model's forward.

The source is built only from the IR's structure: every name in it is a sanitised identifier made here,
every constant a number or an `ascii()` string literal; nothing the user wrote is pasted in. Each method's
share (DTR mask gathers, @stage routing, LayerSync losses, a plug-in's call wrapper) comes from that method's
run-time hooks in its own module (diffc.methods): the generator asks every method, in pass order,

    start(gen)                          read the IR once (e.g. stage membership)
    context_fields(gen) -> set          per-forward facts it reads from `ctx` ("noise_fraction", "logsnr")
    prologue(gen)                       lines run once per forward, after `ctx` (e.g. stage rows)
    rows(node) -> str | None            the batch rows a node runs on (None: all)
    arg(gen, node, wire, value) -> str  the expression a node reads for an input (e.g. its stage's rows)
    context(gen, node, ctx) -> str      the run context a "context"-tagged block receives
    call_kwargs(gen, node, args)        extra keyword arguments of the node's call (e.g. route_mask=...)
    wrap_call(gen, node, fn, args)      (fn, args) replacing the call (e.g. a checkpoint wrapper), or None
    keeps_call(node) -> bool            the node must stay a module call (a stateless op is else inlined)
    emit_node(gen, node) -> bool        emit a node the generator does not know (e.g. stage_merge)
    aux(gen, key, tap) -> str | None    the expression of an aux entry (e.g. the LayerSync loss)
    buffer_factory(), runtime_names()   the function building the buffers it asked for with gen.buffer(key)
                                        (tensor = factory(*key)), the functions its code calls; `diffc export`
                                        copies diffc's own (torch-only) and imports a plug-in's

A `Target` says how the generated code reaches a node's module, parameter or buffer: the compiled
module indexes a tuple of its modules (diffc.compiler.emit), an exported file uses attribute paths.
"""
from __future__ import annotations

import keyword
import re

import attrs

from diffc.compiler.ir import nodes_in_order

ARGS = ("self", "x", "noise_level", "cond")
RESERVED = set(ARGS) | {"n", "ctx", "aux", "torch", "F", "math", "nn", "nm", "SimpleNamespace", "NOISE",
                        "make_context"}


class Namer:
    """Unique, valid Python identifiers derived from node names (`blocks.3.attn` -> `blocks_3_attn`)."""

    def __init__(self, reserved=()):
        self.reserved = RESERVED | set(reserved)     # plus the functions methods' code calls
        self.used: set[str] = set(self.reserved)

    def __call__(self, text: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", text) or "v"
        if base[0].isdigit():
            base = "v" + base
        if keyword.iskeyword(base) or base in self.reserved:
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
    """The generated forward: source text, the buffers it reads and the functions it calls."""
    source: str
    buffers: dict             # buffer name -> (factory, key): the tensor is factory(*key)
    names: dict               # name -> function the source calls (each method's runtime_names)


class Generator:
    """Emits one line per node in topological order; method hooks add their lines where needed."""

    def __init__(self, graph, interface, target: Target, registry):
        from diffc.methods import pass_order
        self.graph, self.interface, self.target, self.registry = graph, interface, target, registry
        self.model = graph.graph["model"]
        self.nodes = nodes_in_order(graph)
        self.lines: list[str] = []
        self.values: dict = {}            # (node name, port) -> expression
        self.cache: dict = {}             # per-forward memo for method hooks (masks, slices, contexts)
        self.buffers: dict = {}           # buffer name -> (method, key)
        self.tags = {n.name: registry.block(n.block).tags for n in self.nodes
                     if registry.block(n.block) is not None}      # blocks only (not inputs, merges)
        self.methods = {m.name: m.cls() for m in pass_order(registry)}
        self.runtime = {k: v for m in self._hooks("runtime_names") for k, v in m.runtime_names().items()}
        self.names = Namer(self.runtime)
        for method in self._hooks("start"):
            method.start(self)

    def _hooks(self, hook: str) -> list:
        return [m for m in self.methods.values() if hasattr(m, hook)]

    def emit(self, line: str) -> None:
        self.lines.append(line)

    def once(self, key, hint: str, expr: str) -> str:
        """A name bound to `expr` by one emitted line, the first time `key` is asked for (per forward)."""
        if key not in self.cache:
            name = self.names(hint)
            self.emit(f"{name} = {expr}")
            self.cache[key] = name
        return self.cache[key]

    def buffer(self, method: str, key) -> str:
        """The name of the buffer method `method` builds from `key` (one per distinct key)."""
        for name, entry in self.buffers.items():
            if entry == (method, key):
                return name
        name = f"_{method}_{len(self.buffers)}"
        self.buffers[name] = (method, key)
        return name

    def rows(self, node) -> str | None:
        return next((r for m in self._hooks("rows") if (r := m.rows(node)) is not None), None)

    # ---- the whole function -----------------------------------------------------------------------
    def generate(self) -> Forward:
        self.lines.extend(self.target.prologue)
        self._noise_prologue()
        for node in self.nodes:
            if node.block == "input":
                self._input(node)
            elif node.name in self.tags:
                self._call(node)
            elif not any(m.emit_node(self, node) for m in self._hooks("emit_node")):
                raise ValueError(f"no method emits node '{node.name}' ({node.block})")
        self._returns()
        body = "\n".join("    " + line for line in self.lines)
        source = f"def forward({', '.join(ARGS)}=None):\n{body}\n"
        buffers = {name: (self.methods[method].buffer_factory(), key) for name, (method, key) in self.buffers.items()}
        return Forward(source, buffers, self.runtime)

    def _noise_prologue(self) -> None:
        if any(n.meta.get("kind") in ("label", "text", "control") for n in self.nodes):
            self.emit("cond = cond or {}")
        self.emit("n = x.shape[0]")
        self.emit("noise_level = torch.as_tensor(noise_level, device=x.device)")
        self.emit("if noise_level.ndim == 0:")
        self.emit("    noise_level = noise_level.expand(n)")
        fields = set().union(*(m.context_fields(self) for m in self._hooks("context_fields")))
        if fields or any("context" in tags for tags in self.tags.values()):
            self.emit(f"ctx = make_context(noise_level, NOISE, {'logsnr' in fields})")
        for method in self._hooks("prologue"):
            method.prologue(self)

    # ---- nodes ------------------------------------------------------------------------------------
    def _input(self, node) -> None:
        kind = node.meta["kind"]
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
        tags = self.tags[node.name]
        outputs = self.registry.block(node.block).outputs
        if "param" in tags:
            self.values[(node.name, 0)] = self.target.ref(node)
            return
        args = [self.arg(node, w) for w in node.inputs if w is not None]
        if inlined(node, self.registry, self.methods.values()):
            name = self.names(node.name)
            expr = self.registry.block(node.block).load_module().inline(node.params, node.in_shapes, *args)
            self.emit(f"{name} = {expr}")
            self.values[(node.name, 0)] = name
            return
        kwargs = [kw for m in self._hooks("call_kwargs") for kw in m.call_kwargs(self, node, args)]
        if "context" in tags:
            ctx = "ctx"
            for method in self._hooks("context"):
                ctx = method.context(self, node, ctx)
            kwargs.append(f"ctx={ctx}")
        fn, call_args = self.target.ref(node), args + kwargs
        for method in self._hooks("wrap_call"):
            fn, call_args = method.wrap_call(self, node, fn, call_args) or (fn, call_args)
        outs = [self.names(node.name if len(outputs) == 1 else f"{node.name}_{o}") for o in outputs]
        for port, out in enumerate(outs):
            self.values[(node.name, port)] = out
        lhs = outs[0] if len(outs) == 1 else ", ".join(outs)
        self.emit(f"{lhs} = {fn}({', '.join(call_args)})  # {re.sub(r'[^A-Za-z0-9_]', '_', node.block)}")

    def arg(self, node, wire) -> str:
        """The expression `node` reads for an input wire (methods may narrow it, e.g. to a stage's rows)."""
        value = self.values[(wire.node.name, wire.port)]
        for method in self._hooks("arg"):
            value = method.arg(self, node, wire, value)
        return value

    def _returns(self) -> None:
        first, *rest = self.model.outputs
        self.emit("aux = {}")
        for key, tap in self.model.taps.items():
            expr = next((e for m in self._hooks("aux") if (e := m.aux(self, key, tap)) is not None), None)
            if expr is None:
                raise ValueError(f"no method computes the aux entry '{key}'")
            self.emit(f"aux[{ascii(key)}] = {expr}")
        for k, wire in enumerate(rest, 1):
            self.emit(f"aux['out{k}'] = {self.values[(wire.node.name, wire.port)]}")
        self.emit(f"return {self.values[(first.node.name, first.port)]}, aux")


def _dims(dims) -> str:
    return ", ".join(str(int(d)) for d in dims)


def inlined(node, registry, methods) -> bool:
    """A stateless block whose torch class writes itself as an expression: no module is built for it, unless
    a method needs the call (its `keeps_call(node)`, e.g. DTR's route_mask or a checkpoint wrapper)."""
    info = registry.block(node.block)
    if info is None or any(m.keeps_call(node) for m in methods if hasattr(m, "keeps_call")):
        return False
    return "stateless" in info.tags and "context" not in info.tags and hasattr(info.load_module(), "inline")


def generate_forward(graph, interface, target: Target) -> Forward:
    from diffc.registry import REGISTRY
    return Generator(graph, interface, target, REGISTRY).generate()
