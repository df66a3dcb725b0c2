"""Recipes validated by meaning (issue 10 item 4): each value outside its meaning is a located error, YAML bombs are
refused quickly, and what the run would read late (EMA profile, data path, schedule floor) is checked at load."""
import time

import pytest

from diffc.cli import main
from diffc.errors import UserError
from diffc.training.recipe import Recipe
from diffc.training.recipe_loader import parse_recipe, recipe_to_dict
from cli_helpers import ROOT


def diagnostics(text, base_dir=None):
    with pytest.raises(UserError) as err:
        parse_recipe(text, "r.yaml", base_dir)
    return err.value.diagnostics


# (YAML, message fragment, line, col): the cases of the issue, then one per kind of meaning.
CASES = [
    ("optimizer: {lr: .inf}\n", "'lr' must be finite, got inf", 1, 17),
    ("optimizer: {lr: .nan}\n", "'lr' must be finite, got nan", 1, 17),
    ("optimizer:\n  grad_clip: -1\n", "'grad_clip' must be positive (> 0), got -1.0", 2, 14),
    ("weighting: {kind: min_snr, gamma: -5}\n", "'gamma' must be positive (> 0), got -5.0", 1, 35),
    ("conditioning: {label_dropout: 2.0}\n", "'label_dropout' must be a drop rate", 1, 31),
    ("duration: -5\n", "'duration' must be positive (> 0), got -5", 1, 11),
    ("optimizer: {betas: [1.5, 0.9]}\n", "'betas' must be an Adam decay rate (in [0, 1)), got (1.5, 0.9)", 1, 20),
    ("optimizer: {eps: -1}\n", "'eps' must be positive (> 0), got -1.0", 1, 18),
    ("batch_per_gpu: 0\n", "'batch_per_gpu' must be at least 1 (>= 1), got 0", 1, 16),
    ("seed: 1000000000000000000000000000000\n", "'seed' must be in [0, 4294967295]", 1, 7),
    ("sample: {seed: -3}\n", "'seed' must be in [0, 4294967295], got -3", 1, 16),
    ("optimizer: {lr: -1.0e-3}\n", "'lr' must be non-negative (>= 0)", 1, 17),
    ("data: {hflip: 1.5}\n", "'hflip' must be a probability (in [0, 1])", 1, 15),
    ("ema: {kind: power, sigma_rel: [0.05, 0.5]}\n", "'sigma_rel' must be in (0, 0.2886)", 1, 31),
    ("noise: {kind: stage_aware, stage_weights: [1, -1]}\n", "'stage_weights' must be non-negative", 1, 43),
    ("checkpoint: {every: 0}\n", "'every' must be positive (> 0), got 0", 1, 21),
    ("sample: {n: 1000000}\n", "'n' must be a preview size (in [1, 4096])", 1, 13),
    ("sample: {guidance: .nan}\n", "'guidance' must be finite", 1, 20),
    ("lr: {warmup: -3}\n", "'warmup' must be non-negative", 1, 14),
    ("batch: 100000000000000000000\n", "'batch' must be a 64-bit integer", 1, 8),
    ("objective: {sigma_data: 0}\n", "'sigma_data' must be positive", 1, 25),
    ("duration: 99999999999999999999999999Gi\n", "'duration' must be a 64-bit integer", 1, 11),
]


@pytest.mark.parametrize("text,fragment,line,col", CASES)
def test_values_outside_their_meaning_are_located(text, fragment, line, col):
    diag, = diagnostics(text)
    assert fragment in diag.message, diag.message
    assert (diag.file, diag.line, diag.col) == ("r.yaml", line, col)


def test_every_numeric_field_has_a_meaning():
    """Every number, list of numbers and duration in the schema carries a Bound (a new field must say its meaning)."""
    import attrs

    from diffc.training.recipe import Duration
    section = lambda t: attrs.has(t) and t is not Duration  # noqa: E731
    fields = [(f"{s.name}.{f.name}", f) for s in attrs.fields(Recipe) if section(s.type) for f in attrs.fields(s.type)]
    fields += [(f.name, f) for f in attrs.fields(Recipe) if not section(f.type)]
    numeric = [(name, f) for name, f in fields if any(t in str(f.type) for t in ("int", "float", "Duration"))]
    assert len(numeric) >= 41 and [name for name, f in numeric if "bound" not in f.metadata] == []


def test_all_problems_reported_together_in_file_order():
    diags = diagnostics("seed: -1\noptimizer: {lr: .inf}\nsample: {ema: ema-0.3}\n")
    assert [d.line for d in diags] == [1, 2, 3]


def test_sample_ema_typo_is_caught_at_load_not_after_training():
    diag, = diagnostics("ema: {kind: power, sigma_rel: [0.05, 0.10]}\nsample: {ema: ema-0.01}\n")
    assert (diag.line, diag.col) == (2, 15)
    assert "sample.ema 'ema-0.01' is not an EMA profile this run tracks" in diag.message
    assert diag.help.startswith("did you mean 'ema-0.100'?")
    diag, = diagnostics("ema: {kind: none}\nsample: {ema: ema}\n")
    assert "tracked: none (ema.kind is none)" in diag.help
    assert parse_recipe("ema: {kind: classic}\nsample: {ema: ema}\n").sample.ema == "ema"


def test_cross_key_meanings():
    diag, = diagnostics("optimizer: {lr: 1.0e-3}\nlr: {kind: cosine, min_lr: 0.1}\n")
    assert "lr.min_lr 0.1 is above optimizer.lr 0.001" in diag.message and diag.line == 2
    diag, = diagnostics("noise: {kind: stage_aware, stage_weights: [0, 0]}\n")
    assert "at least one positive weight" in diag.message


def test_data_paths_are_checked_at_load(tmp_path):
    (tmp_path / "arrays.npz").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    diag, = diagnostics("data: {name: folder, path: missing}\n", tmp_path)
    assert "data path not found" in diag.message and (diag.line, diag.col) == (1, 28)
    diag, = diagnostics("data: {name: folder, path: arrays.npz}\n", tmp_path)
    assert "needs a folder of class sub-folders" in diag.message
    diag, = diagnostics("data: {name: npz, path: folder}\n", tmp_path)
    assert "needs an .npz/.npy file" in diag.message
    diag, = diagnostics("data:\n  name: latents\n", tmp_path)
    assert "data 'latents' needs a path" in diag.message and diag.line == 2


BOMB = "".join(f"{a}: &{a} [{', '.join([f'*{p}'] * 9 if p else ['lol'] * 9)}]\n"
               for p, a in zip([None] + list("abcdefgh"), "abcdefghi"))


def test_alias_bomb_recursion_and_deep_nesting_are_refused_quickly():
    started = time.perf_counter()
    diag, = diagnostics(BOMB)
    assert "expands to more than 20000 values" in diag.message and diag.line == 5
    diag, = diagnostics("a: &a [*a]\n")
    assert diag.message == "recursive alias '*a'"
    diag, = diagnostics("seed: " + "[" * 500 + "]" * 500 + "\n")
    assert "nested deeper than 64 levels" in diag.message
    diag, = diagnostics("seed: " + "9" * 5000 + "\n")
    assert diag.message.startswith("cannot read this value") and (diag.line, diag.col) == (1, 7)
    assert time.perf_counter() - started < 30            # generous bound: today the bomb never finishes


def test_shared_anchors_within_budget_still_work():
    recipe = parse_recipe("sample: {every: &e 8Ki}\ncheckpoint: {every: *e}\n")
    assert recipe.checkpoint.every == recipe.sample.every


def test_cli_dry_run_refuses_bad_recipe_bytes_and_flags(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"seed: 1\n# caf\xe9\n")
    spec = ROOT / "specs" / "dit_dtr.diffspec"
    for args, expected in [(["--recipe", bomb], f"{bomb}:5:12: error: the recipe expands"),
                           (["--recipe", latin], f"{latin}:2:6: error: this recipe is not UTF-8 text: byte 0xe9 at "
                                                 "byte offset 13"),
                           (["--steps", "-5"], "--steps must be positive, got -5 steps"),
                           (["--duration", "0"], "--duration must be positive, got 0")]:
        with pytest.raises(SystemExit) as exit_info:
            main(["train", str(spec), *map(str, args), "--dry-run"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and expected in err and "Traceback" not in err


def test_resolved_recipe_round_trips_with_bounds():
    recipe = parse_recipe("optimizer: {betas: [0.9, 0.95]}\nconditioning: {label_dropout: 0.1}\n")
    assert recipe_to_dict(recipe)["optimizer"]["betas"] == (0.9, 0.95)
