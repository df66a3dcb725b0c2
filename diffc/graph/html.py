"""A self-contained HTML page for a GraphView: the SVG drawing when Graphviz is installed, otherwise a note;
always a legend, a node listing (block, shape, annotations, inputs, spec line) and the Mermaid and DOT sources.
The drawing pans, zooms and collapses regions through one small inline script (diffc.graph.interact); nothing
is fetched from the network."""
from __future__ import annotations

import re
from html import escape

from diffc.graph import interact
from diffc.graph.dot import SKIP_COLOUR, SYNC_COLOUR
from diffc.graph.view import GraphView

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
.badge { color: #8a4b00; font-size: 0.9em; margin-right: 0.6em; }
.note { background: #fff4d6; border: 1px solid #e0c070; padding: 0.6em 1em; }
figure { margin: 0; overflow: auto; border: 1px solid #ddd; padding: 1em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.8em; text-align: left; vertical-align: top; }
code, pre { font-family: Menlo, Consolas, monospace; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 1em; overflow: auto; }
.legend { list-style: none; padding: 0; } .legend li { margin: 0.2em 0; }
.swatch { display: inline-block; width: 2em; height: 1em; border: 1px solid #999; vertical-align: middle; }
.swatch.line { height: 0; border-width: 2px 0 0 0; }
"""
SVG_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.S)     # the XML declaration, DOCTYPE and comments before <svg>


def render_html(view: GraphView, dot_source: str, mermaid_source: str, svg: str | None) -> str:
    mode = "folded" if view.folded else "expanded"
    badges = "".join(f'<span class="badge">{escape(b)}</span>' for b in view.badges)
    if svg is not None:
        drawing = (f"{interact.TOOLBAR}<figure id=\"viewport\">{SVG_PROLOGUE.sub('', svg, count=1)}</figure>"
                   f'<script type="application/json" id="diffc-graph">{interact.cluster_json(view)}</script>'
                   f"<script>{interact.SCRIPT}</script>")
    else:
        drawing = ('<p class="note">No drawing: Graphviz\'s <code>dot</code> was not found when this page was '
                   "written (install it with <code>apt-get install graphviz</code> and run <code>diffc graph</code> "
                   "again). The listing below and the Mermaid and DOT sources describe the same graph.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(view.title)}: diffc graph</title>
<style>{STYLE}{interact.STYLE}</style></head>
<body>
<h1>{escape(view.title)} <small>({escape(view.file)}, {mode})</small></h1>
<p>{badges}</p>
{drawing}
{_legend(view)}
<h2>Nodes</h2>
{_node_table(view)}
<h2>Mermaid</h2>
<details><summary>flowchart source (for any Mermaid viewer)</summary><pre>{escape(mermaid_source)}</pre></details>
<h2>DOT</h2>
<details><summary>Graphviz source (<code>dot -Tsvg</code>)</summary><pre>{escape(dot_source)}</pre></details>
</body></html>
"""


def _legend(view: GraphView) -> str:
    rows = []
    for kind, fill, meaning in view.legend:
        if kind == "fill":
            swatch = f'<span class="swatch" style="background:{fill}"></span>'
        elif kind == "partial":
            swatch = '<span class="swatch" style="border-style:dashed"></span>'
        else:
            colour, line = (SKIP_COLOUR, "solid") if kind == "skip" else (SYNC_COLOUR, "dashed")
            swatch = f'<span class="swatch line" style="border-color:{colour}; border-style:{line}"></span>'
        rows.append(f"<li>{swatch} {escape(meaning)}</li>")
    return f'<h2>Legend</h2><ul class="legend">{"".join(rows)}</ul>' if rows else ""


def _node_table(view: GraphView) -> str:
    groups = {node_id: "" for node_id in view.root.nodes}
    for cluster in view.clusters():
        groups.update({node_id: cluster.label for node_id in cluster.nodes})
    inputs: dict[str, list] = {}
    for edge in view.edges:
        arrow = f"{edge.src} (dashed {edge.label})" if edge.sync else f"{edge.src} {edge.label}"
        inputs.setdefault(edge.dst, []).append(arrow)
    rows = []
    for node in view.nodes.values():
        badges = "".join(f'<span class="badge">{escape(b)}</span>' for b in node.badges)
        cells = [escape(groups.get(node.id, "")), f"<b>{escape(node.heading)}</b>", escape(node.block),
                 escape(node.shape), badges, "<br>".join(escape(i) for i in [*inputs.get(node.id, []), *node.feeds]),
                 f"{escape(node.where)}<br><code>{escape(node.source)}</code>"]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("group", "node", "block", "output", "annotations", "inputs", "spec"))
    return f"<table><tr>{head}</tr>\n" + "\n".join(rows) + "\n</table>"
