"""Lint and type checks run as part of the suite: ruff over all Python, mypy (strict) over
the sonix package (benchmarks included) and the tests, and the rule that on-machine agents use
the standard library only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff() -> None:
    result = run_tool("ruff", "check", "src", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = run_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def agent_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in an agent's source."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_agents_import_the_standard_library_only() -> None:
    """The agents run on the machine with the image's python3 and nothing else; they may
    import each other (relative imports) and the standard library, nothing from sonix's host
    side or from PyPI."""
    agents = sorted((ROOT / "src/sonix/agents").glob("*.py"))
    assert len(agents) > 5
    stdlib = sys.stdlib_module_names | {"__future__"}
    foreign = [f"{path.relative_to(ROOT)}:{line}: {module}"
               for path in agents for line, module in agent_imports(path)
               if module.split(".")[0] not in stdlib]
    assert not foreign, "agents import more than the standard library:\n" + "\n".join(foreign)


def test_in_nix_build_code_imports_the_standard_library_only() -> None:
    """src/sonix/in_nix_build/ runs inside Nix builds, each file alone with the tools'
    python3: it may import the standard library and nothing else."""
    scripts = sorted((ROOT / "src/sonix/in_nix_build").glob("*.py"))
    assert len(scripts) >= 3
    stdlib = sys.stdlib_module_names | {"__future__"}
    foreign = [f"{path.relative_to(ROOT)}:{line}: {module}"
               for path in scripts for line, module in agent_imports(path)
               if module.split(".")[0] not in stdlib]
    assert not foreign, "in-build code imports more than the standard library:\n" + "\n".join(
        foreign)
