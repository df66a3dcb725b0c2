"""Expression evaluation for the resolve pass: constants are computed, block calls become IR nodes.

Values are Python constants (int, float, bool, str, list, None) or `Wire`s into the graph.
"""
from __future__ import annotations

import math
import operator
import re

import attrs

from diffc.compiler.ir import Wire
from diffc.dsl import ast as A
from diffc.errors import did_you_mean, fail
from diffc.registry import REGISTRY
from diffc.registry.core import format_value, type_name
from diffc.registry.values import ValueTypeError, coerce, describe

BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "==": operator.eq,
          "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
WIRE_OPS = {"+": "add", "*": "mul"}


def _logsnr(value):
    """`logsnr(v)`: a noise level written as log-SNR (the unit @stage boundaries use)."""
    return float(value)


def _sigma(value):
    """`sigma(s)`: an EDM noise level, converted to log-SNR = -2 ln s."""
    return -2.0 * math.log(value)


def _range_length(*args) -> int:
    """len(range(*args)) without Python's machine-size limit (0 for a malformed call, which range reports)."""
    if not 1 <= len(args) <= 3 or (len(args) == 3 and args[2] == 0):
        return 0
    start, stop, step = (0, args[0], 1) if len(args) == 1 else (args[0], args[1], args[2] if len(args) == 3 else 1)
    return max(0, -(-(stop - start) // step))


BUILTINS = {"range": lambda *a: list(range(*a)), "len": len, "min": min, "max": max, "abs": abs,
            "int": int, "float": float, "round": round, "enumerate": lambda xs: [list(p) for p in enumerate(xs)],
            "zip": lambda *xs: [list(p) for p in zip(*xs)], "reversed": lambda xs: list(reversed(xs)), "sum": sum,
            "logsnr": _logsnr, "sigma": _sigma}


def typed(value, param: A.Param, loc: A.Loc):
    """`value` coerced to the type a model or block parameter declares (`depth: int`)."""
    if param.type is None:
        return value
    types = {"int": int, "float": float, "bool": bool, "str": str, "list": list}
    if param.type not in types:
        raise fail(f"unknown parameter type '{param.type}'", param.loc, help=did_you_mean(param.type, types))
    try:
        return coerce(value, types[param.type])
    except ValueTypeError as exc:
        raise fail(f"parameter '{param.name}' {exc}", loc) from None


class Evaluator:
    """Evaluates expressions for the resolve pass. `graph` turns block calls into IR: it provides
    new_node(block, inputs, kwargs, loc, scope, name, arg_locs) and call_composite(expr, definition, scope, name)."""

    def __init__(self, program, budget, graph):
        self.program = program
        self.budget = budget
        self.graph = graph

    def lookup(self, name: str, loc: A.Loc, scope: dict):
        if name in scope:
            return scope[name]
        raise fail(f"unknown name '{name}'", loc, help=did_you_mean(name, list(scope) + list(BUILTINS)))

    def evaluate(self, expr: A.Expr, scope: dict, name: str | None = None):
        """Evaluate `expr`; a block call at the top of an assignment gets the node name `name`."""
        self.budget.step(expr.loc)
        if isinstance(expr, A.Num | A.Str | A.Const):
            return expr.value
        if isinstance(expr, A.Name):
            return self.lookup(expr.id, expr.loc, scope)
        if isinstance(expr, A.ListExpr):
            return self.budget.value([self.evaluate(e, scope) for e in expr.items], expr.loc)
        if isinstance(expr, A.Cond):
            test = self.constant(expr.test, scope, "a condition")
            return self.evaluate(expr.then if test else expr.other, scope, name)
        if isinstance(expr, A.Unary):
            value = self.evaluate(expr.operand, scope)
            if isinstance(value, Wire):
                if expr.op == "-":
                    return self.graph.new_node("scale", [value], {"factor": -1.0}, expr.loc, scope, name)
                raise fail("'not' needs a constant, got a tensor", expr.loc)
            return (not value) if expr.op == "not" else self._apply(operator.neg, value, None, expr)
        if isinstance(expr, A.BinOp):
            return self._binop(expr, scope, name)
        if isinstance(expr, A.Index):
            obj, index = self.evaluate(expr.obj, scope), self.constant(expr.index, scope, "an index")
            try:
                return obj[index]
            except (IndexError, TypeError, KeyError):
                raise fail(f"cannot index {describe(obj)} with {describe(index)}", expr.loc) from None
        if isinstance(expr, A.Attr):
            obj = self.evaluate(expr.obj, scope)
            if isinstance(obj, Wire):
                info = REGISTRY.block(obj.node.block)
                outputs = info.outputs if info else obj.node.meta.get("outputs", ())
                if expr.name in outputs:
                    return Wire(obj.node, outputs.index(expr.name))
                raise fail(f"{obj.node.describe()} has no output '{expr.name}'", expr.loc,
                           help=did_you_mean(expr.name, outputs) or f"outputs: {', '.join(outputs)}")
            raise fail(f"{describe(obj)} has no attribute '{expr.name}'", expr.loc)
        if isinstance(expr, A.Call):
            return self.call(expr, scope, name)
        raise AssertionError(type(expr))

    def constant(self, expr: A.Expr, scope: dict, what: str):
        value = self.evaluate(expr, scope)
        if isinstance(value, Wire):
            raise fail(f"{what} must be a constant, but this is the {value.describe()}", expr.loc)
        return value

    def _binop(self, expr: A.BinOp, scope: dict, name):
        if expr.op in ("and", "or"):
            left = self.constant(expr.left, scope, f"the left side of '{expr.op}'")
            if (expr.op == "and") != bool(left):
                return left
            return self.constant(expr.right, scope, f"the right side of '{expr.op}'")
        left, right = self.evaluate(expr.left, scope), self.evaluate(expr.right, scope)
        if isinstance(left, Wire) or isinstance(right, Wire):
            if isinstance(left, Wire) and isinstance(right, Wire) and expr.op in WIRE_OPS:
                return self.graph.new_node(WIRE_OPS[expr.op], [left, right], {}, expr.loc, scope, name)
            if expr.op == "*" and isinstance(left, Wire) != isinstance(right, Wire):
                wire, factor = (left, right) if isinstance(left, Wire) else (right, left)
                if isinstance(factor, (int, float)) and not isinstance(factor, bool):
                    return self.graph.new_node("scale", [wire], {"factor": float(factor)}, expr.loc, scope, name)
            raise fail(f"operator '{expr.op}' is not defined between {describe(left)} and {describe(right)}",
                       expr.loc, help="tensors support + and * (use registered blocks for anything else)")
        if expr.op == "in":
            try:
                return left in right
            except TypeError:
                raise fail(f"'in' needs a list on the right, got {describe(right)}", expr.loc) from None
        return self._apply(BINARY[expr.op], left, right, expr)

    def _apply(self, fn, left, right, expr):
        op = getattr(expr, "op", "-")
        self.budget.before(op, left, right, expr.loc)
        try:
            return self.budget.value(fn(left) if right is None else fn(left, right), expr.loc)
        except ZeroDivisionError:
            raise fail("division by zero", expr.loc) from None
        except OverflowError:
            raise fail(f"the result of '{op}' is too large for a number", expr.loc,
                       help="check the arithmetic: no model size needs a number this large") from None
        except TypeError:
            raise fail(f"operator '{op}' is not defined for {describe(left)}"
                       + ("" if right is None else f" and {describe(right)}"), expr.loc) from None

    # ---- calls -------------------------------------------------------------------------------
    def call(self, expr: A.Call, scope: dict, name):
        if expr.func == "pop":
            return self._pop(expr, scope)
        if expr.func in BUILTINS:
            args = [self.constant(a, scope, f"an argument of {expr.func}()") for a in expr.args]
            if expr.func == "range" and all(isinstance(a, int) for a in args):
                self.budget.count(_range_length(*args), "range()'s length", expr.loc)
            try:
                return self.budget.value(BUILTINS[expr.func](*args), expr.loc)
            except (TypeError, ValueError, OverflowError) as exc:
                raise fail(f"{expr.func}(): {exc}", expr.loc) from None
        if expr.func in self.program.blocks:
            return self.graph.call_composite(expr, self.program.blocks[expr.func], scope, name)
        info = REGISTRY.block(expr.func)
        if info is None:
            names = list(REGISTRY.load().blocks) + list(self.program.blocks) + list(BUILTINS)
            raise fail(f"unknown block '{expr.func}'", expr.func_loc, help=did_you_mean(expr.func, names)
                       or "`diffc blocks` lists every registered block")
        inputs, kwargs, arg_locs = self.bind_block_args(expr, info, scope)
        return self.graph.new_node(info.name, inputs, kwargs, expr.loc, scope, name, arg_locs)

    def _pop(self, expr: A.Call, scope: dict):
        if len(expr.args) != 1 or not isinstance(expr.args[0], A.Name):
            raise fail("pop() takes the name of a list, e.g. pop(skips)", expr.loc)
        var = expr.args[0].id
        stack = self.lookup(var, expr.args[0].loc, scope)
        if not isinstance(stack, list) or not stack:
            raise fail(f"pop(): '{var}' is {'empty' if stack == [] else describe(stack)}", expr.loc,
                       help="push onto a list with `h = block(...) -> " + var + "`")
        scope[var] = stack[:-1]
        return stack[-1]

    def bind_block_args(self, expr: A.Call, info, scope: dict):
        """Positional arguments are tensor inputs; keywords are inputs or parameters (checked and typed)."""
        signature = f"{info.signature()}"
        if len(expr.args) > len(info.inputs):
            raise fail(f"{info.name} takes {len(info.inputs)} tensor input(s) ({', '.join(info.inputs) or 'none'}),"
                       f" got {len(expr.args)}", expr.args[len(info.inputs)].loc, notes=[f"signature: {signature}"])
        inputs: dict[str, Wire] = {}
        arg_locs: dict[str, A.Loc] = {}
        for port, arg in zip(info.inputs, expr.args):
            inputs[port], arg_locs[port] = self._wire(arg, scope, info.name, port), arg.loc
        fields = {f.name: f for f in attrs.fields(info.params)}
        kwargs = {}
        for kw in expr.kwargs:
            if kw.name in inputs or kw.name in kwargs:
                raise fail(f"argument '{kw.name}' given twice", kw.loc)
            if kw.name in info.inputs:
                inputs[kw.name], arg_locs[kw.name] = self._wire(kw.value, scope, info.name, kw.name), kw.value.loc
                continue
            if kw.name not in fields:
                raise fail(f"{info.name} has no parameter '{kw.name}'", kw.loc,
                           help=did_you_mean(kw.name, list(fields) + list(info.inputs)),
                           notes=[f"parameters of {info.name}: " + (", ".join(self._field_text(f) for f in fields.values()) or "none")])
            value = self.constant(kw.value, scope, f"parameter '{kw.name}' of {info.name}")
            try:
                kwargs[kw.name] = coerce(value, fields[kw.name].type)
            except ValueTypeError as exc:
                raise fail(f"{info.name}: parameter '{kw.name}' {exc}", kw.value.loc,
                           notes=[f"{self._field_text(fields[kw.name])}"]) from None
            arg_locs[kw.name] = kw.value.loc
        missing = [p for p in info.inputs if p not in inputs and p not in info.optional_inputs]
        if missing:
            raise fail(f"{info.name} is missing tensor input(s): {', '.join(missing)}", expr.loc,
                       notes=[f"signature: {signature}"])
        required = [n for n, f in fields.items() if f.default is attrs.NOTHING and n not in kwargs]
        if required:
            raise fail(f"{info.name} is missing required parameter(s): {', '.join(required)}", expr.loc,
                       notes=[f"signature: {signature}"])
        return [inputs.get(p) for p in info.inputs], kwargs, arg_locs

    @staticmethod
    def _field_text(field) -> str:
        text = f"{field.name}: {type_name(field.type)}"
        if field.default is not attrs.NOTHING:
            default = field.default.factory() if isinstance(field.default, attrs.Factory) else field.default
            text += f" = {format_value(default)}"
        return text

    def _wire(self, arg: A.Expr, scope: dict, block: str, port: str) -> Wire:
        value = self.evaluate(arg, scope)
        if not isinstance(value, Wire):
            raise fail(f"input '{port}' of {block} must be a tensor, got {describe(value)}", arg.loc,
                       help="constants go in keyword parameters, e.g. width = 384")
        return value

    def make_params(self, info, kwargs: dict, loc: A.Loc, arg_locs: dict):
        try:
            return info.params(**kwargs)
        except (ValueError, TypeError) as exc:
            message = str(exc)
            field = next((f for f in kwargs if f"'{f}'" in message), None)
            where = arg_locs.get(field, loc)
            raise fail(f"{info.name}: {message}", where) from None

    @staticmethod
    def interpolate(template: str, scope: dict, loc: A.Loc) -> str:
        """Node names like "enc.{res}x{res}_block{i}": each {name} is a constant from scope."""
        def sub(match):
            key = match.group(1)
            if key not in scope or isinstance(scope[key], Wire):
                raise fail(f"'{{{key}}}' in a node name must name a constant", loc)
            return str(scope[key])
        name = re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, template)
        if not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", name):
            raise fail(f"node name '{name}' must be dot-separated parts of letters, digits and '_'", loc)
        return name


