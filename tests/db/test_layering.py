"""``idp/db/`` owns the SQL and imports nothing above it (DESIGN.md, "Who owns what"). Imports
are read from the source (ast), so that one inside a function or under TYPE_CHECKING counts."""

from __future__ import annotations

import ast
from pathlib import Path

import idp

PACKAGE = Path(idp.__file__).resolve().parent
# Leaf modules db/ may use: each imports nothing from idp (checked below), so nothing above db/
# comes in through them.
LEAVES = frozenset({"idp.clock", "idp.hashing", "idp.resources", "idp.settings", "idp.tasks"})


def module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def bindings(path: Path, root: Path = PACKAGE.parent) -> set[str]:
    """What ``path``'s import statements bind, as dotted names: ``import a.b`` gives a.b,
    ``from a.b import c`` gives a.b.c (relative imports resolved)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def idp_modules(path: Path, root: Path = PACKAGE.parent) -> set[str]:
    """The modules of idp that ``path`` imports: a bound name, or the module it comes from."""
    names = bindings(path, root)
    candidates = names | {name.rpartition(".")[0] for name in names}
    return {
        name
        for name in candidates
        if name.startswith("idp.")
        and any(
            (root / Path(*name.split("."))).with_suffix(suffix).exists() for suffix in (".py", "")
        )
    }


def test_no_module_of_idp_db_imports_from_above_it() -> None:
    modules = sorted((PACKAGE / "db").glob("*.py"))
    assert len(modules) > 10, "the walk must find the db modules"
    offending = sorted(
        f"{module_name(path)} imports {name}"
        for path in modules
        for name in idp_modules(path)
        if name.split(".")[:2] != ["idp", "db"] and name not in LEAVES
    )
    assert not offending


def test_the_leaves_db_may_use_import_nothing_from_idp() -> None:
    for leaf in sorted(LEAVES):
        path = PACKAGE / f"{leaf.removeprefix('idp.')}.py"
        assert path.is_file(), leaf
        assert idp_modules(path) == set(), f"{leaf} is no longer a leaf"


def test_the_walk_sees_imports_in_functions_under_type_checking_and_relative(
    tmp_path: Path,
) -> None:
    for module in ("db/pool", "db/sample", "keys/lifecycle", "keys/keyring", "metrics"):
        (tmp_path / "idp" / f"{module}.py").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "idp" / f"{module}.py").touch()
    sample = tmp_path / "idp" / "db" / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import pool\n"
        "from ..keys import lifecycle\n"
        "if TYPE_CHECKING:\n    from idp.keys.keyring import Keyring\n"
        "def f():\n    import idp.metrics\n"
    )
    assert idp_modules(sample, tmp_path) == {
        "idp.db",
        "idp.db.pool",
        "idp.keys",
        "idp.keys.lifecycle",
        "idp.keys.keyring",
        "idp.metrics",
    }


def test_audit_rows_are_written_only_through_the_audit_trail() -> None:
    """``idp.db.audit.record`` writes a row and announces nothing: every other module records
    through ``idp.audit_trail``, which logs and counts the event once it has committed."""
    direct = sorted(
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if module_name(path) not in ("idp.audit_trail", "idp.db.audit")
        and {"idp.db.audit", "idp.db.audit.record"} & bindings(path)
    )
    assert not direct


def test_metrics_know_nothing_of_the_layers_they_count() -> None:
    """idp.metrics reads the keys through a small protocol (KeySchedule), not the Keyring."""
    assert idp_modules(PACKAGE / "metrics.py") == set()
