"""The management service layer: every operator action (users, clients, sessions, consents, keys,
the audit log) as one function, called by the ``idp`` CLI and by the management API alike, so
that no rule is written twice. No Starlette here."""
