"""Reading user text files deliberately: UTF-8 only (a leading BOM is accepted), size-bounded, and a bad byte
is a located error naming its byte offset, never a UnicodeDecodeError.

Used for specs, imported specs and recipes, so every file a user writes is decoded by the same rules.
"""
from __future__ import annotations

import codecs
from pathlib import Path

from diffc.errors import Diagnostic, UserError

MAX_TEXT_BYTES = 4 * 1024 * 1024     # a spec or recipe is kilobytes; anything this big is not one


def decode_text(data: bytes, filename: str, what: str = "file") -> str:
    """`data` as text: UTF-8 with an optional BOM, newlines made `\\n` (as Python's text mode does)."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
        offset_base = len(codecs.BOM_UTF8)
    else:
        offset_base = 0
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        good = data[:err.start].decode("utf-8")
        line = good.count("\n") + 1
        col = len(good) - (good.rfind("\n") + 1) + 1
        offset = offset_base + err.start
        raise UserError(Diagnostic(
            f"this {what} is not UTF-8 text: byte 0x{data[err.start]:02x} at byte offset {offset} "
            f"({err.reason})", filename, line, col, col + 1,
            help="save the file as UTF-8 (most editors: 'Save with encoding'); "
                 "if this is not a text file, pass the right path")) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: str | Path, what: str = "file", limit: int = MAX_TEXT_BYTES) -> str:
    """Read and decode a user's text file, refusing anything over `limit` bytes before reading it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limit:
            raise UserError(f"{path}: this {what} is {size:,} bytes; a {what} is at most {limit:,}",
                            help="pass the path of the text file itself")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}", help="check the path and its permissions") from None
    if len(data) > limit:      # grew while we looked, or a special file reporting size 0
        raise UserError(f"{path}: this {what} is over {limit:,} bytes", help="pass the path of the text file itself")
    return decode_text(data, str(path), what)
