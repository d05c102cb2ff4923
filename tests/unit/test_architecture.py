"""The layering rule of docs/architecture.md, read from the package's real imports, and its
module map (its Layout), read against the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "keysentry" / "keysentry"

DOMAIN, ADAPTERS, USE_CASES, ENTRY_POINTS = 0, 1, 2, 3
LAYER = {
    "errors": DOMAIN,
    "keyformat": DOMAIN,
    "hashing": DOMAIN,
    "identify": DOMAIN,
    "model": DOMAIN,
    "routes": DOMAIN,
    "signing": DOMAIN,
    "settings": DOMAIN,
    "usage": DOMAIN,
    "plans": DOMAIN,
    "watch": DOMAIN,
    "aws": ADAPTERS,
    "store": ADAPTERS,
    "nonces": ADAPTERS,
    "peppers": ADAPTERS,
    "envelope": ADAPTERS,
    "scanning_keys": ADAPTERS,
    "client": ADAPTERS,
    "gateway": ADAPTERS,
    "deploy": ADAPTERS,
    "service": USE_CASES,
    "alerts": USE_CASES,
    "rotation": USE_CASES,
    "metering": USE_CASES,
    "plans_sync": USE_CASES,
    "authorizer": ENTRY_POINTS,
    "api": ENTRY_POINTS,
    "cli": ENTRY_POINTS,
}
# The hot path's own rule: the authorizer reads keys through the store, never through the use cases.
AUTHORIZER_NEVER = {"service", "api", "cli", "alerts", "rotation"}


def top_level_parts() -> set[str]:
    """Each module or subpackage directly under keysentry/ (``__init__`` and ``py.typed`` aside)."""
    parts = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return parts | {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}


def part_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def keysentry_imports(path: Path) -> set[str]:
    """The top-level keysentry parts a module imports, anywhere in it (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == "keysentry":
                names = [f"keysentry.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            dotted = name.split(".")
            if dotted[0] == "keysentry" and len(dotted) > 1:
                found.add(dotted[1])
            elif dotted[0] == "keysentry_dev":
                found.add("keysentry_dev")
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_part_of_the_package_has_a_layer() -> None:
    assert top_level_parts() == set(LAYER)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_its_own_layer_or_those_beneath(path: Path) -> None:
    part = part_of(path)
    for imported in keysentry_imports(path) - {part}:
        if imported == "keysentry_dev":
            assert path.relative_to(PACKAGE).as_posix() == "cli/commands.py", "only the CLI runs dev tools"
            continue
        assert LAYER[imported] <= LAYER[part], (
            f"{part} ({LAYER[part]}) imports {imported} ({LAYER[imported]})"
        )


def test_the_authorizer_never_reaches_the_use_cases() -> None:
    for path in (PACKAGE / "authorizer").rglob("*.py"):
        assert not keysentry_imports(path) & AUTHORIZER_NEVER, path.name


def test_the_layering_check_sees_a_violation(tmp_path: Path) -> None:
    """The check above reads real imports: a domain module importing an adapter is caught."""
    probe = tmp_path / "probe.py"
    probe.write_text("from keysentry.store import KeyStore\n\ndef f():\n    from keysentry import aws\n")
    imported = keysentry_imports(probe)
    assert imported == {"store", "aws"}
    assert max(LAYER[name] for name in imported) > LAYER["model"]


def layout_module_map() -> set[str]:
    """The names docs/architecture.md's Layout lists under ``keysentry/`` (indented one level deeper)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    layout = text[text.index("## Layout") :]
    block = layout[layout.index("```") + 3 :]
    block = block[: block.index("```")]
    return {m.group(1).rstrip("/").removesuffix(".py") for m in re.finditer(r"^    (\S+)\s", block, re.M)}


def test_the_layout_module_map_matches_the_tree() -> None:
    assert layout_module_map() == top_level_parts()


def test_the_architecture_document_names_every_part_in_its_layer() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = {
        "domain": DOMAIN,
        "adapters": ADAPTERS,
        "use cases": USE_CASES,
        "entry points": ENTRY_POINTS,
    }
    for label, layer in rows.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
        named = {name.rstrip("/") for name in re.findall(r"`([a-z_]+/?)`", row.split("|")[2])}
        assert named == {part for part, at in LAYER.items() if at == layer}, label


# ---------------------------------------------------------------- sizes

MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 400
# The demo narrates the whole lifecycle as one script, step after step: it is read top to bottom.
SCRIPTS = {("dev/keysentry_dev/demo.py", "run_demo")}
SOURCES = sorted(
    p
    for folder in ("layers/keysentry/keysentry", "dev", "functions", "bench")
    for p in (ROOT / folder).rglob("*.py")
    if "__pycache__" not in p.parts
)


def test_no_module_is_over_400_lines() -> None:
    long = {
        p.relative_to(ROOT).as_posix(): n
        for p in SOURCES
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_over_60_lines() -> None:
    long = {}
    for path in SOURCES:
        name = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and (name, node.name) not in SCRIPTS:
                    long[f"{name}:{node.name}"] = lines
    assert long == {}
