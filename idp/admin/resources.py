"""`idp resources add|list|remove`: the resources (RFC 8707) that clients registered by a
program may name, beside ``IDP_RESOURCES`` (``idp.oauth.resource_registry`` keeps them in
memory)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

import asyncpg

from idp.admin.problems import ConflictProblem, InvalidRequestProblem, NotFoundProblem
from idp.audit_trail import audited
from idp.db import registrations
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


async def add(pool: asyncpg.Pool, url: str, *, now: datetime, actor: str) -> None:
    check_url(url)
    async with pool.acquire() as connection, audited(connection) as trail:
        if not await registrations.add_resource(connection, url, now):
            raise ConflictProblem(f"{url} is registered already")
        await trail.record(now=now, actor=actor, action="resource.added", subject=url)


async def remove(pool: asyncpg.Pool, url: str, *, now: datetime, actor: str) -> None:
    async with pool.acquire() as connection, audited(connection) as trail:
        if not await registrations.remove_resource(connection, url):
            raise NotFoundProblem(f"{url} is not a registered resource")
        await trail.record(now=now, actor=actor, action="resource.removed", subject=url)


async def all_resources(pool: asyncpg.Pool) -> list[Resource]:
    return await registrations.all_resources(pool)
