"""Who may call the management API: idp's own tokens for {issuer}/admin, with its scopes."""

from __future__ import annotations

import pytest

from idp.settings import Settings
from tests.admin_api import PREFIX, admin_token, bearer, client_token, problem
from tests.conftest import InstanceFactory
from tests.factories import make_client, make_user


async def test_an_admin_client_lists_users_with_its_client_credentials_token(
    app_instance: InstanceFactory, pool: object, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        await make_user(instance.state["pool"], "bob@example.com")
        token = await admin_token(instance.client, instance.state["pool"], settings)
        answer = await instance.client.get(f"{PREFIX}/users", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert [user["email"] for user in answer.json()["items"]] == ["bob@example.com"]
    assert answer.headers["cache-control"] == "no-store"


async def test_the_api_is_not_there_unless_it_is_switched_on(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=False) as instance:
        token = await admin_token(instance.client, instance.state["pool"], settings)
        answer = await instance.client.get(f"{PREFIX}/users", headers=bearer(token))
        document = await instance.client.get(f"{PREFIX}/openapi.json")
    assert answer.status_code == 404
    assert document.status_code == 404


async def test_no_token_gets_401_with_a_bearer_challenge(app_instance: InstanceFactory) -> None:
    async with app_instance(admin_api=True) as instance:
        answer = await instance.client.get(f"{PREFIX}/users")
    problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_a_token_for_another_audience_gets_401(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        client, secret = await make_client(
            instance.state["pool"], settings, audiences=("https://api.example",)
        )
        token = await client_token(instance.client, client.client_id, secret)
        answer = await instance.client.get(f"{PREFIX}/users", headers=bearer(token))
    assert "not meant for this server" in problem(answer, 401)["detail"]


async def test_a_read_only_token_reads_but_gets_403_on_a_write(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        token = await admin_token(
            instance.client, instance.state["pool"], settings, scope="idp:admin.read"
        )
        read = await instance.client.get(f"{PREFIX}/users", headers=bearer(token))
        write = await instance.client.post(
            f"{PREFIX}/users", json={"email": "carol@example.com"}, headers=bearer(token)
        )
    assert read.status_code == 200
    assert "idp:admin scope" in problem(write, 403)["detail"]


async def test_only_an_admin_client_may_ask_for_the_admin_audience_or_scopes(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        client, secret = await make_client(instance.state["pool"], settings)
        answer = await instance.client.post(
            "/token",
            data={"grant_type": "client_credentials", "resource": settings.admin_audience},
            auth=(client.client_id, secret),
        )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_target"


async def test_a_token_signed_for_the_admin_audience_by_a_client_no_longer_admin_gets_403(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        client, _ = await make_client(instance.state["pool"], settings)
        now = int(instance.state["clock"].now().timestamp())
        token = instance.state["keyring"].sign(
            {
                "iss": settings.issuer,
                "aud": settings.admin_audience,
                "sub": client.client_id,
                "client_id": client.client_id,
                "scope": "idp:admin",
                "iat": now,
                "exp": now + 300,
                "jti": "forged-by-a-test",
            },
            typ="at+jwt",
        )
        answer = await instance.client.get(f"{PREFIX}/users", headers=bearer(token))
    assert "not an admin client" in problem(answer, 403)["detail"]


@pytest.mark.parametrize(("scope", "audience"), [("idp:admin", None), (None, "{issuer}/admin")])
async def test_registration_refuses_the_admin_scopes_and_audience_without_admin(
    pool: object, settings: Settings, scope: str | None, audience: str | None
) -> None:
    from idp.oauth.registration import RegistrationError

    with pytest.raises(RegistrationError, match="only an admin client"):
        await make_client(
            pool,  # type: ignore[arg-type]
            settings,
            scopes=() if scope is None else (scope,),
            audiences=() if audience is None else (audience.format(issuer=settings.issuer),),
        )
