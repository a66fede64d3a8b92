"""Field types the management API's models share: text that the database can hold and a page
can show (no control characters, bounded), addresses, roles, page sizes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from idp.admin.cursors import DEFAULT_LIMIT, MAX_LIMIT

# Printable text: no C0/C1 controls (NUL cannot be stored; the rest would garble logs and pages).
_PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_PRINTABLE)]
Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=_PRINTABLE)]
Email = Annotated[
    str, Field(min_length=3, max_length=254, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")
]
Role = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
Cursor = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_-]+$")]
Limit = Annotated[
    int, Field(ge=1, le=MAX_LIMIT, description=f"Page size (default {DEFAULT_LIMIT})")
]
