"""Alert notifications delivered to real servers on loopback: HTTPS webhook and SMTP.

The webhook receiver is an HTTPS server with a test CA's certificate; the
mail server is aiosmtpd requiring STARTTLS and AUTH. Alerts come from the
store's outbox (a real SQLite alerts store).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.alert_receivers import https_receiver, smtp_server
from support.tls import Certificates, make_certificates

from useraudit.detect.notify import Notifier, signature
from useraudit.detect.settings import DetectionSettings, SettingsError
from useraudit.store.alerts import Alert, alert_id
from useraudit.store.sqlite.alerts import SQLiteDetectionStore

SECRET = "hook-secret"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SQLiteDetectionStore]:
    store = SQLiteDetectionStore(tmp_path / "audit.db")
    store.install()
    yield store
    store.close()


def alert(n: int = 0, account: str = "acme", severity: str = "high") -> Alert:
    return Alert(
        id=alert_id(account, "takeover", f"u-{n}", 1),
        account=account,
        rule="takeover",
        severity=severity,
        subject=f"u-{n}",
        title="Successful sign-in right after failed ones",
        first_seen="2026-03-02T10:00:00.000Z",
        last_seen="2026-03-02T10:04:00.000Z",
        event_ids=[f"e{n}a", f"e{n}b"],
        user_id=f"u-{n}",
        details={"failures_before": 3},
    )


def settings(**notify: Any) -> DetectionSettings:
    return DetectionSettings.from_dict({"accounts": {"acme": {"notify": notify}}})


def no_sleep(_s: float) -> None:
    pass


def test_webhook_is_json_signed_with_a_stable_id(outbox, certs) -> None:  # type: ignore[no-untyped-def]
    """The receiver gets the alert as JSON; the HMAC over timestamp and body verifies."""
    outbox.upsert([alert()])
    with https_receiver(certs) as hook:
        n = Notifier(
            outbox,
            settings(webhook_url=hook.url, webhook_secret=SECRET, webhook_ca=str(certs.ca)),
        )
        assert n.deliver_pending() == 1
    (req,) = hook.requests
    body = json.loads(req.body)
    assert body["id"] == alert().id == req.headers["X-Useraudit-Alert-Id"]
    assert body["severity"] == "high" and body["event_ids"] == ["e0a", "e0b"]
    stamp = req.headers["X-Useraudit-Timestamp"]
    assert req.headers["X-Useraudit-Signature"] == signature(SECRET, stamp, req.body)
    assert req.headers["X-Useraudit-Signature"] != signature("wrong", stamp, req.body)
    assert outbox.pending_notifications() == []


def test_webhook_retries_with_backoff_until_the_receiver_answers(outbox, certs) -> None:  # type: ignore[no-untyped-def]
    """500, 502, then 200: delivered on the third attempt after 0.5 s and 1 s backoffs, same id."""
    outbox.upsert([alert()])
    waits: list[float] = []
    with https_receiver(certs) as hook:
        hook.script = [500, 502]
        n = Notifier(
            outbox,
            settings(webhook_url=hook.url, webhook_secret=SECRET, webhook_ca=str(certs.ca)),
            sleep=waits.append,
        )
        assert n.deliver_pending() == 1
    assert waits == [0.5, 1.0]
    assert len({r.headers["X-Useraudit-Alert-Id"] for r in hook.requests}) == 1
    assert len(hook.requests) == 3


def test_a_receiver_down_keeps_the_alert_until_it_recovers(outbox, certs) -> None:  # type: ignore[no-untyped-def]
    """All attempts fail: the alert stays in the outbox; next round, receiver up: delivered once."""
    outbox.upsert([alert()])
    with https_receiver(certs) as hook:
        hook.up = False
        n = Notifier(
            outbox,
            settings(webhook_url=hook.url, webhook_secret=SECRET, webhook_ca=str(certs.ca)),
            sleep=no_sleep,
        )
        assert n.deliver_pending() == 0
        assert [a.id for a in outbox.pending_notifications()] == [alert().id]
        failed = len(hook.requests)
        hook.up = True
        assert n.deliver_pending() == 1
        assert n.deliver_pending() == 0
    assert failed == 4 and len(hook.requests) == 5


def test_an_untrusted_certificate_is_not_delivered_to(outbox, certs) -> None:  # type: ignore[no-untyped-def]
    """Without the test CA the receiver's certificate is refused: the alert waits."""
    outbox.upsert([alert()])
    with https_receiver(certs) as hook:
        n = Notifier(outbox, settings(webhook_url=hook.url, webhook_secret=SECRET), sleep=no_sleep)
        assert n.deliver_pending() == 0
    assert hook.requests == []


def test_email_over_starttls_with_auth(outbox, certs) -> None:  # type: ignore[no-untyped-def]
    """The mail server (STARTTLS and AUTH required) receives one message per alert."""
    outbox.upsert([alert(1), alert(2, severity="medium")])
    with smtp_server(certs) as smtp:
        conf = DetectionSettings.from_dict(
            {
                "accounts": {"acme": {"notify": {"email_to": ["sec@acme.example"]}}},
                "smtp": {
                    "host": smtp.host,
                    "port": smtp.port,
                    "username": smtp.username,
                    "password": smtp.password,
                    "sender": "useraudit@example.com",
                    "ca_file": str(certs.ca),
                },
            }
        )
        assert Notifier(outbox, conf).deliver_pending() == 2
    subjects = sorted(m["Subject"] for m in smtp.messages)
    assert subjects == [
        "[useraudit] HIGH: Successful sign-in right after failed ones (acme)",
        "[useraudit] MEDIUM: Successful sign-in right after failed ones (acme)",
    ]
    assert {m["X-Useraudit-Alert-Id"] for m in smtp.messages} == {alert(1).id, alert(2).id}
    assert all(e.rcpt_tos == ["sec@acme.example"] for e in smtp.envelopes)


def test_wrong_smtp_password_keeps_the_alert(outbox, certs) -> None:  # type: ignore[no-untyped-def]
    """The server refuses the login: nothing is marked notified."""
    outbox.upsert([alert()])
    with smtp_server(certs) as smtp:
        conf = DetectionSettings.from_dict(
            {
                "accounts": {"acme": {"notify": {"email_to": ["sec@acme.example"]}}},
                "smtp": {
                    "host": smtp.host,
                    "port": smtp.port,
                    "username": smtp.username,
                    "password": "wrong",
                    "ca_file": str(certs.ca),
                },
            }
        )
        assert Notifier(outbox, conf).deliver_pending() == 0
    assert smtp.messages == [] and len(outbox.pending_notifications()) == 1


def test_rate_limit_holds_the_rest_for_later(outbox, certs) -> None:  # type: ignore[no-untyped-def]
    """rate_per_hour = 3: five alerts, three sent now, two still waiting."""
    outbox.upsert([alert(i) for i in range(5)])
    with https_receiver(certs) as hook:
        n = Notifier(
            outbox,
            settings(
                webhook_url=hook.url,
                webhook_secret=SECRET,
                webhook_ca=str(certs.ca),
                rate_per_hour=3,
            ),
        )
        assert n.deliver_pending() == 3
        assert n.deliver_pending() == 0
    assert len(hook.requests) == 3 and len(outbox.pending_notifications()) == 2


def test_accounts_without_channels_and_quiet_severities_leave_the_outbox(outbox, certs) -> None:  # type: ignore[no-untyped-def]
    """globex has no channel; acme wants high only: the medium and globex alerts are not sent."""
    outbox.upsert([alert(1, severity="medium"), alert(2, "globex"), alert(3)])
    with https_receiver(certs) as hook:
        n = Notifier(
            outbox,
            settings(
                webhook_url=hook.url,
                webhook_secret=SECRET,
                webhook_ca=str(certs.ca),
                min_severity="high",
            ),
        )
        assert n.deliver_pending() == 3
    assert [json.loads(r.body)["id"] for r in hook.requests] == [alert(3).id]


@pytest.mark.parametrize(
    "notify, message",
    [
        pytest.param(
            {"webhook_url": "http://x/h", "webhook_secret": "s"}, "must be https", id="http"
        ),
        pytest.param({"webhook_url": "https://x/h"}, "needs a webhook_secret", id="no-secret"),
        pytest.param({"email_to": ["a@b"]}, "needs an \\[smtp\\] host", id="no-smtp"),
        pytest.param({"min_severity": "urgent"}, "min_severity", id="severity"),
    ],
)
def test_settings_that_cannot_deliver_are_refused(outbox, notify, message) -> None:  # type: ignore[no-untyped-def]
    """A plain-HTTP webhook, an unsigned one, mail without a server: errors naming the setting."""
    with pytest.raises(SettingsError, match=message):
        Notifier(outbox, settings(**notify))


def test_the_indexer_notifies_as_alerts_arrive(tmp_path: Path, certs: Certificates) -> None:
    """record() → spool → indexer with detection and a webhook configured → the receiver, once."""
    import time

    import useraudit
    from useraudit.detect.pipeline import build_stages
    from useraudit.indexer.shipper import Indexer
    from useraudit.store.sqlite import SQLiteStore

    spool = tmp_path / "spool"
    recorder = useraudit.configure(spool_dir=spool, durability="sync")
    for _ in range(5):
        recorder.record("user.signed_in", outcome="failure", user="u-alice", account="acme")
    recorder.flush()
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    store.install()
    with https_receiver(certs) as hook:
        conf = tmp_path / "detections.toml"
        conf.write_text(
            "[accounts.acme.notify]\n"
            f'webhook_url = "{hook.url}"\nwebhook_secret = "{SECRET}"\n'
            f'webhook_ca = "{certs.ca}"\n'
        )
        stages, notes = build_stages(store, settings_path=conf)
        assert "notifications: on for acme" in notes
        with Indexer(spool, store, stages=stages) as ix:
            ix.drain()
            deadline = time.monotonic() + 10
            while not hook.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            ix.drain()  # nothing new: no second notification
            time.sleep(0.3)
    store.close()
    assert [json.loads(r.body)["rule"] for r in hook.requests] == ["brute_force"]
