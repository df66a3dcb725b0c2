"""The intermediate representation: a networkx DiGraph of `Node`s plus model-level records.

Graph attributes (`graph.graph`): "model" -> ModelIR. Node attribute "ir" -> Node. Edge (src, dst) attributes:
"port" (input index at dst) and "out" (output index at src). Plain Python: no torch.
"""
from __future__ import annotations

from typing import Any

import attrs
import networkx as nx

from diffc.dsl.ast import Loc


@attrs.define(eq=False)
class Node:
    name: str                        # dotted path; the parameter prefix in state_dict
    block: str                       # registry name, or "input"
    params: Any                      # the block's attrs parameter instance (None for inputs)
    inputs: list                     # list[Wire | None] in the block's declared input order
    loc: Loc                         # the call (or input statement)
    arg_locs: dict = attrs.Factory(dict)   # port / keyword -> Loc, for precise errors
    scopes: tuple = ()               # enclosing Frames, outermost first
    annotations: list = attrs.Factory(list)  # AnnotationUse applying to this node (own + inherited)
    in_shapes: dict | None = None    # filled by check
    out_shapes: tuple | None = None  # filled by check
    # Facts that passes attach to the node, as torch.fx's Node.meta. Keys in use:
    #   resolve: "explicit_name" (bool: named with `as`), "kwargs" (the call's keyword arguments);
    #   inputs: "kind" (sample, timestep, label, ...), "outputs" (port names of a text input);
    #   @stage: "stage" = (region label, stage index); @route: "route" (its parameters), "route_channels";
    #   @mp: "mp_from" (the block it replaced). A plug-in method keeps its own keys, prefixed with its name.
    meta: dict = attrs.Factory(dict)

    def describe(self) -> str:
        return f"'{self.name}' ({self.block}, line {self.loc.line})"


@attrs.define(eq=False)
class Wire:
    node: Node
    port: int = 0

    def describe(self) -> str:
        return f"output of {self.node.describe()}"


@attrs.frozen
class Frame:
    kind: str                        # "composite" | "repeat" | "for" | "region" | "stage"
    label: str                       # the name prefix it introduces
    index: int | None = None         # iteration / stage index
    block: str | None = None         # composite block name
    loc: Loc | None = None


@attrs.define(eq=False)
class AnnotationUse:
    name: str
    params: Any                      # attrs instance of the annotation's class
    loc: Loc
    target: str                      # "model", or the label / node name it was put on
    target_kind: str                 # "model" | "repeat" | "for" | "region" | "block" | "input"
    refs: list = attrs.Factory(list) # @sync: list of (src_ref, dst_ref, loc); a ref is an int or a path list


@attrs.define(eq=False)
class Region:
    label: str                       # full dotted label
    kind: str                        # "repeat" | "for" | "region" | "composite"
    loc: Loc
    iterations: list = attrs.Factory(list)   # list[list[Node]] (one list for plain regions)
    annotations: list = attrs.Factory(list)
    stage_count: int = 0             # > 0 for @stage regions: iterations are the stage copies

    def nodes(self) -> list:
        return [n for it in self.iterations for n in it]


@attrs.define(eq=False)
class InputIR:
    name: str
    kind: str                        # sample | timestep | time | sigma | label | text | control
    dims: tuple
    options: dict
    node: Node
    annotations: list
    loc: Loc


@attrs.define(eq=False)
class ModelIR:
    name: str
    file: str
    inputs: list                     # list[InputIR]
    outputs: list                    # list[Wire]; outputs[0] is the prediction
    regions: dict                    # label -> Region
    annotations: list                # every AnnotationUse, in source order
    recipe: str | None               # recipe path relative to the spec, if the spec names one
    arguments: dict                  # resolved model parameters (depth, width, ...)
    stage_regions: list = attrs.Factory(list)  # {"label", "boundaries" (log-SNR), "widths", "loc"} per @stage
    taps: dict = attrs.Factory(dict)     # aux name -> Wire (filled by lowering passes)
    aux_losses: dict = attrs.Factory(dict)  # aux loss name -> spec (filled by lowering passes)


def build_graph(nodes: list[Node], model: ModelIR) -> nx.DiGraph:
    g = nx.DiGraph(model=model)
    for n in nodes:
        g.add_node(n.name, ir=n)
    for n in nodes:
        for port, wire in enumerate(n.inputs):
            if wire is not None:
                g.add_edge(wire.node.name, n.name, port=port, out=wire.port)
    return g


def nodes_in_order(g: nx.DiGraph) -> list[Node]:
    """Nodes in a deterministic topological order (source order breaks ties)."""
    order = {name: i for i, name in enumerate(g.nodes)}
    return [g.nodes[n]["ir"] for n in nx.lexicographical_topological_sort(g, key=order.__getitem__)]
