"""The default run (`diffc train specs/dit_dtr.diffspec`, built-in recipe and data) for a few steps, end to end."""
import json
from pathlib import Path

import pytest

from diffc.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "dit_dtr.diffspec"


def _compiler_ready():
    try:
        from diffc.compiler import build_model  # noqa: F401
    except ImportError:
        return False
    return SPEC.is_file()


needs_compiler = pytest.mark.skipif(not _compiler_ready(), reason="compiler or specs/dit_dtr.diffspec not available")


@needs_compiler
def test_default_run_for_a_few_steps(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(SPEC), "--steps", "3", "--no-progress"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1 and run_dirs[0].name.startswith("dit_dtr-")
    run = run_dirs[0]
    assert [p.name for p in run.glob("training-state-*.pt")] == ["training-state-000000000192.pt"]
    assert (run / "samples" / "samples-000000000192.png").is_file() and (run / "loss.png").is_file()
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert records[-1]["nimg"] == 192 and records[-1]["loss"] > 0


@needs_compiler
def test_dry_run_prints_recipe_summary_and_memory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(SPEC), "--dry-run"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for text in ("optimizer:", "weight_decay:", "duration: 128Ki", "parameters:", "memory/proc:"):
        assert text in out
    assert not (tmp_path / "runs").exists()
