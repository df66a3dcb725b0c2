"""`diffc graph`: every spec renders to DOT, Mermaid and HTML (SVG and PNG with Graphviz); repeats fold;
annotations are visible; rendering never imports torch."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffc.cli import cli
from diffc.compiler import compile_spec
from diffc.errors import UserError
from diffc.graph import render as render_module
from diffc.graph.dot import render_dot
from diffc.graph.mermaid import render_mermaid
from diffc.graph.render import format_for, render
from diffc.graph.view import build_view

ROOT = Path(__file__).resolve().parents[1]
HAS_DOT = shutil.which("dot") is not None

TOY = """\
block mlp(x, width: int) {
  h = linear(x, out = width * 2)
  return linear(gelu(h), out = width)
}
model Toy(depth = 3, width = 32) {
  input x: sample[1, 8, 8]
  input t: timestep[1000]
  @drop(0.1) input y: label[10]
  end = patch_embed(x, patch = 2, width = width)
  c = timestep_embed(t, width = width) + label_embed(y, classes = 10, width = width)
  m = mlp(end, width = width)
  @mp body {
    h = m * 0.5
  }
  blocks: repeat depth as i {
    h = dit_block(h, c, heads = 2)
  }
  @stage(2) decoder {
    h = dit_block(h, c, heads = 2)
  }
  o = final_layer(h, c, patch = 2, out = 1)
  return unpatchify(o, patch = 2, channels = 1)
}
model Toy_Sync = Toy() with {
  @route(0.8, 4) blocks
  @sync(1 -> 3, weight = 0.2) blocks
}
"""


def _compiling_specs() -> list[Path]:
    """Specs under specs/ that compile now (others may be mid-edit); dit.diffspec must be among them."""
    found = []
    for path in sorted((ROOT / "specs").glob("*.diffspec")):
        try:
            compile_spec(path)
        except UserError:
            continue
        found.append(path)
    return found


SPECS = _compiling_specs()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy.diffspec"
    path.write_text(TOY)
    return compile_spec(path, "Toy_Sync")


def draw(spec: Path, out: Path, *args: str) -> Path:
    result = CliRunner().invoke(cli, ["graph", str(spec), "-o", str(out), *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]     # atomic: no temp file left behind
    return out


def test_dit_spec_is_covered():
    assert ROOT / "specs" / "dit.diffspec" in SPECS


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_writes_dot_mermaid_html(spec, tmp_path, monkeypatch):
    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)   # pure Python; Graphviz below
    dot = draw(spec, tmp_path / "dot" / "g.dot").read_text()
    assert dot.startswith("digraph") and "->" in dot and "label=" in dot
    mermaid = draw(spec, tmp_path / "mmd" / "g.mmd").read_text()
    assert "flowchart TB" in mermaid and "-->" in mermaid
    page = draw(spec, tmp_path / "html" / "g.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script src" not in page and "flowchart TB" in page


def check_graphviz_outputs(spec: Path, tmp_path: Path) -> None:
    assert "<svg" in draw(spec, tmp_path / "svg" / "g.svg").read_text()
    assert draw(spec, tmp_path / "png" / "g.png").read_bytes().startswith(b"\x89PNG")
    page = draw(spec, tmp_path / "html" / "g.html").read_text()
    assert "<svg" in page and "<?xml" not in page and "<script src" not in page and 'id="viewport"' in page


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_dit_writes_svg_png_and_html_drawing(tmp_path):
    check_graphviz_outputs(ROOT / "specs" / "dit.diffspec", tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_writes_svg_png(spec, tmp_path):
    check_graphviz_outputs(spec, tmp_path)


def test_repeats_fold_unless_expanded():
    compiled = compile_spec(ROOT / "specs" / "dit.diffspec", "DiT_XL_2")
    folded = build_view(compiled)
    assert folded.nodes["blocks"].heading == "blocks x28" and folded.nodes["blocks"].block == "dit_block"
    assert folded.nodes["blocks"].shape == "[256, 1152]"
    assert not any(name.startswith("blocks.") for name in folded.nodes)
    assert "blocks x28" in render_dot(folded) and "blocks x28" in render_mermaid(folded)
    expanded = build_view(compiled, expand=True)
    assert sum(name.startswith("blocks.") for name in expanded.nodes) == 28
    assert any(c.label == "blocks: repeat x28" for c in expanded.clusters())
    assert '"blocks.0" -> "blocks.1" [label="[256, 1152]"]' in render_dot(expanded)


def test_sync_is_a_dashed_edge_with_its_weight(toy):
    folded = render_dot(build_view(toy))
    assert re.search(r'"blocks" -> "blocks" \[style=dashed.*@sync blocks\.0 -> blocks\.2 weight 0\.2', folded)
    expanded = build_view(toy, expand=True)
    sync = [e for e in expanded.edges if e.sync]
    assert [(e.src, e.dst, e.label) for e in sync] == [("blocks.0", "blocks.2", "@sync weight 0.2")]
    assert '"blocks.0" -> "blocks.2" [style=dashed' in render_dot(expanded)
    assert "-.->" in render_mermaid(expanded)


def test_annotations_clusters_and_source_lines(toy):
    view = build_view(toy)
    labels = {c.label for c in view.clusters()}
    assert {"m: mlp", "body @mp", "decoder @stage(2)", "x2 stages"} <= labels
    assert view.nodes["blocks"].badges == ["@route(0.8, 4.0)"] and view.nodes["blocks"].fill == "#fde2b8"
    assert view.nodes["body.h"].fill == "#d3efd6"                        # @mp colour
    assert view.nodes["y"].kind == "input" and view.nodes["y"].badges == ["@drop(0.1)"]
    assert "decoder.*.h" in view.nodes and "decoder.1.h" not in view.nodes
    assert {c.label for c in build_view(toy, expand=True).clusters()} >= {"stage 0", "stage 1"}
    end = view.nodes["end"]
    assert end.line == 9 and end.source == "end = patch_embed(x, patch = 2, width = width)"
    assert 'tooltip="' + str(end.file) + ':9: end = patch_embed' in render_dot(view)


def test_mermaid_ids_are_generated_and_labels_quoted(toy):
    text = render_mermaid(build_view(toy))
    ids = set(re.findall(r"^\s*(\w+)[\[(]", text, re.M)) | set(re.findall(r"subgraph (\w+)\[", text))
    assert ids and all(re.fullmatch(r"[nc]\d+", i) for i in ids)           # the node named `end` is n-something
    assert '"<b>end</b>' in text and "@mp" in text


def test_format_from_extension_or_flag():
    assert [format_for(f"g{ext}", None) for ext in (".dot", ".mmd", ".html", ".svg", ".png")] == \
        ["dot", "mermaid", "html", "svg", "png"]
    assert format_for("g.txt", "dot") == "dot" and format_for(None, None) == "dot"
    with pytest.raises(UserError, match="cannot tell the graph format"):
        format_for("g.txt", None)


def test_missing_graphviz_is_a_clear_error(toy, monkeypatch):
    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)
    view = build_view(toy)
    for fmt in ("svg", "png"):
        with pytest.raises(UserError) as err:
            render(view, fmt)
        assert "apt-get install graphviz" in err.value.render() and ".dot, .mmd or .html" in err.value.render()
    page = render(view, "html").decode()
    assert "<svg" not in page and "apt-get install graphviz" in page and "digraph" in page


def test_graph_never_imports_torch():
    code = ("import sys\nfrom diffc.commands.graph import graph\nfrom diffc.compiler import compile_spec\n"
            "from diffc.graph.render import render\nfrom diffc.graph.view import build_view\n"
            "view = build_view(compile_spec('specs/dit.diffspec'))\n"
            "for fmt in ('dot', 'mermaid', 'html'):\n    render(view, fmt)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
