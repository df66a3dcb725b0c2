"""Big models stay readable (diffc.graph.fold): runs of one block kind and shape fold, the embedding fan-out is
drawn once, skips are marked, a legend names the colours, partial annotations show, labels name their file;
the HTML view's script finds what it collapses. All of it without torch (test_graph checks the import)."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from diffc.compiler import compile_spec
from diffc.graph.dot import render_dot
from diffc.graph.fold import FANOUT_MIN
from diffc.graph.html import render_html
from diffc.graph.interact import SCRIPT, cluster_json
from diffc.graph.mermaid import render_mermaid
from diffc.graph.view import build_view, index_ranges

ROOT = Path(__file__).resolve().parents[1]
EDM2_XS = ROOT / "specs" / "edm2_img512_xs.diffspec"


@pytest.fixture(scope="module")
def edm2():
    return compile_spec(EDM2_XS)


def test_edm2_xs_folds_by_kind_and_shape(edm2):
    expanded, folded = build_view(edm2, expand=True), build_view(edm2)
    assert len(expanded.nodes) == 70
    blocks = [n for n in folded.nodes.values() if n.kind in ("block", "folded")]
    assert len(folded.nodes) == 34 and len(blocks) == 29            # 3 inputs, 1 output, 1 fan-out note
    encoder = folded.nodes["unet.enc.64x64_block{0..2}"]
    assert encoder.heading == "unet.enc.64x64_block{0..2} x3" and encoder.shape == "[128, 64, 64]"
    decoder = folded.nodes["unet.dec.16x16_block{0..3}"]     # mp_cat -> edm2_block pairs, skip widths differ
    assert decoder.count == 4 and decoder.block == "mp_cat → edm2_block" and decoder.shape == "[384, 16, 16]"
    assert "unet.dec.8x8_in{0..1}" in folded.nodes                  # same kind, shape and name pattern
    assert "unet.enc.16x16_down" in folded.nodes                    # a different shape: its own node
    assert not any(n.startswith("unet.mp_cat") for n in folded.nodes)


def test_embedding_fan_out_is_drawn_once(edm2):
    expanded, folded = build_view(edm2, expand=True), build_view(edm2)
    assert sum(e.src == "unet.emb_act" for e in expanded.edges) == 36
    out = [e for e in folded.edges if e.src == "unet.emb_act"]
    assert len(out) == 1 and folded.nodes[out[0].dst].kind == "fanout" and out[0].label == "[512]"
    readers = [n for n in folded.nodes.values() if "← unet.emb_act [512]" in n.feeds]
    assert len(readers) == 15 >= FANOUT_MIN
    assert "← unet.emb_act [512]" in render_dot(folded) and "read by 15 nodes" in render_dot(folded)


def test_skip_connections_are_marked_and_drawn_apart(edm2):
    folded = build_view(edm2)
    skips = {(e.src, e.dst) for e in folded.edges if e.skip}
    assert ("unet.enc.64x64_conv", "unet.dec.64x64_block{0..3}") in skips
    assert ("unet.enc.8x8_block{0..2}", "unet.dec.8x8_block{0..3}") in skips
    assert len(skips) == 8                                          # 16 skips, folded in pairs of groups
    expanded = build_view(edm2, expand=True)
    assert sum(e.skip for e in expanded.edges) == 16                # every output EDM2 pushes onto `skips`
    trunk = {(e.src, e.dst) for e in folded.edges if not e.skip}
    assert ("unet.enc.64x64_conv", "unet.enc.64x64_block{0..2}") in trunk
    assert ("unet.emb_act", "unet.emb_act → 15 readers") in trunk   # conditioning is not a skip
    dot = render_dot(folded)
    assert re.search(r'"unet.enc.64x64_conv" -> "unet.dec.64x64_block\{0..3\}" \[color="#1f6fb2".*constraint=false',
                     dot)
    assert "stroke:#1f6fb2" in render_mermaid(folded)


def test_legend_names_the_colours_and_the_model_wide_mp(edm2):
    view = build_view(edm2)
    meanings = [m for _, _, m in view.legend]
    assert any(m.startswith("@mp: EDM2 magnitude-preserving") and "whole model: edm2_img512_xs @mp" in m
               for m in meanings)
    assert "skip connection (bypasses the blocks between)" in meanings
    assert "model input" in meanings
    dot = render_dot(view)
    assert '"legend" [shape=plaintext' in dot and 'BGCOLOR="#d3efd6"' in dot
    page = render_html(view, dot, render_mermaid(view), None)
    assert '<ul class="legend">' in page and "EDM2 magnitude-preserving" in page


def test_labels_name_the_spec_file(edm2):
    view = build_view(edm2)
    ones = view.nodes["unet.ones"]
    assert ones.detail == "append_ones · edm2.diffspec:22"          # the library file, not the entry spec
    assert view.nodes["x"].detail == "sample[4, 64, 64] · edm2.diffspec:76"
    assert "edm2.diffspec:22" in render_dot(view) and "edm2.diffspec:22" in render_mermaid(view)


PARTIAL = """diffspec 1
model P(depth = 6) {
  input x: sample[1, 8, 8]
  input t: timestep[1000]
  h = patch_embed(x, patch = 2, width = 32)
  c = timestep_embed(t, width = 32)
  blocks: repeat depth as i {
    h = dit_block(h, c, heads = 2)
  }
  o = final_layer(h, c, patch = 2, out = 1)
  return unpatchify(o, patch = 2, channels = 1)
}
model Part = P with {
  @route(0.8, 4) blocks[2]
}
model Whole = P with {
  @route(0.8, 4) blocks
}
"""


def test_partial_annotation_of_a_repeat_is_shown(tmp_path):
    spec = tmp_path / "p.diffspec"
    spec.write_text(PARTIAL)
    part = build_view(compile_spec(spec, "Part")).nodes["blocks"]
    assert part.partial and part.badges == ["@route(0.8, 4.0) on [2] (1 of 6)"] and part.fill == "#fde2b8"
    whole = build_view(compile_spec(spec, "Whole")).nodes["blocks"]
    assert not whole.partial and whole.badges == ["@route(0.8, 4.0)"]
    view = build_view(compile_spec(spec, "Part"))
    assert 'style="rounded,filled,dashed"' in render_dot(view)
    assert any(kind == "partial" for kind, _, _ in view.legend)
    assert index_ranges([0, 1, 2, 3]) == "[0:4]" and index_ranges([1, 4]) == "[1, 4]"


def test_html_script_finds_every_cluster_and_node_it_collapses(edm2, tmp_path):
    view = build_view(edm2)
    data = json.loads(cluster_json(view))["clusters"]
    assert set(data) == {c.id for c in view.clusters()} == {"unet"}
    assert set(data["unet"]["nodes"]) == set(view.root.children[0].nodes)
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    svg = subprocess.run(["dot", "-Tsvg"], input=render_dot(view).encode(), capture_output=True, check=True,
                         timeout=120).stdout.decode()
    titles = {t.replace("&#45;", "-").replace("&gt;", ">") for t in re.findall(r"<title>(.*?)</title>", svg)}
    assert "cluster_unet" in titles and set(data["unet"]["nodes"]) <= titles
    page = render_html(view, render_dot(view), render_mermaid(view), svg)
    assert page.count("<script") == 2 and "<script src" not in page and 'id="viewport"' in page
    if shutil.which("node"):
        script = tmp_path / "viewer.js"
        script.write_text(SCRIPT)
        assert subprocess.run(["node", "--check", str(script)], capture_output=True, timeout=60).returncode == 0


FAKE_DOM = r"""
const data = JSON.parse(process.argv[2]), titles = JSON.parse(process.argv[3]);
const handlers = (o) => { o.on = {}; o.addEventListener = (k, f) => { o.on[k] = f; }; return o; };
const groups = titles.map(([cls, title]) => {
  const label = handlers({textContent: title.startsWith("cluster_") ? "original" : title});
  return {style: {}, classList: {contains: c => c === cls}, title,
          querySelector: sel => sel === "title" ? {textContent: title} : label, label};
});
let viewBox = "0 0 100 100";
const svg = {viewBox: {baseVal: {x: 0, y: 0, width: 100, height: 100}}, removeAttribute() {},
             setAttribute: (k, v) => { viewBox = v; }, querySelectorAll: () => groups,
             getBoundingClientRect: () => ({left: 0, top: 0, width: 100, height: 100})};
const port = handlers({style: {}, querySelector: () => svg});
const toolbar = handlers({});
global.window = handlers({});
global.document = {getElementById: id => id === "viewport" ? port : {textContent: JSON.stringify(data)},
                   querySelector: () => toolbar};
eval(process.argv[4]);
const shown = () => groups.filter(g => g.style.display !== "none").map(g => g.title);
const cluster = groups.find(g => g.title === "cluster_unet");
const before = shown();
cluster.label.on.click();
const collapsed = shown(), collapsedLabel = cluster.label.textContent;
cluster.label.on.click();
port.on.wheel({preventDefault() {}, deltaY: -1, clientX: 50, clientY: 50});
console.log(JSON.stringify({before, collapsed, collapsedLabel, after: shown(), viewBox}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_html_script_collapses_a_region_and_zooms(edm2, tmp_path):
    """The page script run by node against a stand-in DOM with Graphviz's node / edge / cluster titles."""
    view = build_view(edm2)
    titles = [["node", n] for n in view.nodes] + [["edge", f"{e.src}->{e.dst}"] for e in view.edges] + \
        [["cluster", "cluster_unet"]]
    script = tmp_path / "fake_dom.js"
    script.write_text(FAKE_DOM)
    done = subprocess.run(["node", str(script), cluster_json(view), json.dumps(titles), SCRIPT],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    inside = set(view.root.children[0].nodes)
    assert len(result["before"]) == len(titles)
    hidden = set(result["before"]) - set(result["collapsed"])
    assert inside <= hidden and "x" not in hidden and "cluster_unet" not in hidden
    assert "x->unet.ones" in hidden and "sigma->c_noise" not in hidden              # edges into the region too
    assert result["collapsedLabel"] == f"unet: edm2_unet  [+{len(inside)} nodes]"
    assert result["after"] == result["before"]                                          # expanded again
    assert result["viewBox"] != "0 0 100 100" and float(result["viewBox"].split()[2]) < 100   # zoomed in
