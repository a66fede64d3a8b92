"""The Jinja2 environment of idp's pages and mails: the operator's directory first
(``IDP_TEMPLATES_DIR``), then idp's own templates. HTML is always autoescaped; plain-text mail
templates (``.txt``) are not."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from idp.resources import resource_dir


@lru_cache(maxsize=8)
def environment(override: Path | None) -> Environment:
    """One environment per override directory (a process has one; tests may build several).
    A template the operator's directory lacks comes from idp's own."""
    loaders = [FileSystemLoader(override)] if override is not None else []
    loaders.append(FileSystemLoader(resource_dir("templates")))
    return Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(disabled_extensions=("txt",), default=True),
        undefined=StrictUndefined,
    )
