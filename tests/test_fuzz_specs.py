"""Fuzzing `diffc check` with hypothesis (issue 10 item 8): specs generated from the grammar, random
expressions in a real model, and mutations of every shipped spec (byte flips, token deletions and
duplications, number blow-ups). Every run must end in exit 0 or 2 with no traceback, within a hang guard;
a few run as real subprocesses under a memory limit.

The normal suite runs a small, derandomized profile (a few seconds). The long run is marked `fuzz`:
    python -m pytest -m fuzz                       (DIFFC_FUZZ_EXAMPLES=N sets examples per test, default 1500)
"""
from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from cli_helpers import main_exits_cleanly
from text_mutations import mutate as mutate_text

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(p for p in (ROOT / "specs").rglob("*.diffspec"))
QUICK = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LONG = settings(max_examples=int(os.environ.get("DIFFC_FUZZ_EXAMPLES", "1500")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HANG_GUARD_S = 120          # far above any check (about a second); only a hang reaches it


def check_exits_cleanly(data: bytes, folder: Path, name: str = "fuzz.diffspec") -> int:
    """Run `diffc check --all` on `data` in-process through the CLI entry; exit 0 or 2, no traceback."""
    spec = folder / name
    spec.write_bytes(data)
    code, _ = main_exits_cleanly(["check", "--all", str(spec)], data, HANG_GUARD_S, "spec")
    event(f"exit {code}")
    return code

# ---- strategies ------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def grammar_specs():
    """Token streams of dsl/grammar.lark, with names and numbers a spec would use (spaced so they lex)."""
    from lark import Lark
    grammar = resources.files("diffc.dsl").joinpath("grammar.lark").read_text()
    names = st.sampled_from(["x", "t", "h", "c", "y", "Net", "blocks", "depth", "width", "dit_block", "conv",
                             "patch_embed", "sample", "timestep", "route", "sync", "stage", "mp", "range", "i"])
    numbers = st.one_of(st.integers(0, 64).map(str), st.sampled_from(["0.5", "1e-3", "10 ** 9", "1000"]))
    return from_lark(Lark(grammar, parser="lalr", start="file"), start="file", explicit={
        "NAME": names.map(lambda n: f" {n} "), "INT": st.integers(0, 40).map(lambda n: f" {n} "),
        "NUMBER": numbers.map(lambda n: f" {n} "), "STRING": st.sampled_from(['"a"', '"blocks.{i}"', '""']),
        "COMMENT": st.just("# c\n")})


LEAVES = st.one_of(
    st.integers(-3, 70).map(str), st.sampled_from(["10 ** 9", "10 ** 400", "1e308", "0.0", "2.5", "-1", "10 ** 10 ** 10"]),
    st.sampled_from(['"a"', '"x" * 1000', "true", "false", "none", "[]", "[1, 2, 3]"]),
    st.sampled_from(["h", "c", "x", "s", "depth", "width", "undefined_name"]))


def _expressions():
    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "==", "<", "and", "or", "in"]),
                      inner).map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
            inner.map(lambda e: f"-{e}"), inner.map(lambda e: f"not {e}"),
            st.tuples(st.sampled_from(["range", "len", "min", "max", "abs", "int", "float", "round", "sum",
                                       "enumerate", "zip", "reversed", "logsnr", "sigma"]),
                      st.lists(inner, max_size=3)).map(lambda p: f"{p[0]}({', '.join(p[1])})"),
            st.lists(inner, max_size=4).map(lambda xs: f"[{', '.join(xs)}]"),
            st.tuples(inner, inner).map(lambda p: f"{p[0]}[{p[1]}]"),
            st.tuples(inner, inner, inner).map(lambda p: f"({p[0]} ? {p[1]} : {p[2]})"),
            inner.map(lambda e: f"dit_block(h, c, heads = {e})"),
            inner.map(lambda e: f"conv(x, out = {e})"))
    return st.recursive(LEAVES, extend, max_leaves=12)


EXPR = _expressions()
STATEMENT = st.one_of(
    EXPR.map(lambda e: f"s = {e}"), EXPR.map(lambda e: f"h = {e}"),
    st.tuples(EXPR, EXPR).map(lambda p: f"repeat {p[0]} {{ s = {p[1]} }}"),
    st.tuples(EXPR, EXPR).map(lambda p: f"for v in {p[0]} {{ s = {p[1]} }}"),
    st.tuples(EXPR, EXPR).map(lambda p: f"if {p[0]} {{ s = {p[1]} }} else {{ s = 0 }}"),
    EXPR.map(lambda e: f"s = 1 -> {e}" if re.fullmatch(r"[a-z_]+", e) else f"s = [{e}]"))

MODEL = """diffspec 1
model Net(depth = 2, width = 32) {{
  input x: sample[1, 8, 8]
  input t: timestep[1000]
  h = patch_embed(x, patch = 2, width = width)
  c = timestep_embed(t, width = width)
  s = 0
{body}
  blocks: repeat depth {{
    h = dit_block(h, c, heads = 4)
  }}
  return unpatchify(final_layer(h, c, patch = 2, out = 1), patch = 2, channels = 1)
}}
"""

BLOW_UPS = ["10 ** 9", "0", "-1", "10 ** 10 ** 10", "1e308", "99999999999999999999999", "0.0", "1e-300", "100000"]
SNIPPETS = ["{", "}", "(", ")", "[", "]", ",", "->", "@route(2, 2)", "@sync(1 -> 99)", "@stage(10 ** 9)",
            "repeat 10 {", "\x00", "\ufeff", "\u00e9", "\\", '"', "#", "import \"../x.diffspec\"\n"]
TOKEN = re.compile(r"\w+|[^\w\s]")


def mutate(text: str, ops) -> bytes:
    return mutate_text(text, ops, token=TOKEN, number=r"\b\d+(\.\d+)?\b", blow_ups=BLOW_UPS, snippets=SNIPPETS)


MUTATIONS = st.lists(st.tuples(st.sampled_from(["delete", "duplicate", "blow_up", "insert", "flip"]),
                               st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=4)
SHIPPED = st.sampled_from(SPECS).map(lambda p: p.read_text())


# ---- the quick profile (normal suite) and the long one (`-m fuzz`) ----------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@QUICK
@given(text=grammar_specs())
def test_grammar_generated_specs(folder, text):
    check_exits_cleanly(text.encode(), folder)


@QUICK
@given(body=st.lists(STATEMENT, min_size=1, max_size=4))
def test_random_expressions_in_a_model(folder, body):
    check_exits_cleanly(MODEL.format(body="\n".join("  " + s for s in body)).encode(), folder)


@QUICK
@given(text=SHIPPED, ops=MUTATIONS)
def test_mutated_shipped_specs(folder, text, ops):
    check_exits_cleanly(mutate(text, ops), folder)


@pytest.mark.fuzz
@LONG
@given(text=grammar_specs())
def test_fuzz_grammar_generated_specs(folder, text):
    check_exits_cleanly(text.encode(), folder)


@pytest.mark.fuzz
@LONG
@given(body=st.lists(STATEMENT, min_size=1, max_size=8))
def test_fuzz_random_expressions_in_a_model(folder, body):
    check_exits_cleanly(MODEL.format(body="\n".join("  " + s for s in body)).encode(), folder)


@pytest.mark.fuzz
@LONG
@given(text=SHIPPED, ops=MUTATIONS)
def test_fuzz_mutated_shipped_specs(folder, text, ops):
    check_exits_cleanly(mutate(text, ops), folder)


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (3 * 1024 ** 3, 3 * 1024 ** 3))


@pytest.mark.parametrize("case", ["depth = 10 ** 9", "repeat 10 ** 5 { repeat 10 ** 5 { s = 1 } }",
                                  's = "a" * 10 ** 10', "s = " + "[" * 3000 + "]" * 3000],
                         ids=["repeat-count", "nested-loops", "string", "deep-list"])
def test_hostile_specs_in_real_processes_under_a_memory_limit(tmp_path, case):
    """A subprocess with 3 GiB of address space: the error comes from diffc's limits, not the kernel."""
    spec = tmp_path / "hostile.diffspec"
    body = f"  {case}" if not case.startswith("depth") else ""
    text = MODEL.format(body=body)
    spec.write_text(text.replace("depth = 2", case) if case.startswith("depth") else text)
    proc = subprocess.run([sys.executable, "-m", "diffc", "check", str(spec)], capture_output=True, text=True,
                          timeout=HANG_GUARD_S, preexec_fn=_limit_memory, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "hostile.diffspec:" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
