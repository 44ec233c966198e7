"""What the packages export is what they hold in public, and all that tests and benchmarks use.

In the manner of httpx's ``test_exported_members``: a public name in a package's namespace
is in its ``__all__``, and every name in ``__all__`` is there. Tests and benchmarks import
packages, never a module inside one, so a module can move without them noticing.
"""

from __future__ import annotations

import ast
import importlib
import types

import pytest

from tests.conftest import ROOT

PACKAGES = ["service", "service.answering", "service.llm", "service.http", "index"]


@pytest.mark.parametrize("name", PACKAGES)
def test_a_package_exports_exactly_its_public_names(name: str) -> None:
    package = importlib.import_module(name)
    public = {
        member
        for member, value in vars(package).items()
        if not member.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(package.__all__) == sorted(public)
    assert len(set(package.__all__)) == len(package.__all__)


def test_tests_and_benchmarks_import_packages_never_their_modules() -> None:
    reached_in = []
    for path in [*(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for module in modules:
                if module.split(".")[0] in ("service", "index") and module not in PACKAGES:
                    reached_in.append(f"{path.relative_to(ROOT)}: {module}")
    assert reached_in == []
