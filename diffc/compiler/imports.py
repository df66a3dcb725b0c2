"""Where a spec's `import "..."` may point, and reading the files it names.

From the disk, an import resolves relative to the importing file and must stay inside the spec's roots: the
folder of the spec named on the command line, plus diffc's shipped `specs/` library (a path that is not found
next to the importing file is looked up there, so `import "lib/edm2.diffspec"` works from any folder).
Absolute paths, `..` that leaves the roots, symbolic links out of them and files that are not `.diffspec`
are located errors, so an error never shows a line of a file that is not a spec. Paths are normalised, and
files are identified by their real path, before the cycle check.

From text alone (a spec embedded in a checkpoint) imports are served only from the files bundled with it;
the disk is never read.
"""
from __future__ import annotations

import os
from pathlib import Path

from diffc.dsl import ast as A
from diffc.errors import Diagnostic, UserError, attach_source
from diffc.text import read_text

SHIPPED_SPECS = Path(__file__).resolve().parents[2] / "specs"
MAX_IMPORT_DEPTH = 32
MAX_IMPORTED_FILES = 256


def spec_roots(folder: str | Path) -> list[str]:
    """The folders imports may read: `folder` (the named spec's) and the shipped library, both spellings of
    each (as written and with symbolic links resolved)."""
    folders = [Path(folder)] + ([SHIPPED_SPECS] if SHIPPED_SPECS.is_dir() else [])
    roots = []
    for folder in folders:
        for spelling in (os.path.abspath(folder), os.path.realpath(folder)):
            if spelling not in roots:
                roots.append(spelling)
    return roots


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


class ImportLoader:
    """Loads an entry file and everything it imports into `files` (display path -> A.File).

    `roots` None means imports come only from `bundle` ({path: source}, from a checkpoint)."""

    def __init__(self, parse_file, roots: list[str] | None, bundle: dict[str, str]):
        self.parse_file = parse_file                 # (text, filename) -> A.File
        self.roots = roots
        self.bundle = {os.path.normpath(p): text for p, text in bundle.items()}
        self.files: dict[str, A.File] = {}
        self.seen: set[str] = set()                  # identities (real paths) of loaded files

    def load(self, text: str, filename: str, stack: tuple = ()) -> None:
        tree = self.parse_file(text, filename)
        own = self._identity(filename)
        self.files[filename] = tree
        self.seen.add(own)
        for item in tree.items:
            if not isinstance(item, A.Import):
                continue
            target, identity = self._locate(item, filename, text)
            if identity in stack + (own,):
                names = [Path(p).name for p in stack + (own, identity)]
                raise self._error(f"import cycle: {' -> '.join(names)}", item, filename, text,
                                  "move the shared blocks into a third file that both import")
            if identity in self.seen:
                continue
            if len(stack) + 1 >= MAX_IMPORT_DEPTH or len(self.files) >= MAX_IMPORTED_FILES:
                raise self._error(f"imports nest too deep or too wide (at most {MAX_IMPORT_DEPTH} levels and "
                                  f"{MAX_IMPORTED_FILES} files)", item, filename, text,
                                  "import the shared library once from the entry spec")
            source = self.bundle[target] if self.roots is None else read_text(target, "spec")
            self.load(source, target, stack + (own,))

    def _identity(self, path: str) -> str:
        return os.path.normpath(path) if self.roots is None else os.path.realpath(path)

    def _locate(self, item: A.Import, filename: str, text: str) -> tuple[str, str]:
        """(display path, identity) of an import, or a located error saying why it may not be read."""
        rel = item.path
        if os.path.isabs(rel) or rel.startswith("~"):
            raise self._error(f"import paths are relative to the importing spec; '{rel}' is absolute", item,
                              filename, text, "copy the file next to your spec and import it by name")
        target = os.path.normpath(os.path.join(os.path.dirname(filename), rel))
        if self.roots is not None and not any(_inside(os.path.abspath(target), r) for r in self.roots):
            raise self._error(f"import '{rel}' leaves the spec's folder", item, filename, text,
                              f"imports resolve inside {self._roots_text()}; copy the file there")
        if not rel.endswith(".diffspec"):
            raise self._error(f"an import names a .diffspec file; '{rel}' is not one", item, filename, text,
                              "imports read other specs only")
        if self.roots is None:
            if target not in self.bundle:      # it was found in the shipped library when bundled
                suffix = os.sep + os.path.normpath(rel)
                target = next((p for p in self.bundle if p.endswith(suffix)), target)
            if target not in self.bundle:
                raise self._error(f"'{rel}' was not stored with this spec, and a spec read from a checkpoint "
                                  "may only import the files stored with it", item, filename, text,
                                  "rebuild from the spec file instead, e.g. `diffc compile SPEC`")
            return target, target
        library = os.path.normpath(SHIPPED_SPECS / rel)
        if not os.path.exists(target) and not os.path.normpath(rel).startswith("..") and os.path.isfile(library):
            target = library
        if os.path.isdir(target):
            raise self._error(f"imported path is a folder: {target}", item, filename, text,
                              "name a .diffspec file")
        if not os.path.isfile(target):
            raise self._error(f"imported file not found: {target}", item, filename, text,
                              "import paths are relative to the importing spec (or to diffc's specs/ library)")
        real = os.path.realpath(target)
        if not any(_inside(real, root) for root in self.roots):
            raise self._error(f"'{rel}' is a symbolic link to a file outside the spec's folder", item, filename,
                              text, f"imports resolve inside {self._roots_text()}; copy the file there")
        return target, real

    def _roots_text(self) -> str:
        shown = [self.roots[0]] + ([str(SHIPPED_SPECS)] if str(SHIPPED_SPECS) in self.roots else [])
        return " and ".join(shown)

    @staticmethod
    def _error(message: str, item: A.Import, filename: str, text: str, help: str) -> UserError:
        d = Diagnostic(message, filename, item.loc.line, item.loc.col, item.loc.single_line_end(), help=help)
        attach_source([d], {filename: text})
        return UserError(d)
