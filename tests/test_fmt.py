"""`diffc fmt`: the canonical form is idempotent, keeps every comment, and reads back as the same spec."""
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_cli
from diffc.cli import main
from diffc.compiler import compile_program
from diffc.compiler.program import load_text
from diffc.dsl import ast as A
from diffc.dsl.parser import parse
from diffc.dsl.printer import expr, format_text, syntax_key

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(ROOT.glob("specs/**/*.diffspec"))

MESSY = '''\
# header comment
diffspec   1    # version note
import   "lib/x.diffspec"
recipe "r.yaml"
block mlp( x ,width:int,ratio=4 ){   # mlp header
  h=linear( x,out=width*ratio )
  # before return
  return linear(gelu(h),out = width)   # trailing
  # end of mlp body
}
@mp
@route( 0.8 , 4 )   model   Net(depth=2,width=64,lr=1e-4 , flow = false,
    name = "a \\"q\\" b é") {
  input x : sample[ 1 , 8, 8 ]
  @drop( 0.1 )
  input y: label[10]
  input t: timestep[1000, schedule = "cosine"]


  a = ((x + 1)) * (2 - (3 - 4))   # parens
  b = -(x * 2) + (-x) * 2 + a - (b - c) - (d + e) + (not a in b)
  c = (flow ? 1 : 2) * (a ? b : (c ? d : e))
  enc: for level , m in enumerate( [1,2] ) {
    h = conv(h,
             # inside a call
             out = 64) as "enc.{level}" \u2192 skips
  }
  blocks:repeat depth as i { h = dit_block(h, c, heads = 4) }  # one-liner
  if not (a and b) or c { z = 1 } else if a < (b < c) { z = 2 }
  else {
    z = 3

  }
  @stage(boundaries = [logsnr(-1.84), logsnr(-4.0)], widths = [192, 128, 16]) decoder {
    h = resblock(h, emb, out = stage_width * mult[-1], groups = g, dropout = dropout, scale_shift = false, skip = 1)
  }
  return   h , y   # two
}   # end Net
model Small = Net(depth = 1)
model Small2 = Net()
model Small_DTR = Small with {   # overlay
  @route(0.8, 4) blocks
  # about sync
  @sync(1 \u2192 2, weight = 0.2)  blocks[*]
  @mp() model
}
default   Small
# the end
'''

CANONICAL = '''\
# header comment
diffspec 1  # version note
import "lib/x.diffspec"
recipe "r.yaml"

block mlp(x, width: int, ratio = 4) {  # mlp header
  h = linear(x, out = width * ratio)
  # before return
  return linear(gelu(h), out = width)  # trailing
  # end of mlp body
}

@mp
@route(0.8, 4)
model Net(depth = 2, width = 64, lr = 1e-4, flow = false, name = "a \\"q\\" b é") {
  input x: sample[1, 8, 8]
  @drop(0.1) input y: label[10]
  input t: timestep[1000, schedule = "cosine"]

  a = (x + 1) * (2 - (3 - 4))  # parens
  b = -(x * 2) + -x * 2 + a - (b - c) - (d + e) + (not a in b)
  c = (flow ? 1 : 2) * (a ? b : c ? d : e)
  enc: for level, m in enumerate([1, 2]) {
    # inside a call
    h = conv(h, out = 64) as "enc.{level}" -> skips
  }
  blocks: repeat depth as i {  # one-liner
    h = dit_block(h, c, heads = 4)
  }
  if not (a and b) or c {
    z = 1
  } else if a < (b < c) {
    z = 2
  } else {
    z = 3
  }
  @stage(boundaries = [logsnr(-1.84), logsnr(-4.0)], widths = [192, 128, 16]) decoder {
    h = resblock(h, emb, out = stage_width * mult[-1], groups = g, dropout = dropout,
                 scale_shift = false, skip = 1)
  }
  return h, y  # two
}  # end Net

model Small = Net(depth = 1)
model Small2 = Net

model Small_DTR = Small with {  # overlay
  @route(0.8, 4) blocks
  # about sync
  @sync(1 -> 2, weight = 0.2) blocks[*]
  @mp() model
}

default Small
# the end
'''


def comment_texts(text):
    return sorted(c[2] for c in parse(text).comments)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(ROOT / "specs")))
def test_every_spec_formats_stably_and_reads_back_the_same(path):
    text = path.read_text()
    once = format_text(text, str(path))
    assert format_text(once, str(path)) == once
    assert syntax_key(parse(once, str(path))) == syntax_key(parse(text, str(path)))
    assert comment_texts(once) == comment_texts(text)


def test_messy_spec_formats_to_the_canonical_text():
    assert format_text(MESSY) == CANONICAL
    assert format_text(CANONICAL) == CANONICAL
    assert syntax_key(parse(MESSY)) == syntax_key(parse(CANONICAL))


def test_syntax_key_ignores_locations_but_not_grouping():
    def value(src):
        return syntax_key(parse(f"model M() {{\n  v = {src}\n}}").items[0].body[0].value)

    assert value("a  -  b") == value("(a - b)")
    assert value("a - (b - c)") != value("a - b - c")
    assert value("1e-4") != value("0.0001")          # numbers keep their source text


@pytest.mark.parametrize("src, canonical", [
    ("a - (b - c)", "a - (b - c)"), ("(a - b) - c", "a - b - c"), ("(a + b) * c", "(a + b) * c"),
    ("a + (b * c)", "a + b * c"), ("a / (b * c)", "a / (b * c)"), ("-(a + b)", "-(a + b)"),
    ("(a < b) == c", "(a < b) == c"), ("not (a or b) and c", "not (a or b) and c"),
    ("(a ? b : c) ? d : e", "(a ? b : c) ? d : e"), ("x[(i + 1)].y", "x[i + 1].y"),
    ("(h + c).shape", "(h + c).shape"), ("f((a), [(b)], k = (c))", "f(a, [b], k = c)"),
])
def test_parentheses_are_minimal_and_keep_the_meaning(src, canonical):
    out = format_text(f"model M() {{\n  v = {src}\n}}\n")
    assert out == f"model M() {{\n  v = {canonical}\n}}\n"


def test_power_binds_tighter_than_negation():
    # Built directly: `**` is right-associative, takes a postfix on its left and a unary on its right.
    loc = A.Loc("<t>", 1, 1, 1, 1)
    x, two, y = A.Name(loc, "x"), A.Num(loc, 2, "2"), A.Name(loc, "y")
    assert expr(A.Unary(loc, "-", A.BinOp(loc, "**", x, two))) == "-x ** 2"
    assert expr(A.BinOp(loc, "**", A.Unary(loc, "-", x), two)) == "(-x) ** 2"
    assert expr(A.BinOp(loc, "**", x, A.Unary(loc, "-", two))) == "x ** -2"
    assert expr(A.BinOp(loc, "**", x, A.BinOp(loc, "**", y, two))) == "x ** y ** 2"
    assert expr(A.BinOp(loc, "**", A.BinOp(loc, "**", x, y), two)) == "(x ** y) ** 2"


def test_strings_round_trip_escapes_and_unicode():
    src = 'model M() {\n  h = f(x) as "a\\\\b \\"q\\" \\t \\u2192 é"\n}\n'
    assert format_text(src) == src


def node_table(compiled):
    nodes = [(n.name, n.block, n.params) for n in (d["ir"] for _, d in compiled.graph.nodes(data=True))]
    edges = sorted((compiled.graph.nodes[a]["ir"].name, compiled.graph.nodes[b]["ir"].name, d.get("port"))
                   for a, b, d in compiled.graph.edges(data=True))
    return nodes, edges


@pytest.mark.parametrize("model", ["DiT_tiny", "DiT_S_2", "DiT_XL_2"])
def test_formatted_dit_compiles_to_the_same_graph(model):
    path = str(ROOT / "specs" / "dit.diffspec")
    text = Path(path).read_text()
    before = compile_program(load_text(text, path), model)
    after = compile_program(load_text(format_text(text, path), path), model)
    assert node_table(after) == node_table(before)


def run_main(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_check_write_and_print(tmp_path, capsys):
    spec = tmp_path / "m.diffspec"
    spec.write_text(MESSY)
    assert run_main(["fmt", str(spec), "--check"], capsys)[0] == 1
    assert run_main(["fmt", str(spec)], capsys)[:2] == (0, CANONICAL)
    assert spec.read_text() == MESSY                     # printing changes nothing
    assert run_main(["fmt", str(spec), "--write"], capsys)[0] == 0
    assert spec.read_text() == CANONICAL
    inode = spec.stat().st_ino
    assert run_main(["fmt", str(spec), "--write"], capsys)[0] == 0
    assert spec.stat().st_ino == inode                   # already canonical: not rewritten
    assert run_main(["fmt", str(spec), "--check"], capsys)[0] == 0
    assert list(tmp_path.iterdir()) == [spec]             # no temporary file left behind


def test_syntax_error_exits_2_with_a_located_message(tmp_path):
    spec = tmp_path / "bad.diffspec"
    spec.write_text("model M() {\n  h = f(x,\n}\n")
    code, _, err = run_cli(["fmt", spec, "--check"])
    assert code == 2
    assert f"{spec}:2:" in err and "^" in err
    assert spec.read_text() == "model M() {\n  h = f(x,\n}\n"


def test_fmt_does_not_import_torch(tmp_path):
    spec = tmp_path / "m.diffspec"
    spec.write_text(CANONICAL)
    code = ("import sys; from diffc.cli import main\n"
            f"try: main(['fmt', {str(spec)!r}, '--check'])\n"
            "except SystemExit as e: assert e.code == 0, e.code\n"
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
