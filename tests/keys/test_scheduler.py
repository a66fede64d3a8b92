"""The scheduler inside a running app rotates keys on schedule, without anyone asking."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from idp.clock import FrozenClock
from tests.conftest import InstanceFactory
from tests.factories import kids


async def test_running_app_rotates_when_the_active_key_is_due(
    app_instance: InstanceFactory, clock: FrozenClock
) -> None:
    async with app_instance(run_scheduler=True, key_check_interval=timedelta(seconds=1)) as app:
        keyring = app.state["keyring"]
        old = keyring.snapshot.signer.kid
        published_before = kids(keyring.snapshot.jwks_body)
        clock.advance(app.state["settings"].key_rotation_interval)

        deadline = time.monotonic() + 5
        while keyring.snapshot.signer.kid == old:
            assert time.monotonic() < deadline, "no rotation within 5 ticks"
            await asyncio.sleep(0.05)

        assert keyring.snapshot.signer.kid in published_before
        assert old in kids(keyring.snapshot.jwks_body), "the old key stays published"
