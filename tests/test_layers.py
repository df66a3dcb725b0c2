"""The package's imports point one way: language -> registry -> compiler -> runtime -> commands.

Read from the source with `ast` (nothing is imported), lazy imports inside functions included, so a cycle
hidden behind a function-level import is caught as well.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# import name -> folder, as pyproject.toml's package-dir maps them
PACKAGE_DIRS = {"diffc": ROOT / "diffc", "diffc.dsl": ROOT / "dsl", "diffc.registry": ROOT / "registry",
                "diffc.blocks": ROOT / "blocks"}
# (layer, module prefixes), lowest first; a module may import its own layer or any lower one
LAYERS = [
    ("foundation", ["diffc.bounds", "diffc.datacheck", "diffc.errors", "diffc.files", "diffc.interface",
                    "diffc.model_file", "diffc.safe_unpickle", "diffc.schedules", "diffc.text"]),
    ("language", ["diffc.dsl"]),
    ("registry", ["diffc.registry", "diffc.blocks"]),
    ("compiler", ["diffc.compiler", "diffc.graph", "diffc.methods"]),
    ("shared runtime", ["diffc.checkpoints", "diffc.parameterizations", "diffc.stages_clustering", "diffc.autoencoder",
                        "diffc.latent_file", "diffc.encoding", "diffc.weights"]),
    ("runtime", ["diffc.training", "diffc.sampling", "diffc.evaluation"]),
    ("commands", ["diffc", "diffc.commands", "diffc.cli", "diffc.__main__"]),   # `diffc`: the package's API
]
# within the runtime layer: who may not import whom
FORBIDDEN_PEERS = [("diffc.sampling", "diffc.training"), ("diffc.sampling", "diffc.evaluation"),
                   ("diffc.evaluation", "diffc.training")]


def module_files() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if not (package == "diffc" and parts and f"diffc.{parts[0]}" in PACKAGE_DIRS):
                found[name] = path
    return found


def imports(name: str, path: Path, modules) -> set[str]:
    """diffc modules that `name` imports anywhere in its file (`from pkg import mod` counts as pkg.mod)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in out if m == "diffc" or m.startswith("diffc.")}


def layer_of(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or (prefix != "diffc" and module.startswith(prefix + ".")):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return best[0]


def violations(edges) -> list[str]:
    bad = []
    for source, target in edges:
        low, high = layer_of(source), layer_of(target)
        if high > low:
            bad.append(f"{source} ({LAYERS[low][0]}) imports {target} ({LAYERS[high][0]})")
        for lower, higher in FORBIDDEN_PEERS:
            if source.startswith(lower + ".") and target.startswith(higher):
                bad.append(f"{source} imports {target}: {lower} must not import {higher}")
    return bad


def package_edges():
    modules = module_files()
    return [(name, target) for name, path in modules.items() for target in imports(name, path, modules)]


def test_every_module_has_a_layer():
    for name in module_files():
        layer_of(name)


def test_imports_point_one_way():
    edges = package_edges()
    assert len(edges) > 150        # the walk found the package
    assert violations(edges) == []


def test_the_rule_catches_upward_and_sideways_imports():
    assert violations([("diffc.compiler.emit", "diffc.training.loop")]) == [
        "diffc.compiler.emit (compiler) imports diffc.training.loop (runtime)"]
    assert violations([("diffc.sampling.generate", "diffc.training.objectives")]) == [
        "diffc.sampling.generate imports diffc.training.objectives: diffc.sampling must not import diffc.training"]
    assert violations([("diffc.training.preview", "diffc.sampling.generate"),
                       ("diffc.commands.train", "diffc.training.loop")]) == []


def test_sampling_and_checkpoints_do_not_reach_training():
    edges = package_edges()
    reach = {}
    for source, target in edges:
        reach.setdefault(source, set()).add(target)
    for start in ("diffc.sampling.generate", "diffc.checkpoints", "diffc.evaluation.evaluate"):
        seen, todo = set(), [start]
        while todo:
            for nxt in reach.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert not {m for m in seen if m.startswith("diffc.training")}, start
