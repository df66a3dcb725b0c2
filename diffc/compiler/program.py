"""Loading a spec and its imports into a Program: every file parsed, every definition by name."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import attrs

from diffc.compiler.imports import ImportLoader, spec_roots
from diffc.dsl import ast as A
from diffc.dsl.parser import parse
from diffc.errors import Diagnostic, UserError, attach_source, did_you_mean, note
from diffc.text import read_text

SUPPORTED_VERSIONS = (1,)
BUNDLE_HEADER = "# diffc bundle 1"
BUNDLE_FILE = "# ---- file: "


@attrs.define
class Program:
    entry: A.File
    files: dict                      # path -> A.File (entry first, then imports)
    blocks: dict                     # name -> A.BlockDef (kind "block")
    models: dict                     # name -> A.BlockDef (kind "model") | A.Preset
    recipe: A.RecipeRef | None
    default: A.DefaultModel | None

    def sources(self) -> dict[str, str]:
        return {path: f.source for path, f in self.files.items()}

    def text(self) -> str:
        """The entry's source, or a bundle of every file when it imports others (stored in checkpoints;
        `load_text` reads a bundle back without touching the disk)."""
        if len(self.files) == 1:
            return self.entry.source
        parts = [BUNDLE_HEADER]
        for path, f in self.files.items():
            parts.append(f"{BUNDLE_FILE}{path}\n{f.source}")
        return "\n".join(parts)

    def digest(self) -> str:
        return hashlib.sha256(self.text().encode()).hexdigest()

    def model_names(self) -> list[str]:
        """Models and presets defined in the entry file (not those it imports)."""
        return [it.name for it in self.entry.items if isinstance(it, (A.BlockDef, A.Preset))
                and getattr(it, "kind", "model") == "model"]

    def default_model(self) -> str:
        if self.default is not None:
            return self.default.name
        entry_models = self.model_names()
        if not entry_models:
            raise UserError(f"{self.entry.path}: no model is defined in this spec", help="write `model Name(...) { ... }`")
        return entry_models[-1]

    def choose_model(self, model: str | None) -> str:
        """The model to build: `model` (from --model) if the spec has it, else the spec's default; a spec with
        several models and no `default` line says on stderr which one it chose."""
        if model is not None:
            if model not in self.models:
                names = self.model_names() or list(self.models)
                raise UserError(Diagnostic(f"--model {model}: this spec has no model or preset of that name",
                                           self.entry.path, help=did_you_mean(model, self.models),
                                           notes=[f"models in {self.entry.path}: {', '.join(names)}"]))
            return model
        name = self.default_model()
        if self.default is None and len(self.model_names()) > 1 and (self.entry.path, name) not in _NOTED:
            _NOTED.add((self.entry.path, name))
            note(f"{self.entry.path} has no `default` line, so its last model '{name}' is used "
                 f"(models: {', '.join(self.model_names())}; choose with --model)")
        return name


_NOTED: set = set()      # (spec, model) choices already reported in this process


def load_program(path: str | Path) -> Program:
    """A spec file and its imports, confined to the spec's folder and the shipped library (imports.py)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"spec file not found: {path}", help="pass the path of a .diffspec file")
    loader = ImportLoader(_parse_file, spec_roots(path.parent), {})
    loader.load(read_text(path, "spec"), str(path))
    return _program(loader.files, str(path))


def load_text(text: str, filename: str = "<spec>", folder: str | Path | None = None) -> Program:
    """A spec from text. By default (e.g. text stored in a checkpoint) imports come only from a bundle written
    by Program.text(), never from the disk; with `folder`, imports are read as for a spec file in it."""
    bundle = split_bundle(text)
    if bundle:
        filename, text = next(iter(bundle.items()))
    loader = ImportLoader(_parse_file, None if folder is None else spec_roots(folder), bundle)
    loader.load(text, filename)
    return _program(loader.files, filename)


def _program(files: dict, filename: str) -> Program:
    entry = files[filename]
    blocks, models, diags = {}, {}, []
    for f in files.values():
        for item in f.items:
            if isinstance(item, (A.BlockDef, A.Preset)):
                table = blocks if getattr(item, "kind", "model") == "block" else models
                other = models if table is blocks else blocks
                if item.name in table or item.name in other:
                    diags.append(Diagnostic(f"'{item.name}' is defined twice", f.path, item.name_loc.line,
                                            item.name_loc.col, item.name_loc.end_col))
                table[item.name] = item
    recipe = next((i for i in entry.items if isinstance(i, A.RecipeRef)), None)
    default = next((i for i in entry.items if isinstance(i, A.DefaultModel)), None)
    if default is not None and default.name not in models:
        diags.append(Diagnostic(f"default model '{default.name}' is not defined", entry.path, default.loc.line,
                                default.loc.col, default.loc.end_col, help=did_you_mean(default.name, models)))
    if recipe is not None and (os.path.isabs(recipe.path) or not recipe.path.endswith((".yaml", ".yml"))):
        diags.append(Diagnostic(f"a recipe is a .yaml file named relative to the spec; got '{recipe.path}'",
                                entry.path, recipe.loc.line, recipe.loc.col, recipe.loc.single_line_end(),
                                help='e.g. recipe "../recipes/dit_digits.yaml"'))
    if diags:
        attach_source(diags, {p: f.source for p, f in files.items()})
        raise UserError(diags)
    return Program(entry, files, blocks, models, recipe, default)


def split_bundle(text: str) -> dict[str, str]:
    """{path: source} of a bundle written by Program.text(), entry first; {} for plain source."""
    if not text.startswith(BUNDLE_HEADER + "\n"):
        return {}
    files = {}
    for chunk in text[len(BUNDLE_HEADER) + 1:].split("\n" + BUNDLE_FILE):
        chunk = chunk[len(BUNDLE_FILE):] if chunk.startswith(BUNDLE_FILE) else chunk
        path, _, source = chunk.partition("\n")
        files[path] = source
    return files


def _parse_file(text: str, filename: str) -> A.File:
    tree = parse(text, filename)
    if tree.version is not None and tree.version not in SUPPORTED_VERSIONS:
        d = Diagnostic(f"diffspec version {tree.version} is not supported (this diffc reads version 1)",
                       filename, 1, 1, len("diffspec") + 1, help="write `diffspec 1` on the first line")
        attach_source([d], {filename: text})
        raise UserError(d)
    return tree
