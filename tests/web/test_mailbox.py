"""``/demo/mailbox``: in demo mode without a mail server, every mail idp sends, newest first,
its links clickable and everything else escaped; no such page outside demo mode."""

from __future__ import annotations

import re

from idp.mail.message import Mail
from tests.conftest import Instance, InstanceFactory
from tests.smtp import SmtpSink

LINK = "http://idp.test/reset-password?token=Abc_123-xyz"
HOSTILE = Mail(
    "eve@example.com",
    "reset_password",
    "<script>alert(1)</script> & more",
    f'Hello <b>"Eve"</b>,\nreset here: {LINK}.\nOr not: javascript:alert(2) <a href="x">y</a>',
    "<p>html is not shown</p>",
)
FIRST = Mail("ada@example.com", "verify_email", "Verify your address", "Plain words", "<p></p>")


async def queue(instance: Instance, mail: Mail) -> None:
    async with instance.state["pool"].acquire() as connection:
        await instance.state["mailing"].outbox.put(connection, mail, instance.state["clock"].now())


async def test_the_mailbox_lists_every_mail_newest_first_with_links_escaped(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance(demo=True) as instance:
        await queue(instance, FIRST)
        await queue(instance, HOSTILE)
        await instance.state["mail_sender"].passed()
        await instance.state["mail_sender"].passed()  # a second pass shows nothing twice
        page = await instance.client.get("/demo/mailbox")

    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["cache-control"] == "no-store"  # the links carry tokens
    html = page.text
    assert html.count('<article class="mail">') == 2
    assert html.index("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more") < html.index(
        "Verify your address"
    )  # newest first
    assert f'<a href="{LINK}">{LINK}</a>.' in html  # the sentence's full stop stays outside
    assert "Hello &lt;b&gt;&#34;Eve&#34;&lt;/b&gt;" in html
    assert "&lt;a href=&#34;x&#34;&gt;y&lt;/a&gt;" in html
    assert re.findall(r"<a href=\"([^\"]*)\"", html) == ["/demo/mailbox", LINK]
    assert "<script" not in html
    assert "<style" not in html
    assert " style=" not in html
    assert "html is not shown" not in html
    assert "To <strong>eve@example.com</strong>" in html


async def test_without_demo_mode_there_is_no_mailbox(app_instance: InstanceFactory) -> None:
    async with app_instance() as instance:
        await queue(instance, FIRST)
        page = await instance.client.get("/demo/mailbox")

    assert page.status_code == 404
    assert "Verify your address" not in page.text


async def test_with_a_mail_server_the_mailbox_shows_only_what_waits(
    app_instance: InstanceFactory, smtp_sink: SmtpSink
) -> None:
    async with app_instance(demo=True, smtp_url=smtp_sink.url) as instance:
        await queue(instance, FIRST)
        await smtp_sink.wait_for(FIRST.to)
        await instance.state["mail_sender"].passed()
        smtp_sink.stop()
        await queue(instance, HOSTILE)
        await instance.state["mail_sender"].passed()
        page = await instance.client.get("/demo/mailbox")

    assert page.status_code == 200
    assert "Mail goes to the SMTP server" in page.text
    assert "Verify your address" not in page.text  # sent: its bodies are gone
    assert "waiting to be sent" in page.text
    assert LINK in page.text
