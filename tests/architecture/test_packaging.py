"""pyproject.toml cannot silently drop a folder: every product folder with Python files is a
package in `packages` and `package-dir`, and every mapped folder exists."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOT_PRODUCT = {"tests", "bench", "examples", "notebooks", "build", "docs"}


def setuptools_table() -> dict[str, object]:
    table = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert isinstance(table, dict)
    return table


def product_folders() -> set[Path]:
    """Folders under the top-level product folders that hold Python modules."""
    out: set[Path] = set()
    for top in REPO.iterdir():
        if not top.is_dir() or top.name.startswith(".") or top.name in NOT_PRODUCT:
            continue
        for f in top.rglob("*.py"):
            if "__pycache__" not in f.parts:
                out.add(f.parent.relative_to(REPO))
    return out


def test_every_product_folder_is_packaged() -> None:
    table = setuptools_table()
    mapping = table["package-dir"]
    packages = table["packages"]
    assert isinstance(mapping, dict) and isinstance(packages, list)
    mapped = {Path(folder) for folder in mapping.values()}
    missing = sorted(str(f) for f in product_folders() - mapped)
    assert missing == [], f"folders with modules missing from package-dir: {missing}"
    assert sorted(mapping) == sorted(packages), "packages and package-dir name different sets"


def test_every_mapped_folder_is_a_package() -> None:
    mapping = setuptools_table()["package-dir"]
    assert isinstance(mapping, dict)
    for name, folder in mapping.items():
        assert (REPO / folder / "__init__.py").is_file(), f"{name} -> {folder} has no __init__.py"
        parent = name.rpartition(".")[0]
        if parent != "rstq":  # a subpackage lives inside its parent's folder
            assert Path(folder).parent == Path(mapping[parent]), (name, folder)


def test_makefile_checks_every_part() -> None:
    """`make test` lints and type-checks `PARTS`: the same top-level parts pyproject maps."""
    mapping = setuptools_table()["package-dir"]
    assert isinstance(mapping, dict)
    line = next(ln for ln in (REPO / "Makefile").read_text().splitlines()
                if ln.startswith("PARTS :="))
    parts = set(line.split(":=", 1)[1].split())
    assert parts == {name.split(".")[1] for name in mapping if name.count(".") == 1}
