"""Mails from templates: ``mail/NAME.subject.txt``, ``mail/NAME.txt`` and ``mail/NAME.html``,
from the operator's ``IDP_TEMPLATES_DIR`` first (idp.templating). Every mail knows the issuer
and the product name, so a template can say where it came from."""

from __future__ import annotations

from typing import Any

from idp.mail.message import Mail
from idp.settings import Settings
from idp.templating import environment


class Composer:
    def __init__(self, settings: Settings) -> None:
        self._env = environment(settings.templates_dir)
        self._issuer = settings.issuer

    def link(self, path: str, token: str) -> str:
        """An absolute link into idp carrying a mail token (``/verify-email?token=...``)."""
        return f"{self._issuer}{path}?token={token}"

    def compose(self, template: str, to: str, **context: Any) -> Mail:
        context = {"issuer": self._issuer, "to": to, **context}

        def render(suffix: str) -> str:
            return self._env.get_template(f"mail/{template}.{suffix}").render(**context)

        subject = " ".join(render("subject.txt").split())  # one line, whatever the template did
        return Mail(to, template, subject, render("txt"), render("html"))
