"""Helpers shared by tests that drive the CLI."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args, cwd=ROOT, timeout=600):
    """Run `python -m diffc ARGS` in a subprocess: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "diffc", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def main_exits_cleanly(args, data: bytes, hang_s: int, what: str) -> tuple[int, str]:
    """Run diffc's CLI entry in-process on a fuzzed input `data`: (exit code, output), asserting exit 0 or 2,
    no traceback, an error line on 2, and no hang past `hang_s` (SIGALRM)."""
    import contextlib
    import io
    import signal

    import pytest

    from diffc.cli import main

    out, err = io.StringIO(), io.StringIO()

    def hung(signum, frame):
        raise TimeoutError(f"diffc {args[0]} did not finish in {hang_s} s on:\n{data[:2000]!r}")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(hang_s)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
            main(list(args))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    text = out.getvalue() + err.getvalue()
    code = exit_.value.code
    assert code in (0, 2), f"exit {code}:\n{text}\n--- {what} ---\n{data[:2000]!r}"
    assert "Traceback" not in text, text
    if code == 2:
        assert "error" in text, text
    return code, text
