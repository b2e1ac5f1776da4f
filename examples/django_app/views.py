"""Views of the Django example. Sign-in/out come from django.contrib.auth signals;
the rest from ``useraudit.record`` and the capture rules below."""

from __future__ import annotations

import json
from typing import Any

from demo_accounts import new_api_token, unsign
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

import useraudit
from useraudit.middleware import context as audit_context
from useraudit.middleware.django import IMPERSONATOR_SESSION_KEY
from useraudit.middleware.rules import Rule, Rules

RULES = Rules(
    [
        Rule("DELETE", "/tokens/{token_id}", "token.deleted"),
        Rule("GET", "/projects/{project}/export", "bot_project.exported"),
    ]
)


class _Acc:
    """What demo_accounts.new_api_token needs from a user."""

    def __init__(self, user: User) -> None:
        self.id = str(user.pk)


def _json(request: HttpRequest) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _needs_login(view: Any) -> Any:
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return JsonResponse({"error": "sign in"}, status=401)
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapper)


@csrf_exempt
def login_view(request: HttpRequest) -> HttpResponse:
    data = _json(request)
    user = authenticate(
        request, username=str(data.get("username", "")), password=str(data.get("password", ""))
    )
    if user is None:  # user_login_failed → user.signed_in / failure
        return JsonResponse({"error": "invalid credentials"}, status=401)
    login(request, user)  # user_logged_in → user.signed_in
    return JsonResponse({"ok": True})


@_needs_login
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)  # user_logged_out → user.signed_out
    return JsonResponse({"ok": True})


@_needs_login
def profile(request: HttpRequest) -> HttpResponse:
    user = request.user
    new = str(_json(request).get("full_name", ""))
    comments, params = useraudit.diff({"full_name": user.get_full_name()}, {"full_name": new})
    useraudit.record("user.profile_updated", comments=comments, params=params)
    return JsonResponse({"ok": True})


@_needs_login
def password(request: HttpRequest) -> HttpResponse:
    data = _json(request)
    if not request.user.check_password(str(data.get("old_password", ""))):
        return JsonResponse({"error": "wrong password"}, status=403)
    # A real app would set_password() here; the example keeps its fixtures.
    useraudit.record(
        "user.password_changed",
        params={"old_password": data.get("old_password"), "new_password": data.get("new_password")},
    )
    return JsonResponse({"ok": True})


@_needs_login
def roles(request: HttpRequest, username: str) -> HttpResponse:
    if not request.user.is_staff:
        return JsonResponse({"error": "forbidden"}, status=403)
    target = User.objects.filter(username=username).first()
    if target is None:
        return JsonResponse({"error": "no such user"}, status=404)
    roles = [str(r) for r in _json(request).get("roles", [])]
    useraudit.record("user.roles_updated", target_user=target, params={"roles": roles})
    return JsonResponse({"ok": True})


@_needs_login
def create_token(request: HttpRequest) -> HttpResponse:
    project = _json(request).get("project")
    tid, secret = new_api_token(_Acc(request.user), project)
    useraudit.record("token.created", token_id=tid, project=project, params={"token": secret})
    return JsonResponse({"id": tid, "token": secret})


@_needs_login
def refresh_token(request: HttpRequest, tid: str) -> HttpResponse:
    _, secret = new_api_token(_Acc(request.user), None)
    useraudit.record("token.refreshed", token_id=tid)
    return JsonResponse({"id": tid, "token": secret})


@_needs_login
def delete_token(request: HttpRequest, tid: str) -> HttpResponse:
    if request.method != "DELETE":
        return JsonResponse({"error": "method"}, status=405)
    return JsonResponse({"ok": True})  # recorded by the rule


@csrf_exempt
def export(request: HttpRequest, project: str) -> HttpResponse:
    # Token auth inside the view, the way DRF does it: request.user is set
    # here, after every middleware ran; the audit middleware reads it when
    # the response starts.
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    payload = unsign(auth[7:]) if auth.startswith("Bearer ") else None
    if payload and "tid" in payload:
        request.user = User.objects.get(pk=int(payload["uid"]))
    if not request.user.is_authenticated:
        return JsonResponse({"error": "sign in"}, status=401)

    def rows() -> Any:
        yield "id,name\n"
        for i in range(100):
            yield f"{i},row {i} of {project}\n"

    return StreamingHttpResponse(rows(), content_type="text/csv")


@_needs_login
def impersonate(request: HttpRequest, username: str) -> HttpResponse:
    admin = request.user
    if not admin.is_staff:
        return JsonResponse({"error": "forbidden"}, status=403)
    target = User.objects.filter(username=username).first()
    if target is None:
        return JsonResponse({"error": "no such user"}, status=404)
    impersonator = {
        "id": str(admin.pk),
        "name": admin.username,
        "email": admin.email,
        "full_name": admin.get_full_name(),
    }
    audit_context.set_impersonator(impersonator)  # for this request's own sign-in event
    login(request, target, backend="django.contrib.auth.backends.ModelBackend")
    # After login(): switching users flushes the session.
    request.session[IMPERSONATOR_SESSION_KEY] = impersonator
    return JsonResponse({"ok": True})


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("host bug")
