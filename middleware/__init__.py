"""Capture: record(), WSGI/ASGI middleware, structlog processors, framework integrations."""
