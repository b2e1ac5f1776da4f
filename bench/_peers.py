"""The middleware an app would otherwise install, for ``bench.middleware``: same hello world.

* ``*_quiet``: useraudit's middleware on a request that records nothing (a
  capture rule exists, for another route): the common request of a real app.
* ``*_sentry_off`` / ``*_sentry_on``: sentry-sdk's WSGI/ASGI middleware with
  tracing off, and with every request traced; envelopes go to a transport
  that drops them, so nothing leaves the machine.
* ``*_otel``: OpenTelemetry's WSGI/ASGI middleware, one span per request,
  a BatchSpanProcessor into an exporter that drops the spans.

Each factory runs in the server's worker (no ``--preload``), so the SDKs'
background threads start after the fork, as in production.
"""

from __future__ import annotations

from typing import Any

from bench._hello import _recorder, asgi_bare, wsgi_bare
from useraudit.middleware.asgi import AuditMiddleware as ASGIAudit
from useraudit.middleware.rules import Rule, Rules
from useraudit.middleware.wsgi import AuditMiddleware as WSGIAudit

# A rule for another route: the middleware checks it and records nothing.
QUIET_RULES = Rules([Rule("POST", "/tokens/{token_id}", "token.created")])


def wsgi_quiet() -> Any:
    return WSGIAudit(wsgi_bare, recorder=_recorder(), rules=QUIET_RULES)


def asgi_quiet() -> Any:
    return ASGIAudit(asgi_bare, recorder=_recorder(), rules=QUIET_RULES)


def _sentry(traces: bool) -> None:
    import sentry_sdk
    from sentry_sdk.transport import Transport

    class DropEnvelopes(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            return None

    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",
        transport=DropEnvelopes,
        traces_sample_rate=1.0 if traces else None,
        auto_enabling_integrations=False,
    )


def wsgi_sentry_off() -> Any:
    from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware

    _sentry(traces=False)
    return SentryWsgiMiddleware(wsgi_bare)


def wsgi_sentry_on() -> Any:
    from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware

    _sentry(traces=True)
    return SentryWsgiMiddleware(wsgi_bare)


def asgi_sentry_off() -> Any:
    from sentry_sdk.integrations.asgi import SentryAsgiMiddleware

    _sentry(traces=False)
    return SentryAsgiMiddleware(asgi_bare)


def asgi_sentry_on() -> Any:
    from sentry_sdk.integrations.asgi import SentryAsgiMiddleware

    _sentry(traces=True)
    return SentryAsgiMiddleware(asgi_bare)


def _tracer_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropSpans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    return provider


def wsgi_otel() -> Any:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(wsgi_bare, tracer_provider=_tracer_provider())


def asgi_otel() -> Any:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(asgi_bare, tracer_provider=_tracer_provider())
