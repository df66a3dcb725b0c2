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
