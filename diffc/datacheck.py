"""Checking data items before work: every bad item named with its path, the list bounded.

Training data (`diffc train`, its dry run) and metric references (`diffc eval --ref`) both report through here.
"""
from __future__ import annotations

from pathlib import Path

from diffc.errors import Diagnostic, UserError

MAX_LISTED = 20           # bad items printed; the rest are counted


def check_items(bad: list[tuple[str, str]], what: str) -> None:
    """Raise one UserError for the (location, problem) pairs in `bad`: the first MAX_LISTED, then a count."""
    if not bad:
        return
    diags = [Diagnostic(f"{what}: {len(bad)} bad item{'s' * (len(bad) > 1)}; nothing was trained or scored",
                        help="fix or remove the items listed below, then run again")]
    diags += [Diagnostic(problem, file=str(where)) for where, problem in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        diags.append(Diagnostic(f"... and {len(bad) - MAX_LISTED} more bad items ({len(bad)} in all)"))
    raise UserError(diags)


def image_problem(path: Path) -> str | None:
    """None for a readable image file, else what is wrong with it (a folder, not an image, damaged)."""
    if path.is_dir():
        return "a folder where an image file is expected"
    if not path.is_file():
        return "not a regular file"
    from PIL import Image
    try:
        with Image.open(path) as image:
            image.verify()                      # reads the whole file: chunk CRCs, truncation
    except Exception as exc:                    # PIL raises many kinds (UnidentifiedImageError, SyntaxError, OSError)
        return f"not a readable image ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
    return None
