"""The layer rule of docs/ARCHITECTURE.md, checked on every import in `src/llm_recipe` (those
inside functions too: a lazy import is still a dependency).

    foundation   files, console, splits, provenance, distributed, config, cell_literals, web_records < record_sources
                 (import only each other, downward)
    components   tokenizer < models < data, infer < preference < train < eval; report
    demo, ship   generators of bundled data; export / push of models   may import components
    stages       read config -> call components -> write          may import demo, ship, components
    recipe, annotate, api, cli_ship, cli  sequence the stages / the annotation web app / the Python
                 API / parse the command line (cli registers cli_ship's commands, passing itself in)

`llm_recipe/__init__` re-exports the API lazily (`__getattr__` + importlib, no import statement):
the root package stays importable from every layer.

A module may import its own layer's lower modules and any lower layer, never a higher one, and the
module graph has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "llm_recipe"

# rank of each top-level module/package: an import must go to an equal-or-lower rank (equal only
# inside one package), never up.
RANKS = {
    "files": 0, "console": 0, "splits": 1, "config": 0, "provenance": 1, "distributed": 1, "web_records": 0.5,
    "record_sources": 1, "seeds": 0, "run_keys": 2,
    "tokenizer": 2, "report": 2, "models": 3, "data": 4, "infer": 4, "preference": 5, "train": 6, "eval": 7,
    "demo": 8, "ship": 8, "stages": 9, "recipe": 10, "annotate": 10, "api": 11, "cli_ship": 11, "cli": 12,
    "__main__": 13, "__init__": 0, "cell_literals": 0,
}
COMPONENTS = ("tokenizer", "models", "data", "infer", "preference", "train", "eval", "report")


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, src: Path = SRC) -> set[str]:
    """Every `llm_recipe` module this file imports, anywhere in it."""
    mod = module_name(path, src)
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            target, names = "", [a.name for a in node.names]
        else:
            continue
        for name in [target, *names]:
            if name.startswith("llm_recipe"):
                out.add(name)
    return out


def resolve(name: str, modules: set[str]) -> str | None:
    """The module an imported name lives in (`llm_recipe.x.y.func` -> `llm_recipe.x.y`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def graph(src: Path = SRC) -> dict[str, set[str]]:
    files = sorted(src.rglob("*.py"))
    modules = {module_name(f, src) for f in files}
    g: dict[str, set[str]] = {}
    for f in files:
        mod = module_name(f, src)
        deps = {resolve(n, modules) for n in imports_of(f, src)}
        # importing a package's own __init__ from inside it is bookkeeping, not a dependency
        g[mod] = {d for d in deps if d and d != mod and not mod.startswith(d + ".")}
    return g


def top(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_module_has_a_layer():
    assert {top(m) for m in graph()} <= set(RANKS), "add new top-level modules to RANKS and ARCHITECTURE.md"


def upward_imports(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in g.items():
        for d in deps:
            a, b = top(mod), top(d)
            if RANKS[b] > RANKS[a] or (RANKS[b] == RANKS[a] and a != b):
                bad.append(f"{mod} -> {d}")
    return sorted(bad)


def test_imports_only_go_down():
    bad = upward_imports(graph())
    assert not bad, "imports up the layers:\n" + "\n".join(bad)


@pytest.mark.parametrize("layer", ["demo", "stages", "recipe", "cli"])
def test_components_never_import_demo_or_stages(layer):
    offenders = [f"{m} -> {d}" for m, deps in graph().items() if top(m) in COMPONENTS
                 for d in deps if top(d) == layer]
    assert not offenders


def find_cycle(g: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, path: list[str]) -> bool:
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                cycle.extend(path[path.index(d):] + [m, d] if d in path else [m, d])
                return True
            if state.get(d) is None and visit(d, [*path, m]):
                return True
        state[m] = 2
        return False

    any(state.get(m) is None and visit(m, []) for m in sorted(g))
    return cycle


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert not cycle, " -> ".join(cycle)


def test_the_checker_sees_a_violation(tmp_path):
    """A component importing a stage (inside a function) is caught, as is the cycle it makes."""
    pkg = tmp_path / "llm_recipe"
    for sub in ("train", "stages"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "stages" / "sft.py").write_text("from ..train import loop\n")
    (pkg / "train" / "loop.py").write_text("def f():\n    from ..stages.sft import x\n")
    g = graph(pkg)
    assert upward_imports(g) == ["llm_recipe.train.loop -> llm_recipe.stages.sft"]
    assert set(find_cycle(g)) == {"llm_recipe.train.loop", "llm_recipe.stages.sft"}
