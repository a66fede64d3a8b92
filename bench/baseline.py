"""Which idp a server runs: this checkout's, or (``--baseline REF``) another commit's, checked out
with ``git worktree add --detach`` into a temporary directory and run on this virtual
environment's packages, its own code first on ``PYTHONPATH``."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from config import ROOT, log


@dataclass(frozen=True)
class IdpCode:
    """The checkout an idp runs from: ``python -m idp`` in it, that tree first on sys.path."""

    root: Path
    commit: str  # as the table shows it

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "idp", *args]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        path = [str(self.root), *filter(None, [base.get("PYTHONPATH")])]
        return base | {"PYTHONPATH": ":".join(path)}

    def check(self, env: dict[str, str]) -> None:
        """Stop unless ``python -m idp`` here imports this tree's idp (not the installed one)."""
        done = subprocess.run(
            [sys.executable, "-c", "import idp; print(idp.__file__)"],
            env=self.env(env),
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
        )
        imported = Path(done.stdout.strip() or "?").resolve()
        if not imported.is_relative_to(self.root.resolve()):
            raise SystemExit(f"bench: idp of {self.root} imports {imported}: {done.stderr}")


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench: git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def this_checkout() -> IdpCode:
    commit = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--", "idp", "migrations"):
        commit += " + uncommitted changes"
    return IdpCode(ROOT, commit)


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[tuple[IdpCode, list[str]]]:
    """REF checked out beside this one, and notes for the table; removed afterwards."""
    commit = git("rev-parse", "--verify", "--short", f"{ref}^{{commit}}")
    parent = Path(tempfile.mkdtemp(prefix="idp-bench-baseline-"))
    tree = parent / "idp"
    log(f"baseline: {ref} ({commit}) checked out in {tree}")
    git("worktree", "add", "--detach", "--quiet", str(tree), commit)
    named = commit if commit.startswith(ref) else f"`{ref}` ({commit})"
    notes = [f"baseline: idp at {named}, run from a checkout of it on this virtual environment"]
    if git("diff", "--name-only", commit, "HEAD", "--", "pyproject.toml"):
        notes.append(
            "baseline: its pyproject.toml differs from this checkout's; it ran on this virtual "
            "environment's packages"
        )
    try:
        yield IdpCode(tree, commit), notes
    finally:
        with contextlib.suppress(SystemExit):
            git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(parent, ignore_errors=True)
