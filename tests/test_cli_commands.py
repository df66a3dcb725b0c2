"""The command group itself: unknown commands suggest the closest one and exit 2."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import run_cli  # noqa: E402


def test_misspelled_command_suggests_the_closest_and_exits_2():
    code, _, err = run_cli(["trian"])
    assert code == 2
    assert "no such command 'trian'" in err and "did you mean 'train'?" in err
    assert "Traceback" not in err


def test_unknown_command_without_a_close_match_lists_the_commands():
    code, _, err = run_cli(["zzzz"])
    assert code == 2 and "did you mean" not in err and "commands: " in err and "train" in err
