"""Registry records, the `@block` / `@annotation` / `@method` decorators, and plugin discovery."""
from __future__ import annotations

import importlib
import pkgutil
import types
import typing
from importlib.metadata import entry_points
from typing import Any

import attrs

ENTRY_POINT_GROUPS = ("diffc.blocks", "diffc.methods")   # plug-in packages register through either
BUILTIN_PACKAGES = ("diffc.blocks", "diffc.methods")   # every plain module in them registers (not .nn)
BUILTIN_MODULES = ("diffc.registry.annotations",)


class ShapeError(Exception):
    """Raised by a shape rule. `port` names the offending input (None: the block as a whole)."""

    def __init__(self, message: str, port: str | None = None):
        super().__init__(message)
        self.port = port


@attrs.frozen
class Link:
    """An `a -> b` annotation argument (e.g. LayerSync's student -> teacher)."""
    src: Any
    dst: Any


@attrs.frozen
class BlockInfo:
    name: str
    params: type                      # attrs class: fields are the block's parameters
    inputs: tuple[str, ...]           # tensor inputs, positional in a spec call
    optional_inputs: frozenset[str]   # inputs that may be omitted
    outputs: tuple[str, ...]
    module: str                       # "package.module:Class", imported only by the emitter
    doc: str                          # one line citing the paper and equation
    tags: frozenset[str]              # "mp" magnitude-preserving, "routable", "stateless", "context"
    mp_form: str | None               # the magnitude-preserving counterpart substituted inside @mp
    origin: str = "diffc"

    def fields(self) -> tuple:
        return attrs.fields(self.params)

    def signature(self) -> str:
        parts = list(i + ("?" if i in self.optional_inputs else "") for i in self.inputs)
        for f in self.fields():
            text = f"{f.name}: {type_name(f.type)}"
            if f.default is not attrs.NOTHING:
                default = f.default.factory() if isinstance(f.default, attrs.Factory) else f.default
                text += f" = {format_value(default)}"
            parts.append(text)
        outs = ", ".join(self.outputs)
        return f"{self.name}({', '.join(parts)}) -> {outs}"

    def load_module(self):
        mod, _, cls = self.module.partition(":")
        return getattr(importlib.import_module(mod), cls)


@attrs.frozen
class AnnotationInfo:
    name: str
    params: type
    doc: str
    targets: frozenset[str]           # where it may appear: model, block, repeat, region, input
    positional: tuple[str, ...]       # order of positional arguments
    variadic: str | None              # field collecting extra positional arguments (e.g. @sync's links)
    origin: str = "diffc"

    def signature(self) -> str:
        parts = []
        for f in attrs.fields(self.params):
            text = f"{f.name}: {type_name(f.type)}"
            if f.default is not attrs.NOTHING:
                default = f.default.factory() if isinstance(f.default, attrs.Factory) else f.default
                text += f" = {format_value(default)}"
            parts.append(text)
        return f"@{self.name}({', '.join(parts)})"


@attrs.frozen
class MethodInfo:
    name: str
    cls: type                         # instantiated once per compile; see diffc.methods.Method
    implements: tuple[str, ...]       # the annotations it gives meaning to
    before: tuple[str, ...]           # methods whose pass must run after this one's
    after: tuple[str, ...]            # methods whose pass must run before this one's
    doc: str
    origin: str = "diffc"


def type_name(tp) -> str:
    if isinstance(tp, str):
        return tp
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"{origin.__name__}[{type_name(args[0])}]" if args else origin.__name__
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "none")


def format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return repr(value)


def _first_doc_line(cls) -> str:
    doc = (cls.__doc__ or "").strip().splitlines()
    if not doc:
        raise TypeError(f"{cls.__name__}: registered blocks need a one-line docstring citing their paper")
    return doc[0].strip()


class Registry:
    def __init__(self):
        self.blocks: dict[str, BlockInfo] = {}
        self.annotations: dict[str, AnnotationInfo] = {}
        self.methods: dict[str, MethodInfo] = {}
        self._loaded = False
        self._origin = "diffc"

    def add_block(self, info: BlockInfo) -> None:
        if info.name in self.blocks:
            raise ValueError(f"block '{info.name}' registered twice ({self.blocks[info.name].origin}, {info.origin})")
        self.blocks[info.name] = info

    def add_annotation(self, info: AnnotationInfo) -> None:
        if info.name in self.annotations:
            raise ValueError(f"annotation '@{info.name}' registered twice")
        self.annotations[info.name] = info

    def add_method(self, info: MethodInfo) -> None:
        if info.name in self.methods:
            raise ValueError(f"method '{info.name}' registered twice ({self.methods[info.name].origin}, {info.origin})")
        self.methods[info.name] = info

    def load(self) -> "Registry":
        """Import the built-in block and method modules and every plugin of the entry-point groups (once)."""
        if self._loaded:
            return self
        self._loaded = True
        for package in BUILTIN_PACKAGES:
            pkg = importlib.import_module(package)
            for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
                if not info.ispkg:
                    importlib.import_module(f"{package}.{info.name}")
        for name in BUILTIN_MODULES:
            importlib.import_module(name)
        for group in ENTRY_POINT_GROUPS:
            for ep in entry_points(group=group):
                self._origin = ep.name
                try:
                    ep.load()
                finally:
                    self._origin = "diffc"
        return self

    def block(self, name: str) -> BlockInfo | None:
        return self.load().blocks.get(name)

    def annotation(self, name: str) -> AnnotationInfo | None:
        return self.load().annotations.get(name)

    def implementer(self, annotation: str) -> MethodInfo | None:
        """The method that gives `@annotation` its meaning (None: registered but implemented by no method)."""
        return next((m for m in self.load().methods.values() if annotation in m.implements), None)


REGISTRY = Registry()


def _as_attrs(cls):
    if not attrs.has(cls):
        cls = attrs.frozen(kw_only=True)(cls)
    attrs.resolve_types(cls)
    return cls


def block(name: str, *, inputs=("x",), optional=(), outputs=("out",), module: str, tags=(), mp_form=None):
    """Register a block. The class body holds its parameters (attrs fields) and `infer(**shapes)`."""
    def register(cls):
        cls = _as_attrs(cls)
        REGISTRY.add_block(BlockInfo(
            name=name, params=cls, inputs=tuple(inputs), optional_inputs=frozenset(optional),
            outputs=tuple(outputs), module=module, doc=_first_doc_line(cls), tags=frozenset(tags),
            mp_form=mp_form, origin=REGISTRY._origin))
        return cls
    return register


def annotation(name: str, *, targets, positional=(), variadic=None):
    """Register an annotation; its class fields are the annotation's arguments."""
    def register(cls):
        cls = _as_attrs(cls)
        REGISTRY.add_annotation(AnnotationInfo(
            name=name, params=cls, doc=_first_doc_line(cls), targets=frozenset(targets),
            positional=tuple(positional), variadic=variadic, origin=REGISTRY._origin))
        return cls
    return register



def method(name: str, *, implements=None, before=(), after=()):
    """Register a method (a diffc.methods.Method subclass) implementing annotations (default: `@name`).

    `before` / `after` name methods whose passes must run after / before this one; the compiler derives
    the pass order from them (diffc.methods.pass_order)."""
    def register(cls):
        REGISTRY.add_method(MethodInfo(name=name, cls=cls, implements=tuple(implements or (name,)),
                                       before=tuple(before), after=tuple(after), doc=_first_doc_line(cls),
                                       origin=REGISTRY._origin))
        return cls
    return register
