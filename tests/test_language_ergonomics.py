"""Language ergonomics (issue 13 item 7): overlay slices, one numbering, loop rebinding, `as` names, builtins
for U-Net decoders, the model a spec chooses. Each found by writing new specs from docs/language.md."""
import pytest

from diffc.compiler import compile_program
from diffc.compiler.program import load_text
from diffc.dsl.printer import format_text
from diffc.errors import UserError

NET = """diffspec 1
model Net(depth = 6, width = 32) {
  input x: sample[1, 8, 8]
  input t: timestep[1000]
  h = patch_embed(x, patch = 2, width = width)
  c = timestep_embed(t, width = width)
  blocks: repeat depth {
    h = dit_block(h, c, heads = 4)
  }
  return unpatchify(final_layer(h, c, patch = 2, out = 1), patch = 2, channels = 1)
}
"""


def compile_text(text, model=None):
    return compile_program(load_text(text, "t.diffspec"), model)


def annotated(compiled, name):
    return [n for n in compiled.graph.nodes if any(a.name == name for a in compiled.graph.nodes[n]["ir"].annotations)]


@pytest.mark.parametrize("target,expected", [
    ("blocks[0:4]", [0, 1, 2, 3]), ("blocks[::2]", [0, 2, 4]), ("blocks[3:]", [3, 4, 5]),
    ("blocks[:2]", [0, 1]), ("blocks[1:6:2]", [1, 3, 5]), ("blocks[2]", [2]), ("blocks[*]", [0, 1, 2, 3, 4, 5]),
])
def test_overlay_targets_take_slices(target, expected):
    text = NET + f"model M = Net with {{\n  @route(0.8, 4) {target}\n}}\n"
    assert annotated(compile_text(text, "M"), "route") == [f"blocks.{i}" for i in expected]
    assert f"@route(0.8, 4) {target}\n" in format_text(text, "t.diffspec")     # fmt keeps the slice


def test_overlay_slice_errors_are_located():
    with pytest.raises(UserError) as err:
        compile_text(NET + "model M = Net with {\n  @route(0.8, 4) blocks[::0]\n}\n", "M")
    d = err.value.diagnostics[0]
    assert (d.line, d.col) == (13, 18) and "a slice step must be at least 1" in d.message
    with pytest.raises(UserError) as err:
        compile_text(NET + "model M = Net with {\n  @route(0.8, 4) blocks[6:]\n}\n", "M")
    d = err.value.diagnostics[0]
    assert (d.line, d.col) == (13, 18) and "overlay target 'blocks[6:]' matches nothing" in d.message


def test_rebinding_in_an_unlabeled_for_loop_numbers_the_nodes():
    text = NET.replace("  blocks: repeat depth {", "  for i in range(2) {\n    h = dit_block(h, c, heads = 4)\n  }\n"
                                                   "  blocks: repeat depth {")
    c = compile_text(text)
    assert ["h", "h.0", "h.1"] == [n for n in c.graph.nodes if n.split(".")[0] == "h"]
    assert c.graph.has_edge("h.0", "h.1") and c.graph.has_edge("h.1", "blocks.0")     # h carried across


def test_dotted_as_names_are_full_names_not_prefixed_twice():
    text = NET.replace("    h = dit_block(h, c, heads = 4)\n", "    h = dit_block(h, c, heads = 4) as \"blocks.{i}.block\"\n"
                       "    h = h * 0.5 as \"half\"\n").replace("repeat depth {", "repeat depth as i {")
    names = list(compile_text(text).graph.nodes)
    assert "blocks.3.block" in names and "blocks.3.half" in names          # a one-part name keeps the label
    assert not any(n.startswith("blocks.3.blocks") for n in names)


def test_reversed_and_sum_for_a_unet_decoder():
    text = NET.replace("  blocks: repeat depth {", "  n = sum([1, 2, 3]) - 5\n  ws = []\n"
                       "  for level, m in reversed(enumerate([1, 2])) {\n    ws = ws + [level * 10 + m]\n  }\n"
                       "  blocks: repeat depth {").replace("out = 1)", "out = n * (ws[0] - ws[1] - 10))")
    assert compile_text(text).interface.out_channels == 1        # ws == [12, 1], n == 1


def test_a_spec_without_default_says_which_model_it_chose(tmp_path, capsys):
    from test_spec_trust import run_main
    spec = tmp_path / "two.diffspec"
    spec.write_text(NET + "model Small = Net(depth = 1)\n")
    code, out, err = run_main(["check", spec], capsys)
    assert code == 0 and "ok: Small:" in out
    assert "note: " in err and "two.diffspec has no `default` line, so its last model 'Small' is used " \
                               "(models: Net, Small; choose with --model)" in err
    code, out, err = run_main(["check", spec, "--model", "Net"], capsys)
    assert code == 0 and "note" not in err


def test_a_wrong_model_flag_points_at_the_model_list(tmp_path, capsys):
    from test_spec_trust import run_main
    spec = tmp_path / "m.diffspec"
    spec.write_text('import "dit.diffspec"\n' + NET.replace("diffspec 1\n", "").replace("model Net", "model Mine"))
    code, out, err = run_main(["check", spec, "--model", "Mien"], capsys)
    assert code == 2
    assert f"{spec}: error: --model Mien: this spec has no model or preset of that name" in err
    assert f"= note: models in {spec}: Mine" in err and "did you mean 'Mine'?" in err
    assert "import" not in err                                  # not located at the import line


def test_the_unet_example_in_the_language_reference_compiles():
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "language.md").read_text()
    section = doc.split("## A complete U-Net\n", 1)[1].split("\n## ", 1)[0]
    code = "\n".join(line[4:] for line in section.splitlines() if line.startswith("    ") or not line.strip())
    program = load_text(code.strip() + "\n", "unet.diffspec")
    for model, channels in (("UNet", 3), ("UNet_tiny", 1)):
        compiled = compile_program(program, model)
        assert compiled.interface.out_channels == channels
    names = set(compile_program(program, "UNet_tiny").graph.nodes)
    assert {"stem", "enc.0.blocks.0.res", "enc.1.blocks.0.attn", "middle.attn", "dec.0.blocks.1.res", "out"} <= names


def test_one_numbering_sync_integers_are_depths_and_names_are_0_based():
    deep = NET.replace("depth = 6", "depth = 16")
    two = deep + "model M = Net with {\n  @sync(8 -> 16, 1 -> 2) blocks\n}\n"
    assert compile_text(two, "M").interface.aux_losses == {"layersync/blocks.7->blocks.15": 0.2,
                                                           "layersync/blocks.0->blocks.1": 0.2}
    same = deep + "model M = Net with {\n  @sync(blocks.7 -> blocks.15) model\n}\n"
    assert compile_text(same, "M").ir.taps["layersync"][0].node.name == "blocks.7"
    with pytest.raises(UserError) as err:
        compile_text(deep + "model M = Net with {\n  @sync(8 -> 17) blocks\n}\n", "M")
    d = err.value.diagnostics[0]
    assert (d.line, d.col) == (13, 9)
    assert d.message == ("@sync depth 17 is out of range: 'blocks' has 16 layers, so depths run from 1 to 16 "
                         "(depth d is the output after d layers, node blocks.{d-1})")
    assert d.help == "or name nodes: @sync(blocks.0 -> blocks.15)"
