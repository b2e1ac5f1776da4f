"""The JSON API, ``/api/v1``: one account's events, read with a scoped token.

``Authorization: Bearer uat_…`` (see :mod:`.api_tokens`). The account is the
token's, never a parameter, so no route, filter or cursor can reach another
account's rows. Filters, query syntax and cursors are the User actions
page's (:class:`~.filters.Filters`): the same parameters mean the same.
Answers use the stored ECS field names. Every error is JSON,
``{"error": {"code": "...", "message": "..."}}``, with a stable ``code``:

=====================  ======  =============================================
code                   status  when
=====================  ======  =============================================
``unauthorized``       401     no token, an unknown, expired or revoked one
``insufficient_scope`` 403     the token lacks the route's scope
``invalid_query``      400     a malformed filter, cursor or page size
``not_found``          404     no such event in this account, or no route
``rate_limited``       429     more than the token's requests per minute
``store_unavailable``  503     the store cannot answer now
=====================  ======  =============================================
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, g, request
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from useraudit.store.base import StoreError
from useraudit.store.completeness import complete_up_to
from useraudit.store.query import FACETS, QueryError, SearchRequest, decode_cursor

from . import resources
from .api_tokens import ApiToken, TokenStore
from .filters import Filters
from .metrics import SEARCH_SECONDS

DEFAULT_RATE = "600 per minute"
# Threads that read the completeness mark while the request thread searches.
_MARK_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="useraudit-api-mark")
OPENAPI = Path(__file__).with_name("openapi.json")  # committed; tests/webapp/test_openapi.py


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def reply(payload: dict[str, Any], status: int = 200) -> Response:
    # orjson: a page of 100 documents serialises in a fraction of the time
    # Flask's json provider (stdlib, sorted keys) takes.
    return Response(orjson.dumps(payload, default=str), status=status, mimetype="application/json")


def error(status: int, code: str, message: str) -> Any:
    response = reply({"error": {"code": code, "message": message}}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="useraudit"'
    return response


def tokens() -> TokenStore:
    ext = current_app.extensions["useraudit"]
    if ext.get("api_tokens") is None:
        # A host that mounts the UI without the API still has the tokens page.
        path = current_app.config.get("USERAUDIT_API_TOKENS") or _default_tokens_path()
        ext["api_tokens"] = TokenStore(path)
    return ext["api_tokens"]


def _authenticate(scope: str | None) -> ApiToken:
    header = request.headers.get("Authorization", "")
    scheme, _, text = header.partition(" ")
    if scheme.lower() != "bearer" or not text.strip():
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>")
    token = tokens().authenticate(text.strip(), request.remote_addr or "")
    if token is None:
        raise ApiError(401, "unauthorized", "the token is unknown, expired or revoked")
    if scope is not None and scope not in token.scopes:
        raise ApiError(403, "insufficient_scope", f"this token lacks the {scope} scope")
    g.api_token = token
    return token


def _limited(token: ApiToken) -> None:
    from limits import parse

    limit = current_app.config.get("USERAUDIT_API_RATE", DEFAULT_RATE)
    if not resources.limiter().limiter.hit(parse(limit), "api-token", token.id):
        raise ApiError(429, "rate_limited", f"at most {limit} per token")


def build_blueprint() -> Blueprint:
    bp = Blueprint("useraudit_api", __name__)

    @bp.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return error(exc.status, exc.code, exc.message)

    @bp.errorhandler(QueryError)
    def _query_error(exc: QueryError) -> Any:
        return error(400, "invalid_query", str(exc))

    @bp.errorhandler(StoreError)
    def _store_error(exc: StoreError) -> Any:
        current_app.logger.warning("api: store error: %s", exc)
        return error(503, "store_unavailable", "the event store cannot answer now; try again")

    @bp.errorhandler(RateLimitExceeded)
    def _rate(exc: RateLimitExceeded) -> Any:
        return error(429, "rate_limited", "too many requests for this token")

    @bp.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.code or 500, "bad_request")
        return error(exc.code or 400, code, exc.description or code)

    def _filters() -> Filters:
        args = request.args.copy()
        args.pop("cursor", None)
        return Filters.parse(args, current_app.config["USERAUDIT_DEFAULT_TZ"])

    @bp.get("/events")
    def events() -> Any:
        token = _authenticate("events:read")
        _limited(token)
        filters = _filters()
        cursor = request.args.get("cursor") or None
        if cursor:
            decode_cursor(cursor)
        req = events_request(filters, token.account, cursor)
        store = resources.store()
        # The completeness mark is read beside the search, not after it.
        mark_job = _MARK_POOL.submit(complete_up_to, store, token.account)
        with SEARCH_SECONDS.labels("api").time():
            page = store.search(req)
        mark = mark_job.result()
        return reply(
            {
                "account": token.account,
                "total": page.total,
                "events": [_public(hit) for hit in page.hits],
                "next_cursor": page.next_cursor,
                # Every event of the account acknowledged before this time is in the answer
                # (docs/integrity.md, completeness mark); null until an indexer published one.
                "complete_up_to": mark.isoformat() if mark else None,
            }
        )

    @bp.get("/facets")
    def facets() -> Any:
        token = _authenticate("events:read")
        _limited(token)
        filters = _filters()
        req = SearchRequest(filters.query(token.account), size=1, facets=tuple(FACETS))
        with SEARCH_SECONDS.labels("api").time():
            page = resources.store().search(req)
        return reply(
            {
                "account": token.account,
                "total": page.total,
                "facets": {
                    name: [{"value": v, "count": n} for v, n in values]
                    for name, values in page.facets.items()
                },
            }
        )

    @bp.get("/events/<event_id>")
    def event(event_id: str) -> Any:
        token = _authenticate("events:read")
        _limited(token)
        doc = resources.store().get([event_id[:256]]).get(event_id[:256])
        if doc is None or doc.get("organization.id") != token.account:
            # Another account's event is "not found" too: no oracle for ids.
            raise ApiError(404, "not_found", "no such event in this account")
        return reply({"event": _public(doc)})

    @bp.get("/alerts")
    def alerts() -> Any:
        token = _authenticate("alerts:read")
        _limited(token)
        from useraudit.store.alerts import STATUSES

        from .security import alerts_store

        statuses = tuple(v for v in request.args.getlist("status") if v)
        unknown = set(statuses) - set(STATUSES)
        if unknown:
            raise QueryError(f"status must be among {', '.join(STATUSES)}")
        found = alerts_store().list_alerts(token.account, statuses=statuses, limit=500)
        return reply({"account": token.account, "alerts": [a.as_dict() for a in found]})

    @bp.get("/alerts/<alert_id>")
    def alert(alert_id: str) -> Any:
        token = _authenticate("alerts:read")
        _limited(token)
        from .security import alerts_store

        found = alerts_store().get(token.account, alert_id[:256])
        if found is None or found.account != token.account:
            raise ApiError(404, "not_found", "no such alert in this account")
        return reply({"alert": found.as_dict()})

    @bp.get("/openapi.json")
    def openapi() -> Any:
        return current_app.response_class(OPENAPI.read_bytes(), mimetype="application/json")

    @bp.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown(rest: str) -> Any:
        # Under /api/v1 even a wrong address answers in JSON, and only to a token.
        _authenticate(None)
        raise ApiError(404, "not_found", "no such API route")

    return bp


def events_request(filters: Filters, account: str, cursor: str | None) -> SearchRequest:
    """What ``GET /events`` asks the store for (bench.api sends it raw)."""
    return SearchRequest(
        filters.query(account), size=filters.size, cursor=cursor, facets=(), highlight=False
    )


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def install(app: Flask) -> None:
    app.config.setdefault("USERAUDIT_API_TOKENS", str(_default_tokens_path()))
    app.register_blueprint(build_blueprint(), url_prefix="/api/v1")


def _default_tokens_path() -> Any:
    from useraudit.config import home

    return home() / "api_tokens.db"
