"""Output formats of `diffc graph`: DOT, Mermaid and HTML in pure Python; SVG and PNG through Graphviz."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from diffc.errors import UserError
from diffc.graph.dot import render_dot
from diffc.graph.html import render_html
from diffc.graph.mermaid import render_mermaid
from diffc.graph.view import GraphView

EXTENSIONS = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid", ".html": "html",
              ".htm": "html", ".svg": "svg", ".png": "png"}
FORMATS = ("dot", "mermaid", "html", "svg", "png")
GRAPHVIZ_HELP = "install Graphviz (`apt-get install graphviz`, `brew install graphviz`) or write .dot, .mmd or .html"
GRAPHVIZ_TIMEOUT_S = 120


def format_for(path: str | None, fmt: str | None) -> str:
    """The format named by --format, else by the output file's extension (DOT when writing to stdout)."""
    if fmt is not None:
        return fmt
    if path is None:
        return "dot"
    found = EXTENSIONS.get(Path(path).suffix.lower())
    if found is None:
        raise UserError(f"cannot tell the graph format from '{path}'",
                        help=f"use one of {', '.join(EXTENSIONS)} or pass --format {'|'.join(FORMATS)}")
    return found


def render(view: GraphView, fmt: str) -> bytes:
    dot_source = render_dot(view)
    if fmt == "dot":
        return dot_source.encode()
    if fmt == "mermaid":
        return render_mermaid(view).encode()
    if fmt in ("svg", "png"):
        return run_graphviz(dot_source, fmt)
    if fmt == "html":
        svg = run_graphviz(dot_source, "svg").decode() if shutil.which("dot") else None
        return render_html(view, dot_source, render_mermaid(view), svg).encode()
    raise UserError(f"unknown graph format '{fmt}'", help=f"formats: {', '.join(FORMATS)}")


def run_graphviz(dot_source: str, fmt: str) -> bytes:
    exe = shutil.which("dot")
    if exe is None:
        raise UserError(f"{fmt.upper()} output needs Graphviz's `dot`, which is not on PATH", help=GRAPHVIZ_HELP)
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=dot_source.encode(), capture_output=True,
                              timeout=GRAPHVIZ_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise UserError(f"Graphviz took longer than {GRAPHVIZ_TIMEOUT_S} s", help="try without --expand, or write "
                        ".dot and lay it out yourself") from None
    if done.returncode != 0:
        raise UserError(f"Graphviz failed (exit {done.returncode}): {done.stderr.decode(errors='replace').strip()}",
                        help="write .dot to inspect the source it was given")
    return done.stdout
