"""A corpus of broken specs: each gives the right file:line:col, message, help, exit code 2, no traceback."""
import json

import pytest

from diffc.compiler import compile_program
from diffc.compiler.program import load_text
from diffc.errors import UserError
from cli_helpers import run_cli

HEAD = """diffspec 1
model Net(depth = 2, width = 32) {
  input x: sample[1, 8, 8]
  input t: timestep[1000]
  @drop(0.1) input y: label[10]
"""
BODY = """  h = patch_embed(x, patch = 2, width = width)
  c = timestep_embed(t, width = width) + label_embed(y, classes = 10, width = width)
  blocks: repeat depth as i {
    h = dit_block(h, c, heads = 4)
  }
  return unpatchify(final_layer(h, c, patch = 2, out = 1), patch = 2, channels = 1)
}
"""
GOOD = HEAD + BODY


def spec(replace=None, append=""):
    text = GOOD
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text + append


# (id, source, line, col, message fragment, help fragment or None)
CORPUS = [
    ("missing-paren", spec({"width = width)\n  c": "width = width\n  c"}), 6, 46, "expected ')' or ','", None),
    ("missing-brace", spec({"heads = 4)\n  }": "heads = 4)\n"}), 12, 2, "unexpected end of file: expected '}'", None),
    ("bad-char", spec({"patch = 2, width": "patch = 2 $ width"}), 6, 32, "unexpected character '$'", None),
    ("kwarg-without-equals", spec({"heads = 4": "heads 4"}), 9, 31, "unexpected '4'", None),
    ("unknown-block", spec({"dit_block(": "dit_blok("}), 9, 9, "unknown block 'dit_blok'", "did you mean 'dit_block'?"),
    ("unknown-keyword", spec({"heads = 4": "head = 4"}), 9, 25, "dit_block has no parameter 'head'", "did you mean 'heads'?"),
    ("wrong-type", spec({"heads = 4": "heads = \"four\""}), 9, 33, "parameter 'heads' expected int", None),
    ("validator", spec({"heads = 4": "heads = 0"}), 9, 33, "'heads' must be > 0", None),
    ("unknown-name", spec({"dit_block(h, c,": "dit_block(h, cc,"}), 9, 22, "unknown name 'cc'", "did you mean 'c'?"),
    ("constant-as-tensor", spec({"dit_block(h, c,": "dit_block(h, 3,"}), 9, 22, "input 'c' of dit_block must be a tensor", None),
    ("too-many-inputs", spec({"dit_block(h, c,": "dit_block(h, c, c,"}), 9, 25, "takes 2 tensor input(s)", None),
    ("missing-parameter", spec({"dit_block(h, c, heads = 4)": "dit_block(h, c)"}), 9, 9, "missing required parameter(s): heads", None),
    ("shape-mismatch", spec({"width = width) + label_embed(y, classes = 10, width = width)":
                             "width = 16) + label_embed(y, classes = 10, width = 16)"}),
     9, 22, "conditioning 'c' has width 16 but the tokens have width 32", None),
    ("unknown-annotation", spec({"  blocks: repeat": "  @rout(0.8) blocks: repeat"}), 8, 4, "unknown annotation '@rout'", "did you mean 'route'?"),
    ("annotation-bad-value", spec({"  blocks: repeat": "  @route(1.5) blocks: repeat"}), 8, 10, "'window'", None),
    ("annotation-unknown-arg", spec({"  blocks: repeat": "  @route(windw = 0.5) blocks: repeat"}), 8, 10, "@route has no argument 'windw'", "did you mean 'window'?"),
    ("annotation-wrong-target", spec({"    h = dit_block": "    @stage(3) h = dit_block"}), 9, 6, "@stage cannot be put on a block call", None),
    ("annotation-too-many-args", spec({"  blocks: repeat": "  @route(0.8, 4, 3, 2) blocks: repeat"}), 8, 18, "at most 2 positional", None),
    ("sync-same-layer", spec({"  blocks: repeat": "  @sync(1 -> 1) blocks: repeat"}), 8, 9, "names the same layer", None),
    ("sync-out-of-range", spec({"  blocks: repeat": "  @sync(1 -> 5) blocks: repeat"}), 8, 9, "out of range", None),
    ("sync-unknown-layer", spec({"  blocks: repeat": "  @sync(blocks.0 -> blokcs.1) blocks: repeat"}), 8, 9, "no layer named 'blokcs.1'", "did you mean 'blocks.1'?"),
    ("sync-backwards", spec({"  blocks: repeat": "  @sync(2 -> 1) blocks: repeat"}), 8, 9, "does not come after", None),
    ("overlay-target", spec(append="model M = Net with {\n  @route(0.8, 4) blokcs\n}\n"), 14, 18, "overlay target 'blokcs' matches nothing", "did you mean 'blocks'?"),
    ("preset-unknown-param", spec(append="model M = Net(dept = 3)\n"), 13, 15, "model Net has no parameter 'dept'", "did you mean 'depth'?"),
    ("preset-unknown-base", spec(append="model M = Nett(depth = 3)\n"), 13, 11, "unknown model 'Nett'", "did you mean 'Net'?"),
    ("unknown-input-kind", spec({"input t: timestep[1000]": "input t: timestp[1000]"}), 4, 12, "unknown input kind 'timestp'", "did you mean 'timestep'?"),
    ("duplicate-node", spec({"  return unpatchify": "  h = patch_embed(x, patch = 2, width = width)\n  return unpatchify"}), 11, 7, "node name 'h' is already used", None),
    ("no-return", spec({"  return unpatchify(final_layer(h, c, patch = 2, out = 1), patch = 2, channels = 1)\n": ""}), 2, 1, "has no `return`", None),
    ("bad-version", spec({"diffspec 1": "diffspec 7"}), 1, 1, "version 7 is not supported", None),
    ("tensor-op", spec({"c = timestep_embed": "c = 2 - timestep_embed"}), 7, 7, "operator '-' is not defined", None),
    ("repeat-count", spec({"repeat depth as i": "repeat 2.5 as i"}), 8, 18, "repeat count must be a non-negative integer", None),
    ("wrong-output-size", spec({"patch = 2, channels = 1)\n}": "patch = 1, channels = 4)\n}"}), 11, 10, "a prediction must match the sample's size [C', 8, 8]", None),
    ("default-unknown", spec(append="default Nte\n"), 13, 9, "default model 'Nte' is not defined", "did you mean 'Net'?"),
]


@pytest.mark.parametrize("name,source,line,col,message,help", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus(name, source, line, col, message, help):
    with pytest.raises(UserError) as err:
        compile_program(load_text(source, "broken.diffspec"))
    d = err.value.diagnostics[0]
    assert message in d.message, d.render()
    assert (d.file, d.line, d.col) == ("broken.diffspec", line, col), d.render()
    if help:
        assert d.help and help in d.help, d.render()
    rendered = err.value.render()
    assert rendered.startswith(f"broken.diffspec:{line}:{col}: error: ")
    assert d.source_line is not None and "^" in rendered


def test_shape_error_names_both_ends():
    source = spec({"width = width) + label_embed(y, classes = 10, width = width)":
                   "width = 16) + label_embed(y, classes = 10, width = 16)"})
    with pytest.raises(UserError) as err:
        compile_program(load_text(source, "b.diffspec"))
    note = err.value.diagnostics[0].notes[0]
    assert "'c' of 'blocks.0' is the output of 'c' (add, line 7) with shape [16]" in note


def test_keyword_error_lists_the_signature():
    with pytest.raises(UserError) as err:
        compile_program(load_text(spec({"heads = 4": "head = 4"}), "b.diffspec"))
    assert "heads: int, mlp_ratio: float = 4.0" in err.value.diagnostics[0].notes[0]


def test_several_syntax_errors_in_one_run():
    source = spec({"width = width)\n  c": "width = width\n  c"}) + "model B( {\n}\nmodel C() { return ] }\n"
    with pytest.raises(UserError) as err:
        load_text(source, "b.diffspec")
    assert [(d.line, d.col) for d in err.value.diagnostics] == [(6, 46), (13, 10), (15, 20)]


def test_cli_exit_code_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.diffspec"
    bad.write_text(spec({"dit_block(": "dit_blok("}))
    for command in (["check", str(bad)], ["compile", str(bad)]):
        code, out, err = run_cli(command)
        assert code == 2, (command, out, err)
        assert "Traceback" not in out + err
        assert f"{bad}:9:9: error: unknown block 'dit_blok'" in err


def test_cli_json_diagnostics(tmp_path):
    bad = tmp_path / "bad.diffspec"
    bad.write_text(spec({"heads = 4": "head = 4"}))
    code, out, err = run_cli(["check", str(bad), "--error-format", "json"])
    assert code == 2
    diag = json.loads(out)["diagnostics"][0]
    assert (diag["line"], diag["col"], diag["help"]) == (9, 25, "did you mean 'heads'?")


def test_cli_missing_file_and_bad_flag():
    code, out, err = run_cli(["check", "nope.diffspec"])
    assert code == 2 and "spec file not found: nope.diffspec" in err and "Traceback" not in err
    code, out, err = run_cli(["check", "specs/dit.diffspec", "--bogus"])
    assert code == 2 and "No such option '--bogus'" in err
