"""Check pass: infer every node's output shape from plain-Python shape rules, before any weight exists.

A mismatch names both ends: the consuming argument (located) and the node that produced the tensor.
Independent errors are all reported; nodes downstream of an error are skipped.
"""
from __future__ import annotations

import math

import attrs
import networkx as nx

from diffc.compiler.ir import Node, nodes_in_order
from diffc.errors import Diagnostic, UserError, attach_source
from diffc.registry import REGISTRY, ShapeError
from diffc.registry.shapes import channels, fmt

MAX_TENSOR_ELEMENTS = 2 ** 32     # per sample: 16 GiB in float32, beyond any real activation
MAX_PARAMETERS = 10 ** 12         # the largest diffusion models have tens of billions


def check(graph: nx.DiGraph, sources: dict[str, str]) -> nx.DiGraph:
    diags: list[Diagnostic] = []
    for node in nodes_in_order(graph):
        if node.block == "input":
            continue
        if any(w is not None and w.node.out_shapes is None for w in node.inputs):
            continue                                    # downstream of an earlier error
        try:
            _infer(node)
        except ShapeError as err:
            diags.append(_diagnostic(node, err))
    if not diags:
        diags.extend(_check_sizes(graph))
    if not diags:
        diags.extend(_check_outputs(graph))
    if diags:
        attach_source(diags, sources)
        raise UserError(diags)
    return graph


def _infer(node: Node) -> None:
    if node.block == "stage_merge":
        shapes = {w.node.out_shapes[w.port] for w in node.inputs}
        if len(shapes) != 1:
            raise ShapeError("the stage decoders produce different shapes for this value: "
                             + ", ".join(f"{w.node.name} {fmt(w.node.out_shapes[w.port])}" for w in node.inputs))
        node.in_shapes = {f"stage{i}": w.node.out_shapes[w.port] for i, w in enumerate(node.inputs)}
        node.out_shapes = (shapes.pop(),)
        return
    info = REGISTRY.block(node.block)
    node.in_shapes = {port: w.node.out_shapes[w.port] for port, w in zip(info.inputs, node.inputs) if w is not None}
    out = node.params.infer(**node.in_shapes)
    node.out_shapes = tuple(tuple(s) for s in out) if len(info.outputs) > 1 else (tuple(out),)


def _diagnostic(node: Node, err: ShapeError) -> Diagnostic:
    loc = node.arg_locs.get(err.port, node.loc) if err.port else node.loc
    notes = []
    info = REGISTRY.block(node.block)
    ports = [err.port] if err.port else (info.inputs if info else [])
    for port in ports:
        if info is None or port not in info.inputs:
            continue
        wire = node.inputs[info.inputs.index(port)]
        if wire is not None:
            notes.append(f"'{port}' of '{node.name}' is the {wire.describe()} with shape "
                         f"{fmt(wire.node.out_shapes[wire.port])}")
    return Diagnostic(f"shape mismatch in '{node.name}' ({node.block}): {err}", loc.file, loc.line, loc.col,
                      loc.single_line_end(), notes=notes)


def _check_outputs(graph: nx.DiGraph) -> list[Diagnostic]:
    model = graph.graph["model"]
    diags = []
    sample = next((i for i in model.inputs if i.kind == "sample"), None)
    noise = next((i for i in model.inputs if i.kind in ("timestep", "time", "sigma")), None)
    where = model.outputs[0].node.loc if model.outputs else None
    first = graph.nodes[next(iter(graph.nodes))]["ir"].loc if graph.nodes else None
    for missing, what in ((sample, "input x: sample[C, H, W]"), (noise, "input t: timestep[1000] (or time, sigma)")):
        if missing is None and first is not None:
            diags.append(Diagnostic(f"model '{model.name}' declares no {what.split(':')[1].split('[')[0].strip()} input",
                                    first.file, first.line, first.col, first.col + 1, help=f"add `{what}`"))
    if sample is not None and where is not None:
        pred = model.outputs[0].node.out_shapes[model.outputs[0].port]
        if len(pred) != 3 or tuple(pred[1:]) != tuple(sample.dims[1:]):
            diags.append(Diagnostic(f"the model returns {fmt(pred)}, but a prediction must match the sample's "
                                    f"size [C', {sample.dims[1]}, {sample.dims[2]}]", where.file, where.line,
                                    where.col, where.single_line_end()))
    return diags


def _check_sizes(graph: nx.DiGraph) -> list[Diagnostic]:
    """Absurd sizes (e.g. `width = 10 ** 9`) are refused here, before torch is asked to allocate them."""
    total, largest = 0, None
    for node in nodes_in_order(graph):
        for shape in node.out_shapes or ():
            elements = math.prod(shape)
            if elements > MAX_TENSOR_ELEMENTS:
                return [Diagnostic(f"'{node.name}' produces a tensor of shape {fmt(shape)}: {elements:.3g} elements "
                                   f"per sample, over diffc's limit of 2^32", node.loc.file, node.loc.line,
                                   node.loc.col, node.loc.single_line_end(), help="check the widths and sizes "
                                   "that lead here: no diffusion model's activation is this large")]
        estimate = estimated_parameters(node)
        total += estimate
        if largest is None or estimate > largest[0]:
            largest = (estimate, node)
    if total > MAX_PARAMETERS:
        estimate, node = largest
        return [Diagnostic(f"this model would have at least {total:.3g} parameters (a lower bound from its shapes; "
                           f"'{node.name}' alone at least {estimate:.3g}), over diffc's limit of 1e12",
                           node.loc.file, node.loc.line, node.loc.col, node.loc.single_line_end(),
                           help="check the widths and counts that lead here")]
    return []


def estimated_parameters(node: Node) -> int:
    """A lower bound on a node's parameters from shapes alone (no torch): features in x features out, or the
    product of the two largest integer parameters (classes x width of an embedding), whichever is larger.
    It is 6-9% of the real count on DiT-XL/2, EDM2-XXL and the ADM U-Net (a conv's kernel, an MLP's ratio and
    attention's four projections are not counted)."""
    info = REGISTRY.block(node.block) if isinstance(node.block, str) else None
    if info is None or "stateless" in info.tags or node.params is None:
        return 0
    features_in = max((_features(s) for s in (node.in_shapes or {}).values()), default=1)
    features_out = max((_features(s) for s in node.out_shapes or ()), default=1)
    numbers = sorted(v for v in attrs.asdict(node.params).values() if type(v) is int and v > 0)
    return max(features_in * features_out, math.prod(numbers[-2:]) if numbers else 0)


def _features(shape) -> int:
    return channels(shape) if shape else 1
