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
