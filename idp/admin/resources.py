"""The resources (RFC 8707) that clients registered by a program may name, beside
``IDP_RESOURCES`` (``idp.oauth.resource_registry`` keeps them in memory): ``idp resources
add|list|remove`` and ``/admin/v1/resources`` call these functions. Each change NOTIFYs at commit
(``idp.db.registrations``), so every process's registry follows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

from idp.admin import cursors
from idp.admin.problems import ConflictProblem, InvalidRequestProblem, NotFoundProblem, path_id
from idp.audit_trail import audited
from idp.db import registrations
from idp.db.pool import Executor
from idp.db.registrations import Resource

MAX_URL = 2000


def check_url(url: str) -> str:
    """RFC 8707 §2: an absolute URI without a fragment; http(s), as IDP_RESOURCES."""
    parts = urlsplit(url)
    if (
        len(url) > MAX_URL
        or not url.isprintable()
        or " " in url
        or parts.scheme not in ("https", "http")
        or not parts.hostname
        or "#" in url
    ):
        raise InvalidRequestProblem(
            f"{url!r} is not an absolute http(s) URL without a fragment (RFC 8707 §2)"
        )
    return url


async def add(pool: asyncpg.Pool, url: str, *, now: datetime, actor: str) -> Resource:
    check_url(url)
    async with pool.acquire() as connection, audited(connection) as trail:
        added = await registrations.add_resource(connection, url, now)
        if added is None:
            raise ConflictProblem(f"{url} is registered already")
        await trail.record(now=now, actor=actor, action="resource.added", subject=url)
    return added


async def remove(
    pool: asyncpg.Pool,
    *,
    now: datetime,
    actor: str,
    url: str | None = None,
    resource_id: UUID | None = None,
) -> Resource:
    """Remove the resource with that URL (the CLI) or that id (the API): exactly one given."""
    async with pool.acquire() as connection, audited(connection) as trail:
        removed = await registrations.remove_resource(connection, url=url, resource_id=resource_id)
        if removed is None:
            which = url if url is not None else f"the resource {resource_id}"
            raise NotFoundProblem(f"{which} is not a registered resource")
        await trail.record(now=now, actor=actor, action="resource.removed", subject=removed.url)
    return removed


def parse_id(text: str) -> UUID:
    return path_id(text, "resource")


async def get(db: Executor, resource_id: UUID) -> Resource:
    found = await registrations.find_resource(db, resource_id)
    if found is None:
        raise NotFoundProblem(f"no resource {resource_id}")
    return found


@dataclass(frozen=True)
class ResourcePage:
    resources: list[Resource]
    next_cursor: str | None


async def page(db: Executor, *, limit: int, cursor: str | None = None) -> ResourcePage:
    """In URL order, ``limit`` at a time, after ``cursor`` (the last URL a page showed)."""
    after = None
    if cursor is not None:
        (after,) = cursors.decode(cursor, arity=1)
        if not isinstance(after, str):
            raise InvalidRequestProblem("cursor is not one this API gave")
    found = await registrations.resources_page(db, after=after, limit=limit + 1)
    return ResourcePage(*cursors.shown(found, limit, lambda last: cursors.encode([last.url])))


async def all_resources(pool: asyncpg.Pool) -> list[Resource]:
    return await registrations.all_resources(pool)
