"""The HTML view's interaction: pan (drag), zoom (wheel, buttons), collapse regions (click a cluster's label).

A small inline script written for this page (no library, no network): it reads which nodes each cluster holds
from a JSON block and hides them, and the edges touching them, when the cluster is collapsed. Graphviz writes
every node, edge and cluster as `<g class="node|edge|cluster"><title>NAME</title>...`; the script matches those
titles (edges are `SRC->DST`, clusters `cluster_PATH`).
"""
from __future__ import annotations

import json

from diffc.graph.view import GraphView

STYLE = """
.toolbar { margin: 0.5em 0; } .toolbar button { margin-right: 0.4em; }
#viewport { border: 1px solid #ddd; height: 80vh; overflow: hidden; cursor: grab; background: #fff; }
#viewport svg { width: 100%; height: 100%; }
#viewport g.cluster > text { cursor: pointer; text-decoration: underline dotted; }
"""

TOOLBAR = ('<div class="toolbar"><button data-act="in">zoom in</button><button data-act="out">zoom out</button>'
           '<button data-act="fit">fit</button><button data-act="collapse">collapse all</button>'
           '<button data-act="expand">expand all</button> drag to pan, wheel to zoom, click a region\'s title to '
           'collapse or expand it</div>')

SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById("diffc-graph").textContent);
  const port = document.getElementById("viewport"), svg = port && port.querySelector("svg");
  if (!svg) return;
  const full = svg.viewBox.baseVal, home = [full.x, full.y, full.width, full.height];
  let box = home.slice();
  svg.removeAttribute("width"); svg.removeAttribute("height");
  const show = () => svg.setAttribute("viewBox", box.join(" "));
  const zoom = (factor, cx, cy) => {
    const x = box[0] + (cx === undefined ? 0.5 : cx) * box[2], y = box[1] + (cy === undefined ? 0.5 : cy) * box[3];
    box = [x - (x - box[0]) * factor, y - (y - box[1]) * factor, box[2] * factor, box[3] * factor];
    show();
  };
  port.addEventListener("wheel", e => {
    e.preventDefault();
    const r = svg.getBoundingClientRect();
    zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15, (e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height);
  }, {passive: false});
  let drag = null;
  port.addEventListener("mousedown", e => { drag = [e.clientX, e.clientY]; port.style.cursor = "grabbing"; });
  window.addEventListener("mouseup", () => { drag = null; port.style.cursor = "grab"; });
  window.addEventListener("mousemove", e => {
    if (!drag) return;
    const r = svg.getBoundingClientRect(), s = Math.max(box[2] / r.width, box[3] / r.height);
    box[0] -= (e.clientX - drag[0]) * s; box[1] -= (e.clientY - drag[1]) * s; drag = [e.clientX, e.clientY]; show();
  });
  const groups = {};
  for (const g of svg.querySelectorAll("g.node, g.edge, g.cluster")) {
    const t = g.querySelector("title");
    if (t) groups[t.textContent] = g;
  }
  const collapsed = new Set();
  const refresh = () => {
    const hidden = new Set(), inner = new Set();
    for (const c of collapsed) {
      data.clusters[c].nodes.forEach(n => hidden.add(n));
      data.clusters[c].inner.forEach(k => inner.add(k));
    }
    for (const [name, g] of Object.entries(groups)) {
      if (g.classList.contains("node")) g.style.display = hidden.has(name) ? "none" : "";
      else if (g.classList.contains("edge")) {
        const [a, b] = name.split("->");
        g.style.display = hidden.has(a) || hidden.has(b) ? "none" : "";
      } else {
        const key = name.replace(/^cluster_/, "");
        g.style.display = inner.has(key) ? "none" : "";
        const label = g.querySelector("text");
        if (label && data.clusters[key]) {
          label.textContent = data.clusters[key].label +
            (collapsed.has(key) ? "  [+" + data.clusters[key].nodes.length + " nodes]" : "");
        }
      }
    }
  };
  for (const key of Object.keys(data.clusters)) {
    const g = groups["cluster_" + key], label = g && g.querySelector("text");
    if (!label) continue;
    label.addEventListener("mousedown", e => e.stopPropagation());
    label.addEventListener("click", () => {
      collapsed.has(key) ? collapsed.delete(key) : collapsed.add(key);
      refresh();
    });
  }
  document.querySelector(".toolbar").addEventListener("click", e => {
    const act = e.target.dataset && e.target.dataset.act;
    if (act === "in") zoom(1 / 1.3);
    if (act === "out") zoom(1.3);
    if (act === "fit") { box = home.slice(); show(); }
    if (act === "collapse") { Object.keys(data.clusters).forEach(k => collapsed.add(k)); refresh(); }
    if (act === "expand") { collapsed.clear(); refresh(); }
  });
  show();
})();
"""


def cluster_json(view: GraphView) -> str:
    """{"clusters": {path: {label, nodes (all inside, nested too), inner (nested cluster paths)}}}, safe inside a
    <script> element."""
    clusters = {}

    def visit(cluster):
        nodes, inner = list(cluster.nodes), []
        for child in cluster.children:
            child_nodes, child_inner = visit(child)
            nodes += child_nodes
            inner += [child.id, *child_inner]
        if cluster.id:
            clusters[cluster.id] = {"label": cluster.label, "nodes": nodes, "inner": inner}
        return nodes, inner

    visit(view.root)
    return json.dumps({"clusters": clusters}).replace("</", "<\\/")
