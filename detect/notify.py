"""Alert notifications per account: an HTTPS webhook and e-mail over SMTP, rate-limited.

The store's notification outbox (:meth:`DetectionStore.pending_notifications`)
is the queue: an alert is stored ``notified=False`` when it is created and
marked notified once every channel of its account took it. A crash or a
receiver that is down leaves it in the outbox, and the next round sends it
again — at least once, with the same alert id, so receivers drop repeats.

Settings (``[accounts.<id>.notify]`` and ``[smtp]`` in the detection settings):

``webhook_url``      ``https://…``; the alert as JSON, POSTed
``webhook_secret``   HMAC-SHA256 key for the signature header
``webhook_ca``       CA bundle to verify the receiver with (default: the system's)
``email_to``         list of recipients
``min_severity``     ``low`` (default), ``medium`` or ``high``: quieter alerts are not sent
``rate_per_hour``    at most this many notifications per account and hour (default 30);
                     the rest wait in the outbox for the next hour

Webhook request::

    POST <webhook_url>
    Content-Type: application/json
    X-Useraudit-Alert-Id: <alert id>           stable: the same alert is the same id
    X-Useraudit-Timestamp: <unix seconds>
    X-Useraudit-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

A 2xx answer is delivery. Anything else, or no answer, is retried with
exponential backoff (0.5 s, 1 s, 2 s…, ``webhook_attempts`` in all), then the
alert stays in the outbox for the next round.

``[smtp]``: ``host``, ``port`` (587), ``starttls`` (true), ``username``,
``password``, ``sender``, ``ca_file``, ``timeout``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from useraudit.stages import Stage
from useraudit.store.alerts import SEVERITIES, Alert, DetectionStore
from useraudit.store.base import StoreError

from .settings import DetectionSettings, SettingsError

log = logging.getLogger("useraudit.detect.notify")

SIGNATURE_HEADER = "X-Useraudit-Signature"
TIMESTAMP_HEADER = "X-Useraudit-Timestamp"
ID_HEADER = "X-Useraudit-Alert-Id"


class DeliveryError(RuntimeError):
    """A channel did not take the alert; the message says which and why."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value; receivers compute the same and compare."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def payload(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "account": alert.account,
        "rule": alert.rule,
        "severity": alert.severity,
        "title": alert.title,
        "subject": alert.subject,
        "user_id": alert.user_id,
        "first_seen": alert.first_seen,
        "last_seen": alert.last_seen,
        "count": alert.count,
        "event_ids": alert.event_ids,
        "status": alert.status,
        "details": alert.details,
    }


def check_notify_settings(settings: DetectionSettings) -> None:
    """Refuse settings that could never deliver (plain-HTTP webhooks, mail without a server)."""
    for account, conf in settings.accounts.items():
        notify = conf.get("notify") or {}
        url = notify.get("webhook_url")
        if url and urlsplit(str(url)).scheme != "https":
            raise SettingsError(
                f"accounts.{account}.notify.webhook_url must be https://, not {url}"
            )
        if url and not notify.get("webhook_secret"):
            raise SettingsError(f"accounts.{account}.notify: webhook_url needs a webhook_secret")
        if notify.get("email_to") and not settings.smtp.get("host"):
            raise SettingsError(f"accounts.{account}.notify.email_to needs an [smtp] host")
        if notify.get("min_severity", "low") not in SEVERITIES:
            raise SettingsError(
                f"accounts.{account}.notify.min_severity must be one of {', '.join(SEVERITIES)}"
            )


class Notifier:
    """Delivers what waits in the outbox; :meth:`deliver_pending` is one round."""

    def __init__(
        self,
        store: DetectionStore,
        settings: DetectionSettings,
        *,
        webhook_attempts: int = 4,
        backoff_base: float = 0.5,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_notify_settings(settings)
        self.store = store
        self.settings = settings
        self.webhook_attempts = webhook_attempts
        self.backoff_base = backoff_base
        self.sleep = sleep
        self.clock = clock
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.sent: dict[str, int] = {"webhook": 0, "email": 0, "failed": 0, "held": 0}

    def deliver_pending(self, limit: int = 200) -> int:
        """Send every pending alert that may go now; returns how many left the outbox."""
        done: list[Alert] = []
        for alert in self.store.pending_notifications(limit):
            notify = self.settings.notify(alert.account)
            wanted = bool(notify.get("webhook_url") or notify.get("email_to"))
            floor = SEVERITIES.index(notify.get("min_severity", "low"))
            if not wanted or SEVERITIES.index(alert.severity) < floor:
                done.append(alert)  # nothing to send for this account or severity
                continue
            rate = parse_limit(f"{int(notify.get('rate_per_hour', 30))}/hour")
            if not self._limiter.test(rate, alert.account):
                self.sent["held"] += 1
                continue  # stays in the outbox until the hour allows it
            try:
                self._send(alert, notify)
            except DeliveryError as exc:
                self.sent["failed"] += 1
                log.warning("notify: alert %s not delivered: %s", alert.id, exc)
                continue
            self._limiter.hit(rate, alert.account)
            done.append(alert)
        if done:
            self.store.mark_notified(done)
        return len(done)

    def _send(self, alert: Alert, notify: Mapping[str, Any]) -> None:
        if notify.get("webhook_url"):
            self.send_webhook(alert, notify)
            self.sent["webhook"] += 1
        if notify.get("email_to"):
            self.send_email(alert, notify)
            self.sent["email"] += 1

    # -- channels --------------------------------------------------------------------

    def send_webhook(self, alert: Alert, notify: Mapping[str, Any]) -> None:
        url = str(notify["webhook_url"])
        body = json.dumps(payload(alert), ensure_ascii=False, sort_keys=True).encode()
        context = ssl.create_default_context(cafile=notify.get("webhook_ca"))
        last = ""
        for attempt in range(self.webhook_attempts):
            if attempt:
                self.sleep(self.backoff_base * 2 ** (attempt - 1))
            stamp = str(int(self.clock()))
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "useraudit-alerts",
                    ID_HEADER: alert.id,
                    TIMESTAMP_HEADER: stamp,
                    SIGNATURE_HEADER: signature(str(notify["webhook_secret"]), stamp, body),
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=10, context=context) as response:
                    response.read()
                    return
            except urllib.error.HTTPError as exc:
                exc.close()
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
        raise DeliveryError(f"webhook {url}: {last} after {self.webhook_attempts} attempts")

    def send_email(self, alert: Alert, notify: Mapping[str, Any]) -> None:
        smtp = self.settings.smtp
        message = EmailMessage()
        message["Subject"] = (
            f"[useraudit] {alert.severity.upper()}: {alert.title} ({alert.account})"
        )
        message["From"] = str(smtp.get("sender") or "useraudit@localhost")
        message["To"] = ", ".join(notify["email_to"])
        message["X-Useraudit-Alert-Id"] = alert.id
        details = "\n".join(f"  {k}: {v}" for k, v in alert.details.items())
        message.set_content(
            f"{alert.title}\n\n"
            f"account:   {alert.account}\n"
            f"rule:      {alert.rule}\n"
            f"severity:  {alert.severity}\n"
            f"subject:   {alert.subject}\n"
            f"events:    {alert.count} ({alert.first_seen} to {alert.last_seen})\n"
            f"alert id:  {alert.id}\n\n{details}\n"
        )
        host, port = str(smtp["host"]), int(smtp.get("port", 587))
        context = ssl.create_default_context(cafile=smtp.get("ca_file"))
        try:
            with smtplib.SMTP(host, port, timeout=float(smtp.get("timeout", 20))) as client:
                client.ehlo()
                if smtp.get("starttls", True):
                    client.starttls(context=context)
                    client.ehlo()
                if smtp.get("username"):
                    client.login(str(smtp["username"]), str(smtp.get("password", "")))
                client.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"e-mail via {host}:{port}: {exc}") from exc


class NotifierThread(Stage):
    """Runs :class:`Notifier` rounds in the indexer process: when woken, and every ``poll`` s.

    An indexer stage only for its lifetime (it starts with the indexer and
    :meth:`close` stops it); the engine's ``on_alert`` calls :meth:`wake`.
    """

    name = "notify"

    def __init__(self, notifier: Notifier, poll: float = 30.0) -> None:
        self.notifier = notifier
        self.poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="useraudit-notify", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.notifier.deliver_pending()
            except StoreError as exc:
                log.warning("notify: outbox unavailable (%s); next round later", exc)
            except Exception:  # noqa: BLE001 - a notifier bug must not take the indexer down
                log.exception("notify: round failed")

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
