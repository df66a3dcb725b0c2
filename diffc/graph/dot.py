"""Graphviz DOT text for a GraphView (pure Python; `dot` itself is only needed for SVG and PNG)."""
from __future__ import annotations

from html import escape

from diffc.graph.view import Cluster, GraphView, ViewNode

NODE_SHAPES = {"input": "ellipse", "output": "oval", "folded": "box3d", "block": "box"}
BADGE_COLOUR = "#8a4b00"
SYNC_COLOUR = "#c0392b"


def render_dot(view: GraphView) -> str:
    title = " ".join([view.title, *view.badges]) + f" ({view.file}, {'folded' if view.folded else 'expanded'})"
    out = [f"digraph {_quote(view.title)} {{",
           f'  graph [rankdir=TB, newrank=true, fontname="Helvetica", fontsize=12, labelloc=t, '
           f'label={_quote(title)}, tooltip={_quote(view.file)}];',
           '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#666666", '
           'fontname="Helvetica", fontsize=11];',
           '  edge [color="#555555", fontname="Helvetica", fontsize=9, fontcolor="#333333"];']
    _cluster_body(view, view.root, out, "  ")
    for edge in view.edges:
        if edge.sync:
            attrs = (f"style=dashed, color={_quote(SYNC_COLOUR)}, fontcolor={_quote(SYNC_COLOUR)}, "
                     f"constraint=false, label={_quote(edge.label)}")
        else:
            attrs = f"label={_quote(edge.label)}"
        out.append(f"  {_quote(edge.src)} -> {_quote(edge.dst)} [{attrs}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _cluster_body(view: GraphView, cluster: Cluster, out: list, indent: str) -> None:
    for node_id in cluster.nodes:
        out.append(f"{indent}{_node(view.nodes[node_id])}")
    for child in cluster.children:
        out.append(f"{indent}subgraph {_quote('cluster_' + child.id)} {{")
        out.append(f'{indent}  graph [label={_quote(child.label)}, tooltip={_quote(child.where or child.label)}, '
                   f'style="rounded,filled", fillcolor={_quote(child.fill)}, color="#999999"];')
        _cluster_body(view, child, out, indent + "  ")
        out.append(f"{indent}}}")


def _node(node: ViewNode) -> str:
    lines = [f"<B>{escape(node.heading)}</B>", f'<FONT POINT-SIZE="9" COLOR="#555555">{escape(node.detail)}</FONT>']
    lines += [f'<FONT POINT-SIZE="9" COLOR="{BADGE_COLOUR}">{escape(b)}</FONT>' for b in node.badges]
    label = "<" + "<BR/>".join(lines) + ">"
    tooltip = f"{node.where}: {node.source}"
    return (f"{_quote(node.id)} [label={label}, shape={NODE_SHAPES[node.kind]}, fillcolor={_quote(node.fill)}, "
            f"tooltip={_quote(tooltip)}];")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
