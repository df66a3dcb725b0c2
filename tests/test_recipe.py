"""Recipes: the built-in default, located errors with suggestions, durations, and the CLI's exit code 2."""
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffc.cli import cli, main
from diffc.errors import UserError
from diffc.training.recipe import DEFAULT_RECIPE_YAML, Duration
from diffc.training.recipe_loader import load_recipe, parse_recipe, recipe_from_dict, recipe_to_dict

ROOT = Path(__file__).resolve().parents[1]


def errors(text):
    with pytest.raises(UserError) as err:
        parse_recipe(text, "r.yaml")
    return err.value.diagnostics


def test_default_recipe_is_the_shipped_file():
    assert (ROOT / "recipes" / "dit_digits.yaml").read_text() == DEFAULT_RECIPE_YAML
    recipe, _, name = load_recipe(None)
    assert name == "<default recipe>" and recipe.data.name == "digits" and recipe.batch == 64
    assert recipe.duration.images(recipe.batch) == 128 * 1024
    assert recipe_from_dict(recipe_to_dict(recipe)) == recipe


def test_every_shipped_recipe_loads():
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        load_recipe(path)


def test_unknown_key_is_located_with_a_suggestion():
    diag, = errors("batch: 32\noptimizer:\n  lrr: 1.0e-3\n")
    assert (diag.file, diag.line, diag.col) == ("r.yaml", 3, 3)
    assert diag.message == "unknown key 'lrr' in 'optimizer'" and diag.help == "did you mean 'lr'?"
    assert "3 |   lrr: 1.0e-3" in diag.render() and "^^^" in diag.render()


def test_bad_values_and_kinds_are_located():
    diags = errors("objective: {kind: ddpm_epz}\nbatch: many\nema: {decay: 1.5}\nbatchh: 2\nseed: 1\nseed: 2\n")
    by_line = {d.line: d for d in diags}
    assert by_line[1].col == 19 and by_line[1].help == "did you mean 'ddpm_eps'?"
    assert "invalid value for 'batch'" in by_line[2].message and by_line[2].col == 8
    assert "must be a probability (in [0, 1]), got 1.5" in by_line[3].message
    assert by_line[4].help == "did you mean 'batch'?"
    assert by_line[6].message == "duplicate key 'seed'"


def test_yaml_syntax_error_is_located():
    diag, = errors("data: {name: digits\nbatch: 3\n")
    assert diag.line is not None and diag.message.startswith("invalid YAML")


@pytest.mark.parametrize("text,images", [("200Ki", 204800), ("50000", 50000), ("1M", 10 ** 6), ("10k steps", 640000),
                                         ("500 steps", 32000), (1234, 1234)])
def test_durations(text, images):
    assert Duration.parse(text).images(64) == images


def test_duration_errors():
    for bad in ("12q", "1.5", True):
        with pytest.raises(ValueError):
            Duration.parse(bad)
    assert "cannot read '3 weeks'" in errors("duration: 3 weeks\n")[0].message


def test_scientific_floats_without_dot_are_accepted():
    assert parse_recipe("optimizer: {lr: 1e-3}\n").optimizer.lr == 1e-3


def test_cli_recipe_error_exits_2_without_traceback(tmp_path, capsys):
    spec = tmp_path / "m.diffspec"
    spec.write_text("diffspec 1\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer: {lrr: 1}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(spec), "--recipe", str(bad)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{bad}:1:13: error: unknown key 'lrr' in 'optimizer'" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(tmp_path / "missing.diffspec")])
    assert exit_info.value.code == 2


def test_cli_help_shows_examples():
    out = CliRunner().invoke(cli, ["train", "--help"]).output
    assert "diffc train specs/dit_dtr.diffspec" in out and "--dry-run" in out and "--init-from" in out
    assert "diffc ema runs/" in CliRunner().invoke(cli, ["ema", "--help"]).output
