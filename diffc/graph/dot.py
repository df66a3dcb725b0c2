"""Graphviz DOT text for a GraphView (pure Python; `dot` itself is only needed for SVG and PNG)."""
from __future__ import annotations

from html import escape

from diffc.graph.view import Cluster, GraphView, ViewNode

NODE_SHAPES = {"input": "ellipse", "output": "oval", "folded": "box3d", "block": "box", "fanout": "note"}
BADGE_COLOUR = "#8a4b00"
SYNC_COLOUR = "#c0392b"
SKIP_COLOUR = "#1f6fb2"
FEED_COLOUR = "#777777"


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
        elif edge.skip:      # drawn beside the trunk (east ports), not pulling the layout
            attrs = (f"color={_quote(SKIP_COLOUR)}, penwidth=1.6, constraint=false, tailport=e, headport=e, "
                     f'tooltip={_quote(f"skip {edge.src} -> {edge.dst} {edge.label}")}')
        else:
            attrs = f"label={_quote(edge.label)}"
        out.append(f"  {_quote(edge.src)} -> {_quote(edge.dst)} [{attrs}];")
    if view.legend:
        out.append(f"  {_legend(view.legend)}")
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
    lines += [f'<FONT POINT-SIZE="9" COLOR="{FEED_COLOUR}">{escape(f)}</FONT>' for f in node.feeds]
    label = "<" + "<BR/>".join(lines) + ">"
    tooltip = f"{node.where}: {node.source}"
    style = ', style="rounded,filled,dashed", penwidth=1.6' if node.partial else ""
    return (f"{_quote(node.id)} [label={label}, shape={NODE_SHAPES[node.kind]}, fillcolor={_quote(node.fill)}, "
            f"tooltip={_quote(tooltip)}{style}];")


def _legend(rows: list) -> str:
    """One plaintext node holding a table: a swatch (fill, border or line colour) and its meaning per row."""
    cells = []
    for kind, fill, meaning in rows:
        if kind == "fill":
            swatch = f'<TD BGCOLOR="{fill}" BORDER="1" WIDTH="28"> </TD>'
        elif kind == "partial":
            swatch = '<TD BORDER="1" STYLE="dashed" WIDTH="28"> </TD>'
        else:
            colour = SKIP_COLOUR if kind == "skip" else SYNC_COLOUR
            swatch = f'<TD WIDTH="28"><FONT COLOR="{colour}">{"⋯⋯" if kind == "sync" else "━━"}</FONT></TD>'
        cells.append(f'<TR>{swatch}<TD ALIGN="LEFT">{escape(meaning)}</TD></TR>')
    table = ('<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="3" CELLPADDING="2" COLOR="#999999">'
             '<TR><TD COLSPAN="2"><B>legend</B></TD></TR>' + "".join(cells) + "</TABLE>")
    return f'"legend" [shape=plaintext, style="", label=<{table}>, tooltip="what the colours mean"];'


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
