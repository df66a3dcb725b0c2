"""Lark parse tree -> dsl.ast records (part of the parse pass)."""
from __future__ import annotations

from lark import Token, Transformer, Tree, v_args

from diffc.dsl import ast as A


def unquote(tok: str) -> str:
    return bytes(tok[1:-1], "utf-8").decode("unicode_escape")


@v_args(meta=True)
class AstBuilder(Transformer):
    def __init__(self, filename: str, source: str, comments):
        super().__init__()
        self.filename, self.source, self.comments = filename, source, comments

    def build(self, tree: Tree) -> A.File:
        version, items = self.transform(tree)
        return A.File(self.filename, version, items, self.comments, self.source)

    # -- locations --
    def loc(self, meta) -> A.Loc:
        return A.Loc(self.filename, meta.line, meta.column, meta.end_line, meta.end_column)

    def tloc(self, tok: Token) -> A.Loc:
        return A.Loc(self.filename, tok.line, tok.column, tok.end_line, tok.end_column)

    # -- file level --
    def file(self, meta, children):
        version = children[0] if children and isinstance(children[0], int) else None
        items = [c for c in children if not isinstance(c, int) and c is not None]
        return version, items

    def version(self, meta, children):
        return int(children[0])

    def import_stmt(self, meta, children):
        return A.Import(unquote(children[0]), self.loc(meta))

    def recipe_stmt(self, meta, children):
        return A.RecipeRef(unquote(children[0]), self.loc(meta))

    def default_stmt(self, meta, children):
        return A.DefaultModel(str(children[0]), self.tloc(children[0]))

    def _def(self, kind, meta, children):
        annotations = [c for c in children if isinstance(c, A.Annotation)]
        name, *rest = children[len(annotations):]
        params = [c for c in rest if isinstance(c, A.Param)]
        body = rest[-1]
        return A.BlockDef(kind, str(name), self.tloc(name), params, annotations, body, self.loc(meta))

    def block_def(self, meta, children):
        return self._def("block", meta, children)

    def model_def(self, meta, children):
        return self._def("model", meta, children)

    def preset_def(self, meta, children):
        name, base, *rest = children
        overlay = rest[-1] if rest and (rest[-1] is None or isinstance(rest[-1], list)) else None
        kwargs = [c for c in rest if isinstance(c, A.Keyword)]
        return A.Preset(str(name), self.tloc(name), str(base), self.tloc(base), kwargs, overlay, self.loc(meta))

    def overlay(self, meta, children):
        return list(children)

    def overlay_item(self, meta, children):
        *annotations, (path, path_loc) = children
        return A.OverlayItem(annotations, path, path_loc, self.loc(meta))

    def path(self, meta, children):
        return [str(children[0])] + list(children[1:]), self.loc(meta)

    def path_model(self, meta, children):
        return ["model"], self.loc(meta)

    def path_attr(self, meta, children):
        return str(children[0])

    def path_index(self, meta, children):
        return int(children[0])

    def path_all(self, meta, children):
        return "*"

    def path_slice(self, meta, children):
        start, stop, step = (None if c is None else int(c) for c in children)
        return A.PathSlice(start, stop, step)

    def param(self, meta, children):
        name, type_, default = children
        return A.Param(str(name), str(type_) if type_ is not None else None, default, self.tloc(name))

    def kwarg(self, meta, children):
        return A.Keyword(str(children[0]), children[1], self.tloc(children[0]))

    def body(self, meta, children):
        return list(children)

    # -- statements --
    def stmt(self, meta, children):
        *annotations, core = children
        core.annotations = list(annotations)
        if annotations:   # the statement's span starts at its first annotation
            first = annotations[0].loc
            core.loc = A.Loc(core.loc.file, first.line, first.col, core.loc.end_line, core.loc.end_col)
        return core

    def input_stmt(self, meta, children):
        name, kind, dims = children
        args = [a for a in (dims or []) if a is not None]
        pos = [a for a in args if not isinstance(a, A.Keyword)]
        kws = [a for a in args if isinstance(a, A.Keyword)]
        return A.Input(self.loc(meta), [], str(name), self.tloc(name), str(kind), self.tloc(kind), pos, kws,
                       dims is not None)

    def dims(self, meta, children):
        return list(children)

    def assign(self, meta, children):
        names = [c for c in children if isinstance(c, Token) and c.type == "NAME"]
        others = [c for c in children if not (isinstance(c, Token) and c.type == "NAME")]
        push_tok = None
        if len(children) >= 2 and isinstance(children[-1], Token) and children[-1].type == "NAME" \
                and isinstance(children[-2], Token) and children[-2].type == "ARROW":
            push_tok = children[-1]
            names = names[:-1]
        value = next(c for c in others if isinstance(c, A.Expr))
        node_name = next((c for c in others if isinstance(c, A.Str)), None) if len(others) > 1 else None
        node_name = children[children.index(value) + 1] if children.index(value) + 1 < len(children) else None
        if not isinstance(node_name, A.Str):
            node_name = None
        return A.Assign(self.loc(meta), [], [str(n) for n in names], value, node_name,
                        str(push_tok) if push_tok else None, self.tloc(push_tok) if push_tok else None)

    def node_name(self, meta, children):
        if len(children) == 1 and isinstance(children[0], Token) and children[0].type == "STRING":
            return A.Str(self.tloc(children[0]), unquote(children[0]))
        return A.Str(self.loc(meta), ".".join(str(c) for c in children))

    def repeat_stmt(self, meta, children):
        label, count, var, body = children
        return A.Repeat(self.loc(meta), [], str(label) if label else None, count, str(var) if var else None, body)

    def for_stmt(self, meta, children):
        label, var, var2, iterable, body = children
        return A.For(self.loc(meta), [], str(label) if label else None, str(var), str(var2) if var2 else None,
                     iterable, body)

    def region(self, meta, children):
        name, body = children
        return A.Region(self.loc(meta), [], str(name), self.tloc(name), body)

    def if_stmt(self, meta, children):
        test, body, orelse = children
        if isinstance(orelse, A.If):
            orelse = [orelse]
        return A.If(self.loc(meta), [], test, body, orelse or [])

    def if_else(self, meta, children):
        return children[0]

    def return_stmt(self, meta, children):
        return A.Return(self.loc(meta), [], list(children))

    # -- annotations --
    def annotation(self, meta, children):
        name, *args = children
        args = [a for a in args if a is not None]
        line = self.source.splitlines()[name.line - 1]
        has_parens = line[name.end_column - 1:name.end_column] == "("
        return A.Annotation(str(name), args, self.loc(meta), self.tloc(name), has_parens)

    def anno_pos(self, meta, children):
        return A.AnnoArg("pos", children[0], self.loc(meta))

    def anno_link(self, meta, children):
        return A.AnnoArg("link", children[0], self.loc(meta), target=children[2])

    def anno_kw(self, meta, children):
        return A.AnnoArg("kw", children[1], self.loc(meta), name=str(children[0]))

    # -- expressions --
    def cond(self, meta, c):
        return A.Cond(self.loc(meta), c[0], c[1], c[2])

    def or_(self, meta, c):
        return A.BinOp(self.loc(meta), "or", c[0], c[1])

    def and_(self, meta, c):
        return A.BinOp(self.loc(meta), "and", c[0], c[1])

    def not_(self, meta, c):
        return A.Unary(self.loc(meta), "not", c[0])

    def compare(self, meta, c):
        return A.BinOp(self.loc(meta), str(c[1]), c[0], c[2])

    def contains(self, meta, c):
        return A.BinOp(self.loc(meta), "in", c[0], c[1])

    def binop(self, meta, c):
        return A.BinOp(self.loc(meta), str(c[1]), c[0], c[2])

    def neg(self, meta, c):
        return A.Unary(self.loc(meta), "-", c[0])

    def pow(self, meta, c):
        return A.BinOp(self.loc(meta), "**", c[0], c[1])

    def index(self, meta, c):
        return A.Index(self.loc(meta), c[0], c[1])

    def attr(self, meta, c):
        return A.Attr(self.loc(meta), c[0], str(c[1]))

    def call(self, meta, c):
        func, *args = c
        args = [a for a in args if a is not None]
        pos = [a for a in args if not isinstance(a, A.Keyword)]
        kws = [a for a in args if isinstance(a, A.Keyword)]
        return A.Call(self.loc(meta), str(func), self.tloc(func), pos, kws)

    def arg(self, meta, c):
        return c[0]

    def kwarg_arg(self, meta, c):
        return A.Keyword(str(c[0]), c[1], self.tloc(c[0]))

    def number(self, meta, c):
        text = str(c[0])
        value = int(text) if text.isdigit() else float(text)
        return A.Num(self.loc(meta), value, text)

    def string(self, meta, c):
        return A.Str(self.loc(meta), unquote(c[0]))

    def true(self, meta, c):
        return A.Const(self.loc(meta), True)

    def false(self, meta, c):
        return A.Const(self.loc(meta), False)

    def none(self, meta, c):
        return A.Const(self.loc(meta), None)

    def name(self, meta, c):
        return A.Name(self.loc(meta), str(c[0]))

    def list_(self, meta, c):
        return A.ListExpr(self.loc(meta), [x for x in c if x is not None])
