"""Failures forced with a real database condition, not a mock: what a caller does when its
transaction fails. Builders live in ``tests/factories.py``, fixtures in ``tests/conftest.py``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

# Checked at COMMIT (deferred), against a table no subject is in: every statement of the
# transaction succeeds, then the commit fails and all of it rolls back.
REFUSE = """
CREATE TABLE test_known_subjects (subject text PRIMARY KEY);
ALTER TABLE audit_log ADD CONSTRAINT test_audit_subject_known
    FOREIGN KEY (subject) REFERENCES test_known_subjects (subject)
    DEFERRABLE INITIALLY DEFERRED NOT VALID;
"""
ALLOW = """
ALTER TABLE audit_log DROP CONSTRAINT test_audit_subject_known;
DROP TABLE test_known_subjects;
"""


@contextlib.asynccontextmanager
async def audited_commits_fail(pool: asyncpg.Pool) -> AsyncIterator[None]:
    """While open, a transaction that writes an audit event with a subject fails at its COMMIT
    (asyncpg.ForeignKeyViolationError), after every statement in it succeeded."""
    await pool.execute(REFUSE)
    try:
        yield
    finally:
        await pool.execute(ALLOW)
