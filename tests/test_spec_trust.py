"""Hostile and careless spec input (issue 10): text decoding, confined imports, bounded evaluation.

Every case ends in exit 2 with a located message and no traceback, in bounded time and memory.
"""
import codecs

import pytest

from diffc.cli import main
from diffc.compiler import compile_spec

TINY = """diffspec 1
model Net(depth = 2, width = 32) {
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


def run_main(args, capsys):
    """`diffc ARGS` in-process through the real entry point: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return exit_.value.code, out, err


def test_utf8_bom_is_accepted(tmp_path, capsys):
    spec = tmp_path / "bom.diffspec"
    spec.write_bytes(codecs.BOM_UTF8 + TINY.replace("\n", "\r\n").encode())
    code, out, err = run_main(["check", spec], capsys)
    assert code == 0, err
    assert "ok: Net:" in out


def test_non_utf8_byte_is_located_with_its_offset(tmp_path, capsys):
    spec = tmp_path / "latin1.diffspec"
    data = TINY.replace("depth = 2", "depth = 2 # \u00e9t\u00e9").encode("latin-1")
    spec.write_bytes(data)
    code, out, err = run_main(["check", spec], capsys)
    assert code == 2
    offset = data.index(b"\xe9")
    assert f"latin1.diffspec:2:23: error: this spec is not UTF-8 text: byte 0xe9 at byte offset {offset}" in err
    assert "save the file as UTF-8" in err


def test_non_utf8_imported_file_names_that_file(tmp_path, capsys):
    (tmp_path / "lib.diffspec").write_bytes(b"diffspec 1\n# \xff\xfe\n")
    spec = tmp_path / "main.diffspec"
    spec.write_text('import "lib.diffspec"\n' + TINY.replace("diffspec 1\n", ""))
    code, out, err = run_main(["check", spec], capsys)
    assert code == 2
    assert "lib.diffspec:2:3: error: this spec is not UTF-8 text: byte 0xff at byte offset 13" in err


def test_fmt_reads_through_the_same_decoder(tmp_path, capsys):
    spec = tmp_path / "bad.diffspec"
    spec.write_bytes(b"diffspec 1\n\x80\n")
    code, out, err = run_main(["fmt", spec], capsys)
    assert code == 2 and "bad.diffspec:2:1: error: this spec is not UTF-8 text: byte 0x80 at byte offset 11" in err


def test_oversized_spec_is_refused_before_reading(tmp_path, capsys):
    spec = tmp_path / "huge.diffspec"
    with open(spec, "wb") as handle:
        handle.truncate(64 * 1024 * 1024)          # sparse: no disk used
    code, out, err = run_main(["check", spec], capsys)
    assert code == 2 and "this spec is 67,108,864 bytes; a spec is at most 4,194,304" in err


# ---- confined imports ----------------------------------------------------------------------------
def _spec_importing(folder, target, name="main.diffspec"):
    spec = folder / name
    spec.write_text(f'import "{target}"\n' + TINY.replace("diffspec 1\n", ""))
    return spec


def test_import_escaping_the_folder_is_refused_without_reading_it(tmp_path, capsys):
    (tmp_path / "secret.diffspec").write_text("SECRET LINE\n")
    (tmp_path / "proj").mkdir()
    spec = _spec_importing(tmp_path / "proj", "../secret.diffspec")
    code, out, err = run_main(["check", spec], capsys)
    assert code == 2
    assert "main.diffspec:1:1: error: import '../secret.diffspec' leaves the spec's folder" in err
    assert "SECRET" not in err


def test_import_of_a_system_file_never_prints_its_lines(tmp_path, capsys):
    spec = _spec_importing(tmp_path, "../../../../../../../../etc/passwd")
    code, out, err = run_main(["check", spec], capsys)
    assert code == 2 and "leaves the spec's folder" in err and "root:" not in err
    spec = _spec_importing(tmp_path, "/etc/passwd")
    code, out, err = run_main(["check", spec], capsys)
    assert code == 2 and "'/etc/passwd' is absolute" in err and "root:" not in err


def test_import_of_a_file_that_is_not_a_spec_is_refused_before_reading(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("private notes\n")
    spec = _spec_importing(tmp_path, "notes.txt")
    code, out, err = run_main(["check", spec], capsys)
    assert code == 2 and "an import names a .diffspec file; 'notes.txt' is not one" in err
    assert "private notes" not in err


def test_symlink_out_of_the_folder_is_refused(tmp_path, capsys):
    outside = tmp_path / "outside.diffspec"
    outside.write_text("block id(x) { return x }\n")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "link.diffspec").symlink_to(outside)
    spec = _spec_importing(tmp_path / "proj", "link.diffspec")
    code, out, err = run_main(["check", spec], capsys)
    assert code == 2 and "'link.diffspec' is a symbolic link to a file outside the spec's folder" in err


def test_self_import_through_dotdot_is_a_cycle_not_a_runaway(tmp_path, capsys):
    (tmp_path / "g").mkdir()
    spec = _spec_importing(tmp_path / "g", "../g/self.diffspec", name="self.diffspec")
    code, out, err = run_main(["check", spec], capsys)
    assert code == 2 and "self.diffspec:1:1: error: import cycle: self.diffspec -> self.diffspec" in err


def test_import_chains_are_bounded(tmp_path, capsys):
    for i in range(40):
        (tmp_path / f"f{i}.diffspec").write_text(f'import "f{i + 1}.diffspec"\n')
    (tmp_path / "f40.diffspec").write_text("")
    code, out, err = run_main(["check", tmp_path / "f0.diffspec"], capsys)
    assert code == 2 and "imports nest too deep or too wide (at most 32 levels" in err


def test_imports_fall_back_to_the_shipped_library_and_bundle(tmp_path):
    from diffc.compiler.program import load_program, load_text
    spec = tmp_path / "mine.diffspec"
    spec.write_text('import "lib/edm2.diffspec"\nmodel Mine = EDM2(resolution = 16, img_channels = 1, channels = 32, '
                    'mult = [1, 2, 2], blocks = 2, attn_res = [8, 4], classes = 10, channels_per_head = 32)\n')
    assert compile_spec(spec, "Mine").graph.number_of_nodes() > 10
    program = load_program(spec)
    again = load_text(program.text())                  # as a checkpoint stores it: no disk read
    assert again.digest() == program.digest()


def test_spec_from_a_checkpoint_never_reads_local_files(tmp_path, monkeypatch):
    from diffc.compiler.program import load_text
    from diffc.errors import UserError
    (tmp_path / "local.diffspec").write_text("block id(x) { return x }\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as err:
        load_text('import "local.diffspec"\n', "local_user.diffspec")
    d = err.value.diagnostics[0]
    assert (d.file, d.line, d.col) == ("local_user.diffspec", 1, 1)
    assert "'local.diffspec' was not stored with this spec" in d.message


def test_checkpoint_rebuild_goes_through_the_no_disk_loader(tmp_path, monkeypatch):
    from diffc.errors import UserError
    from diffc.checkpoints import rebuild_model
    (tmp_path / "local.diffspec").write_text("block id(x) { return x }\n")
    monkeypatch.chdir(tmp_path)
    hostile = {"spec_text": 'import "local.diffspec"\n' + TINY.replace("diffspec 1\n", ""),
               "spec_path": "local_user.diffspec", "model_name": "Net"}
    with pytest.raises(UserError, match="'local.diffspec' was not stored with this spec"):
        rebuild_model(hostile, device="meta")


# ---- bounded parsing and evaluation --------------------------------------------------------------
def _with_statement(stmt):
    return TINY.replace("  blocks: repeat", f"  {stmt}\n  blocks: repeat")


def check_text(tmp_path, capsys, text):
    spec = tmp_path / "case.diffspec"
    spec.write_text(text)
    return run_main(["check", spec], capsys)


@pytest.mark.parametrize("stmt", [
    " + ".join(["1"] * 5_000),                                    # a 5,000-term sum (50,000: the token limit)
    "if true { " * 2_000 + "s = 1" + " }" * 2_000,                # 2,000 nested ifs
    "s = " + "[" * 5_000 + "]" * 5_000,                           # deep lists
    "s = " + "-" * 5_000 + "1",
    "s = " + "true ? 1 : " * 3_000 + "2",
    "s = " + "2 ** " * 3_000 + "2",
], ids=["sum", "nested-ifs", "deep-list", "negations", "ternaries", "powers"])
def test_deep_nesting_is_a_located_error(tmp_path, capsys, stmt):
    stmt = stmt if stmt.startswith(("s =", "if")) else "s = " + stmt
    code, out, err = check_text(tmp_path, capsys, _with_statement(stmt))
    assert code == 2
    assert "case.diffspec:7:3: error: this nests too deeply: more than 150 levels" in err
    assert "split it into named steps" in err
    assert max(len(line) for line in err.splitlines()) < 250     # the long line is shown as a window


def test_huge_literals_are_located_errors(tmp_path, capsys):
    code, out, err = check_text(tmp_path, capsys, _with_statement("s = " + "7" * 100_000))
    assert code == 2 and "case.diffspec:7:7: error: this number has 100,000 characters; numbers have at most 320" in err
    code, out, err = check_text(tmp_path, capsys, _with_statement("s = 1e999"))
    assert code == 2 and "case.diffspec:7:7: error: 1e999 is too large for a floating-point number" in err
    code, out, err = check_text(tmp_path, capsys, _with_statement('s = "bad \\x escape"'))
    assert code == 2 and "case.diffspec:7:7: error: invalid escape in this string: truncated \\xXX escape" in err


@pytest.mark.parametrize("change,where,message", [
    ({"depth = 2": "depth = 10 ** 9"}, "7:18", "the repeat count is 1,000,000,000, over the limit of 100,000"),
    ({"  blocks:": "  xs = range(10 ** 9)\n  blocks:"}, "7:8", "range()'s length is 1,000,000,000, over the limit"),
    ({"  blocks:": '  s = "a" * 10 ** 10\n  blocks:'}, "7:7", "the repeated sequence's length is 10,000,000,000"),
    ({"  blocks:": "  s = [1] * 10 ** 10\n  blocks:"}, "7:7", "the repeated sequence's length is 10,000,000,000"),
    ({"  blocks:": "  s = [1]\n  repeat 64 { s = s + s }\n  blocks:"}, "8:19",
     "this list's size (nested elements included) is 131,072"),
    ({"  blocks:": "  s = 10 ** 10 ** 10\n  blocks:"}, "7:7", "10 ** 10000000000 is over the integer limit of 1024 bits"),
    ({"  blocks:": "  s = int(10.0 ** 400)\n  blocks:"}, "7:11", "the result of '**' is too large for a number"),
    ({"  blocks:": "  s = int(1e308 * 10)\n  blocks:"}, "7:11", "this gives inf, not a finite number"),
    ({"  blocks:": '  s = float("nan")\n  blocks:'}, "7:7", "this gives nan, not a finite number"),
    ({"  blocks:": "  s = (-8) ** 0.5\n  blocks:"}, "7:7", "this gives a complex number"),
    ({"  blocks:": "  repeat 100000 { repeat 100000 { s = 1 } }\n  blocks:"}, "7:", "takes more than 200,000 steps"),
    ({"depth = 2": "depth = 20000"}, "8:9", "this model has more than 10,000 nodes"),
    ({"model Net": "block f(x) { return f(x) }\nmodel Net", "  blocks:": "  h = f(h)\n  blocks:"}, "2:21",
     "composite blocks nest more than 16 calls deep (... f -> f -> f -> f -> f)"),
    ({"timestep[1000]": "timestep[10 ** 9]"}, "4:21", "timestep[1,000,000,000] has more steps than diffc's limit"),
    ({"  blocks: repeat": "  @stage(10 ** 9) decoder { s = 1 }\n  blocks: repeat"}, "7:3",
     "@stage with 1000000000 stages: at most 32"),
], ids=["repeat-count", "range", "string-repeat", "list-repeat", "list-doubling", "power-tower", "float-overflow",
        "float-inf", "nan", "complex", "nested-loops", "node-count", "self-recursive-block", "timesteps", "stages"])
def test_evaluation_budgets_are_located_errors(tmp_path, capsys, change, where, message):
    text = TINY
    for old, new in change.items():
        assert old in text
        text = text.replace(old, new, 1)
    code, out, err = check_text(tmp_path, capsys, text)
    assert code == 2
    first = err.splitlines()[0]
    assert f"case.diffspec:{where}" in first and message in first


@pytest.mark.parametrize("width,message", [
    ("10 ** 9", "'h' produces a tensor of shape [16, 1000000000]: 1.6e+10 elements per sample, over diffc's limit"),
    ("10 ** 6", "this model would have at least 2e+12 parameters (a lower bound from its shapes; 'blocks.0' alone"),
])
def test_absurd_model_sizes_are_refused_by_check(tmp_path, capsys, width, message):
    code, out, err = check_text(tmp_path, capsys, TINY.replace("width = 32", f"width = {width}"))
    assert code == 2 and message in err


def test_a_50000_term_sum_is_refused_by_the_token_limit(tmp_path, capsys):
    code, out, err = check_text(tmp_path, capsys, _with_statement("s = " + " + ".join(["1"] * 50_000)))
    assert code == 2 and "case.diffspec:7:199891: error: this spec has more than 100,000 tokens" in err


def test_a_huge_spec_is_refused_before_parsing(tmp_path, capsys):
    text = TINY.replace("  blocks: repeat", "  s = 1\n" * 40_000 + "  blocks: repeat")     # 120,000 tokens
    code, out, err = check_text(tmp_path, capsys, text)
    assert code == 2 and "case.diffspec:33321:7: error: this spec has more than 100,000 tokens" in err
