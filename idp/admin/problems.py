"""Errors of the management service layer, answered as RFC 9457 problem details.

::

    ProblemError                      (status, title, detail)
    ├── InvalidRequestProblem         400  the body or the query is not what the operation takes
    ├── UnauthorizedProblem           401  no token, or not a live token for {issuer}/admin
    ├── ForbiddenProblem              403  a live token without the scope or the admin role
    ├── NotFoundProblem               404  no such user, client, session, key ...
    ├── ConflictProblem               409  the change contradicts the data (an address in use)
    │   └── LastAdminProblem          409  it would leave no enabled user with the admin role
    ├── PreconditionFailedProblem     412  If-Match names a representation that has changed
    ├── PreconditionRequiredProblem   428  an update without If-Match (RFC 6585 §3)
    └── UnprocessableProblem          422  well-formed, but a rule refuses it

The CLI prints ``detail`` as its one line; the API answers ``application/problem+json``.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

# RFC 9457 §3.1.1: a URI naming the kind of problem; these are names, not pages to fetch.
PROBLEM_TYPE_BASE = "urn:idp:problem:"


class ProblemError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    slug: ClassVar[str] = "internal"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """RFC 9457 §3.1 members, then the extension members (§3.2)."""
        problem: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            problem["instance"] = instance
        problem.update(self.extensions)
        return problem


class InvalidRequestProblem(ProblemError):
    status, title, slug = 400, "Invalid request", "invalid-request"


class UnauthorizedProblem(ProblemError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class ForbiddenProblem(ProblemError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFoundProblem(ProblemError):
    status, title, slug = 404, "Not found", "not-found"


def path_id(text: str, what: str) -> uuid.UUID:
    """A path's id of a ``what`` (user, resource, ...): NotFoundProblem for anything that is not
    a UUID, since no such thing exists (never a 422 or 500 for a malformed path)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFoundProblem(f"no {what} has the id {text!r}") from None


class ConflictProblem(ProblemError):
    status, title, slug = 409, "Conflict", "conflict"


class LastAdminProblem(ConflictProblem):
    title, slug = "Last administrator", "last-admin"


class PreconditionFailedProblem(ProblemError):
    status, title, slug = 412, "Precondition failed", "precondition-failed"


class UnprocessableProblem(ProblemError):
    status, title, slug = 422, "Unprocessable content", "unprocessable"


class PreconditionRequiredProblem(ProblemError):
    status, title, slug = 428, "Precondition required", "precondition-required"
