"""Fuzzing recipes with hypothesis (issue 10 item 8): recipes generated from the recipe schema (every section and
field, with values of every kind and edge: NaN, infinities, huge integers, negative durations, typos, wrong types)
and mutations of the shipped recipes/*.yaml (deleted, duplicated and blown-up tokens, alias bombs, byte flips, a BOM,
bytes that are not UTF-8). Every `diffc train SPEC --recipe R --dry-run` must end in exit 0 or 2 with no traceback,
within a hang guard.

The spec of each dry run is compiled once and reused (the spec never changes; the recipe is what is fuzzed).
The normal suite runs a small, derandomized profile; the long run is marked `fuzz`, like tests/test_fuzz_specs.py:
    python -m pytest -m fuzz tests/test_fuzz_recipes.py       (DIFFC_FUZZ_EXAMPLES=N examples per test)
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import attrs
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cli_helpers import main_exits_cleanly
from text_mutations import mutate as mutate_text
from diffc.training.recipe import Duration, Recipe

ROOT = Path(__file__).resolve().parents[1]
SPEC_OF = {"dit_digits.yaml": "dit_dtr", "study_ddpm.yaml": "dit_dtr", "edm2_digits.yaml": "edm2_tiny",
           "study_edm2.yaml": "edm2_tiny", "sit_digits.yaml": "sit_layersync"}
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
QUICK = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LONG = settings(max_examples=int(os.environ.get("DIFFC_FUZZ_EXAMPLES", "1500")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HANG_GUARD_S = 120          # far above a dry run (seconds); only a hang reaches it


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A scratch folder, and the spec compiled once per (spec, model, device) for the whole module."""
    import diffc.compiler
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(diffc.compiler, "build_model", functools.lru_cache(maxsize=8)(diffc.compiler.build_model))
        yield tmp_path_factory.mktemp("fuzz-recipes")


def dry_run_exits_cleanly(data: bytes, folder: Path, spec: str = "dit_dtr", record: bool = True) -> int:
    """`diffc train SPEC --recipe R --dry-run` in-process through the CLI entry: exit 0 or 2, no traceback."""
    recipe = folder / "fuzz.yaml"
    recipe.write_bytes(data)
    code, text = main_exits_cleanly(["train", str(ROOT / "specs" / f"{spec}.diffspec"), "--recipe", str(recipe),
                                     "--dry-run", "--run-dir", str(folder / "run")], data, HANG_GUARD_S, "recipe")
    if record:                  # hypothesis statistics: how the generated recipes ended
        event("exit 0" if code == 0 else
              "exit 2: " + re.sub(r"[\d.]+|'[^']*'", "_", text.split("error: ", 1)[-1].splitlines()[0])[:60])
    return code


# ---- values by kind, edges included ---------------------------------------------------------------
EDGE_FLOATS = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 1e-12, 1e308, -1e308, float("nan"), float("inf"),
                               float("-inf"), 0.2886, 2.0])
FLOATS = st.one_of(EDGE_FLOATS, st.floats(allow_nan=True, allow_infinity=True))
INTS = st.one_of(st.sampled_from([0, 1, -1, 2 ** 31, 2 ** 32, 2 ** 63, -2 ** 63, 10 ** 30, 64, 16]),
                 st.integers(-10 ** 6, 10 ** 6))
DURATIONS = st.one_of(INTS, st.sampled_from(["16Ki", "2Mi", "1M", "500 steps", "10k steps", "0", "-5", "1.5",
                                             "1e400", "9" * 40 + "Gi", "3 weeks", "", "Ki", "0.5Ki"]))
WRONG_KIND = st.one_of(st.booleans(), st.none(), st.text(max_size=8), st.lists(st.integers(0, 3), max_size=3),
                       st.dictionaries(st.text(max_size=4), st.integers(0, 3), max_size=2))


def value_for(field: attrs.Attribute):
    """A strategy of YAML values for a recipe field: mostly of its type (edges included), sometimes not."""
    text = str(field.type)
    if "choices" in field.metadata:
        names = list(field.metadata["choices"])
        typical = st.one_of(st.sampled_from(names), st.sampled_from(names).map(lambda n: n[:-1] + "x"))
    elif "Duration" in text:
        typical = DURATIONS
    elif "list" in text or "tuple" in text:
        typical = st.lists(FLOATS, max_size=4)
    elif "float" in text:
        typical = FLOATS
    elif "int" in text:
        typical = INTS
    elif "bool" in text:
        typical = st.booleans()
    else:
        typical = st.one_of(st.none(), st.sampled_from(["auto", "ema-0.050", "ema-0.100", "ema", "phema-0.1",
                                                         "missing.npz", "/", "."]))
    return st.one_of(typical, typical, typical, WRONG_KIND)


def section(cls):
    fields = {f.name: value_for(f) for f in attrs.fields(cls)}
    return st.fixed_dictionaries({}, optional=fields)


SCHEMA = st.fixed_dictionaries({}, optional={
    f.name: (section(f.type) if attrs.has(f.type) and f.type is not Duration else value_for(f))
    for f in attrs.fields(Recipe)})
EXTRA_KEYS = st.dictionaries(st.sampled_from(["batchh", "optimiser", "lr_", "seed ", "data.path"]), st.integers(0, 3),
                             max_size=1)


def schema_recipe(data: dict, extra: dict) -> bytes:
    return yaml.safe_dump({**data, **extra}, allow_unicode=True).encode()


# ---- mutations of the shipped recipes -------------------------------------------------------------
BLOW_UPS = ["-5", "0", ".nan", ".inf", "-.inf", "1e400", "10**30", "99999999999999999999999999", "-1", "2.0",
            "9" * 5000]
SNIPPETS = ["{", "}", "[", "]", ":", ",", "&a", "*a", "*b", "- ", "!!python/object:os.system", "\t", "\x00",
            "\ufeff", "\u00e9", "'", '"', "#", "<<: *a", "? ", "|", ">"]
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh"))
TOKEN = re.compile(r"[\w.\-]+|[^\w\s]")


def mutate(text: str, ops) -> bytes:
    return mutate_text(text, ops, token=TOKEN, number=r"(?<![\w.])\d+(\.\d+)?(e-?\d+)?", blow_ups=BLOW_UPS,
                       snippets=SNIPPETS, prefix=BOMB)


MUTATIONS = st.lists(st.tuples(st.sampled_from(["delete", "duplicate", "blow_up", "insert", "line", "flip", "bomb"]),
                               st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=4)
SHIPPED = st.sampled_from(RECIPES)


# ---- the quick profile (normal suite) and the long one (`-m fuzz`) ----------------------------------------
def test_every_shipped_recipe_dry_runs_with_its_spec(folder):
    assert {p.name for p in RECIPES} <= set(SPEC_OF)
    for path in RECIPES:
        assert dry_run_exits_cleanly(path.read_bytes(), folder, SPEC_OF[path.name], record=False) == 0, path


@QUICK
@given(data=SCHEMA, extra=EXTRA_KEYS, spec=st.sampled_from(["dit_dtr", "edm2_tiny"]))
def test_schema_generated_recipes(folder, data, extra, spec):
    dry_run_exits_cleanly(schema_recipe(data, extra), folder, spec)


@QUICK
@given(path=SHIPPED, ops=MUTATIONS)
def test_mutated_shipped_recipes(folder, path, ops):
    dry_run_exits_cleanly(mutate(path.read_text(), ops), folder, SPEC_OF[path.name])


@pytest.mark.fuzz
@LONG
@given(data=SCHEMA, extra=EXTRA_KEYS, spec=st.sampled_from(["dit_dtr", "edm2_tiny"]))
def test_fuzz_schema_generated_recipes(folder, data, extra, spec):
    dry_run_exits_cleanly(schema_recipe(data, extra), folder, spec)


@pytest.mark.fuzz
@LONG
@given(path=SHIPPED, ops=MUTATIONS)
def test_fuzz_mutated_shipped_recipes(folder, path, ops):
    dry_run_exits_cleanly(mutate(path.read_text(), ops), folder, SPEC_OF[path.name])
