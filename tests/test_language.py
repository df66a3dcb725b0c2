"""The language: annotation forms of the design card, presets, overlays, loops, composites, imports."""
import pytest

from diffc.compiler import compile_program
from diffc.compiler.program import load_text
from diffc.dsl.parser import parse
from diffc.errors import UserError

BASE = """diffspec 1
model Net(depth = 3, width = 32) {
  input x: sample[1, 8, 8]
  input t: timestep[1000]
  @drop(0.1) input y: label[10]
  h = patch_embed(x, patch = 2, width = width)
  c = timestep_embed(t, width = width) + label_embed(y, classes = 10, width = width)
  blocks: repeat depth as i {
    h = dit_block(h, c, heads = 4)
  }
  return unpatchify(final_layer(h, c, patch = 2, out = 1), patch = 2, channels = 1)
}
"""


def compile_text(text, model=None):
    return compile_program(load_text(text, "t.diffspec"), model)


@pytest.mark.parametrize("annotation", [
    "@route(0.8, 4)", "@route(window = 0.8, weight = 4)", "@route(0.5, weight = 2)",
    "@sync(1 -> 3)", "@sync(1 → 3)", "@sync(1 -> 3, weight = 0.5)", "@sync(blocks.0 -> blocks.2)",
    "@sync(blocks[0] -> blocks[2])",
])
def test_design_card_annotation_forms_parse_and_bind(annotation):
    text = BASE + f"model M = Net with {{\n  {annotation} blocks\n}}\n"
    compile_text(text, "M")


def test_mp_forms_parse_and_substitute():
    text = """model M() {
  input x: sample[2, 4, 4]
  input t: sigma
  return conv(silu(x), out = 2)
}
model P = M with {
  ANN model
}
"""
    for form in ("@mp", "@mp()", "@mp(false)", "@mp(strict = false)"):
        c = compile_text(text.replace("ANN", form), "P")
        assert [c.graph.nodes[n]["ir"].block for n in ("silu", "out")] == ["mp_silu", "mp_conv"]


def test_stage_forms_parse():
    for form in ("@stage(3)", "@stage(k = 2)", "@stage(boundaries = [logsnr(-1.84), logsnr(-4.0)], widths = [8, 8, 8])",
                 "@stage(boundaries = [sigma(2.51), sigma(7.66)])"):
        tree = parse(f"model M() {{ {form} decoder {{ }} return x }}", "s")
        region = tree.items[0].body[0]
        assert region.annotations[0].name == "stage"


def test_repeat_names_nodes_like_the_reference_and_inherits_annotations():
    c = compile_text(BASE + "model M = Net with {\n  @route(0.8, 4) blocks\n}\n", "M")
    names = list(c.graph.nodes)
    assert ["blocks.0", "blocks.1", "blocks.2"] == [n for n in names if n.startswith("blocks")]
    routed = [n for n in names if "route" in c.graph.nodes[n]["ir"].meta]
    assert routed == ["blocks.0", "blocks.1", "blocks.2"]


def test_overlay_on_one_iteration_only():
    c = compile_text(BASE + "model M = Net with {\n  @route(0.8, 4) blocks[1]\n}\n", "M")
    assert [n for n in c.graph.nodes if "route" in c.graph.nodes[n]["ir"].meta] == ["blocks.1"]


def test_presets_chain_and_override_parameters():
    c = compile_text(BASE + "model A = Net(depth = 5)\nmodel B = A(width = 64)\n", "B")
    assert c.ir.arguments == {"depth": 5, "width": 64}
    assert sum(1 for n in c.graph.nodes if n.startswith("blocks.")) == 5


def test_composite_blocks_nest_names_and_for_loops_with_skip_stack():
    text = """diffspec 1
block double_conv(x, out: int) {
  a = conv(x, out = out)
  return conv(silu(a), out = out)
}
model U(mult = [1, 2]) {
  input x: sample[2, 8, 8]
  input t: sigma
  h = conv(x, out = 4) -> skips
  enc: for level, m in enumerate(mult) {
    h = double_conv(h, out = 4 * m) -> skips
  }
  dec: for m in [2, 1] {
    h = conv(cat(h, pop(skips)), out = 4 * m)
  }
  return conv(cat(h, pop(skips)), out = 2)
}
"""
    c = compile_text(text)
    names = set(c.graph.nodes)
    assert {"enc.0.h.a", "enc.0.h.out", "enc.1.h.a", "dec.0.h", "dec.1.h"} <= names
    assert c.graph.nodes["enc.1.h.out"]["ir"].out_shapes == ((8, 8, 8),)
    # the decoder pops the encoder's skips in reverse order: 8 + 8 channels, then 4 + 4
    assert c.graph.nodes["dec.0.h"]["ir"].in_shapes["x"] == (16, 8, 8)
    assert c.graph.nodes["out"]["ir"].in_shapes["x"] == (8, 8, 8)


def test_explicit_node_names_interpolate_constants():
    text = """model M() {
  input x: sample[1, 4, 4]
  input t: sigma
  for i in range(2) {
    x = conv(x, out = 1) as "enc.{i}x_conv"
  }
  return x
}"""
    assert {"enc.0x_conv", "enc.1x_conv"} <= set(compile_text(text).graph.nodes)


def test_imports_and_cycles(tmp_path):
    (tmp_path / "lib.diffspec").write_text('block id(x) { return x * 1.0 }\n')
    (tmp_path / "main.diffspec").write_text('import "lib.diffspec"\nmodel M() { input x: sample[1,2,2]\n'
                                            ' input t: sigma\n return id(x) }\n')
    from diffc.compiler import compile_spec
    assert "out.out" in compile_spec(tmp_path / "main.diffspec").graph.nodes   # model's `out` -> id's `out`
    (tmp_path / "a.diffspec").write_text('import "b.diffspec"\n')
    (tmp_path / "b.diffspec").write_text('\n\nimport "a.diffspec"\n')
    with pytest.raises(UserError) as err:
        compile_spec(tmp_path / "a.diffspec")
    d = err.value.diagnostics[0]
    assert "import cycle: a.diffspec -> b.diffspec -> a.diffspec" in d.message
    assert (d.line, d.col) == (3, 1) and d.file.endswith("b.diffspec")


def test_bundle_round_trip_rebuilds_without_files(tmp_path):
    from diffc.compiler import compile_spec
    from diffc.compiler.program import load_program
    program = load_program("specs/dit_dtr.diffspec")
    again = load_text(program.text(), "elsewhere.diffspec")
    assert again.digest() == program.digest()
    assert compile_program(again).model_name == compile_spec("specs/dit_dtr.diffspec").model_name


def test_ternary_and_arithmetic():
    c = compile_text(BASE.replace("out = 1)", "out = 2 * (true ? 3 : 1) // 3 - 1)").replace(
        "channels = 1)", "channels = 1)"))
    assert c.graph.nodes["final_layer"]["ir"].params.out == 1


def test_text_input_exposes_its_mask():
    import torch
    from diffc.compiler import build_model_from_text
    text = """model M() {
  input x: sample[1, 8, 8]
  input t: timestep[1000]
  @drop(0.1) input txt: text[6, 16]
  tok = text_embed(txt, txt.mask, width = 32)
  h = patch_embed(x, patch = 2, width = 32)
  c = timestep_embed(t, width = 32)
  block = dit_cond_block(h, c, tok, heads = 4)
  return unpatchify(final_layer(block, c, patch = 2, out = 1), patch = 2, channels = 1)
}"""
    built = build_model_from_text(text, "t.diffspec")
    assert built.compiled.graph.nodes["txt"]["ir"].out_shapes == ((6, 16), (6,))
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1] * 6], dtype=torch.bool)
    pred, _ = built.module(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), {"txt": torch.randn(2, 6, 16), "txt.mask": mask})
    assert pred.shape == (2, 1, 8, 8)
    with pytest.raises(UserError, match="has no output 'maks'"):
        compile_text(text.replace("txt.mask", "txt.maks"))
