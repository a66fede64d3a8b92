"""Fills in what the environment left to idp: the embedded database and its key-encryption key."""

from __future__ import annotations

from dataclasses import replace

from idp.db.embedded import ensure_data_dir, start_embedded_postgres
from idp.keys.crypto import load_or_create_kek
from idp.settings import Settings, SettingsError


def resolve(settings: Settings) -> Settings:
    """Settings with ``database_url`` and ``key_encryption_key`` set.

    Without IDP_DATABASE_URL, start (or join) the embedded PostgreSQL in IDP_DATA_DIR and use the
    key-encryption key generated there. An external database requires IDP_KEY_ENCRYPTION_KEY:
    a key generated on one host would leave the others unable to sign.
    """
    if settings.database_url is None:
        data_dir = ensure_data_dir(settings.data_dir)
        url = start_embedded_postgres(data_dir)
        kek = settings.key_encryption_key or load_or_create_kek(data_dir)
        return replace(settings, database_url=url, key_encryption_key=kek, data_dir=data_dir)
    if settings.key_encryption_key is None:
        raise SettingsError(
            "IDP_KEY_ENCRYPTION_KEY",
            "is required with IDP_DATABASE_URL (32 random bytes, base64url; "
            'python -c "import secrets; print(secrets.token_urlsafe(32))")',
        )
    return settings
