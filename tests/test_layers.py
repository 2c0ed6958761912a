"""Imports point down: each part of specchat imports only parts below it, imports inside
functions included, so there is no cycle to hide and a newcomer can read from the bottom up."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import specchat

# bottom to top; a part may import the parts of lower layers (and itself), nothing else
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer.split())
    for layer in (
        "__init__ errors",  # the version; the one-line errors every layer raises
        "engine",  # speculative decoding on llama.cpp; public API in engine/__init__.py
        "config stats_format",  # models.toml and locations; the stats as text
        "sources store",  # fetching GGUFs; chat history
        "pair_settings pair_check",  # a pair and its files -> engine settings; models check
        "pair_request",  # a front end's choices -> a loaded pair
        "server tui",  # HTTP server, chat app
        "bench",  # benchmarks (the agent bench drives the HTTP server)
        "commands",  # one module per CLI subcommand
        "cli",
        "__main__",
    )
)
RANK = {part: rank for rank, layer in enumerate(LAYERS) for part in layer}
ROOT = Path(specchat.__file__).parent

# Inside the engine, bottom to top: its public data and rules, the llama.cpp glue, the algorithm
# built on the glue, and the package's face (engine/__init__.py), which re-exports and loads.
ENGINE_LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer.split())
    for layer in (
        "types",  # settings in, events and stats out
        "protocol limits context",  # the ChatEngine interface; bounds; fitting the context
        "llama",  # llama.cpp glue: a model, devices, RPC, saved states, templates, grammars
        "speculative",  # the algorithm: the loop, drafting, verification, sampling, costs
        "__init__",  # the public face: re-exports and load_engine
    )
)
ENGINE_RANK = {part: rank for rank, layer in enumerate(ENGINE_LAYERS) for part in layer}
ENGINE = ROOT / "engine"


def part_of(module: str) -> str:
    """'specchat.engine.llama.model' -> 'engine'; 'specchat' and its attributes -> '__init__'."""
    parts = module.split(".")
    known = len(parts) > 1 and ((ROOT / parts[1]).is_dir() or (ROOT / f"{parts[1]}.py").is_file())
    return parts[1] if known else "__init__"


def engine_part_of(module: str) -> str:
    """'specchat.engine.llama.model' -> 'llama'; 'specchat.engine' and its names -> '__init__'."""
    parts = module.split(".")
    known = len(parts) > 2 and (
        (ENGINE / parts[2]).is_dir() or (ENGINE / f"{parts[2]}.py").is_file()
    )
    return parts[2] if known else "__init__"


def module_name(path: Path) -> str:
    """.../specchat/engine/llama/model.py -> 'specchat.engine.llama.model'."""
    return ".".join(("specchat", *path.relative_to(ROOT).with_suffix("").parts))


def imported(path: Path) -> Iterator[str]:
    """Every specchat module a file imports, wherever in the file (functions included)."""
    package = ".".join(("specchat", *path.relative_to(ROOT).parent.parts)).rstrip(".")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            yield ".".join([*base, node.module] if node.module else base)
        elif isinstance(node, ast.ImportFrom) and node.module == "specchat":
            yield from (f"specchat.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_every_part_has_a_layer() -> None:
    parts = {p.stem for p in ROOT.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert parts <= set(RANK), sorted(parts - set(RANK))


def test_imports_point_down() -> None:
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        here = part_of(module_name(path))
        for module in imported(path):
            if module == "specchat" or module.startswith("specchat."):
                there = part_of(module)
                if there != here and RANK[there] >= RANK[here]:
                    upward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not upward, "\n".join(upward)


def test_every_engine_part_has_a_layer() -> None:
    parts = {p.stem for p in ENGINE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert parts <= set(ENGINE_RANK), sorted(parts - set(ENGINE_RANK))


def test_engine_imports_point_down() -> None:
    """Within the engine too: the glue never imports the algorithm, neither imports the face."""
    upward = []
    for path in sorted(ENGINE.rglob("*.py")):
        here = engine_part_of(module_name(path))
        for module in imported(path):
            if module == "specchat.engine" or module.startswith("specchat.engine."):
                there = engine_part_of(module)
                if there != here and ENGINE_RANK[there] >= ENGINE_RANK[here]:
                    upward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not upward, "\n".join(upward)
