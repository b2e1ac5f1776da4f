"""Realistic secret-bearing inputs for the masking tests.

Each case is what a host app hands to ``record()`` (or ``useraudit.diff()``)
when it audits a password change, a token rotation, an integration's
settings or a failed webhook, with the secret values it must never store.
Secrets are unique per case (``…-<n>-…``) so a leak names its case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from useraudit.middleware.recorder import diff


@dataclass
class SecretCase:
    id: str
    secrets: list[str]
    params: Any = None
    comments: str | None = None
    reason: str | None = None
    keep: list[str] = field(default_factory=list)  # must survive (ids, not secrets)

    def record_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.params is not None:
            kw["params"] = self.params
        if self.comments is not None:
            kw["comments"] = self.comments
        if self.reason is not None:
            kw["reason"] = self.reason
        return kw


# Form fields, settings and header names as host apps really spell them.
SECRET_KEYS = [
    "password",
    "Password",
    "PASSWORD",
    "password_confirmation",
    "passwordConfirmation",
    "password2",
    "new_password_1",
    "newPassword",
    "old-password",
    "current.password",
    "user[password]",
    "passwd",
    "db_passwd",
    "pwd",
    "pass",
    "passphrase",
    "ssh_passphrase",
    "secret",
    "client_secret",
    "clientSecret",
    "SECRET_KEY",
    "webhook_secret",
    "token",
    "access_token",
    "accessToken",
    "refresh_token",
    "botToken",
    "webhookToken",
    "id_token",
    "csrf_token",
    "bearer_token",
    "github_token",
    "api_key",
    "apiKey",
    "API-KEY",
    "X-Api-Key",
    "apikey",
    "private_key",
    "privateKey",
    "credential",
    "credentials",
    "aws_secret_access_key",
    "access_key",
    "encryption_key",
    "signing_key",
    "session",
    "session_id",
    "sessionId",
    "JSESSIONID",
    "cookie",
    "Set-Cookie",
    "authorization",
    "Proxy-Authorization",
    "auth",
    "otp",
    "totp_code",
    "pin",
    "cvv",
    "signature",
    "X-Amz-Signature",
    "jwt",
]


def _text_cases() -> list[tuple[str, str, str]]:
    """(id, text template with {s} for the secret, where: comments or reason)."""
    return [
        ("url-token", "Reset link sent: https://app.example/reset?token={s} (valid 1h)", "c"),
        ("url-api-key", "Webhook failed: GET https://api.example/v1/items?api_key={s}", "c"),
        ("url-second-param", "callback https://x.example/cb?state=ok&access_token={s}&n=1", "c"),
        ("url-fragment", "redirected to https://app.example/#access_token={s}&type=bearer", "c"),
        ("url-camel", "POST https://hooks.example/notify?botToken={s}", "c"),
        ("url-sig", "shared https://files.example/a.pdf?se=2026&sig={s}", "c"),
        ("url-amz", "GET /b/o?X-Amz-Credential=AKI&X-Amz-Signature={s}", "c"),
        ("note-colon-eq", "note:password={s}", "c"),
        ("yaml", "config changed\npassword: {s}\nport: 5432", "c"),
        ("spaced-eq", "db_password = {s}", "c"),
        ("quoted-single", "set password='{s} with spaces' for bot", "c"),
        ("quoted-double", 'set secret="{s} and more words" ok', "c"),
        ("json", 'payload {{"username": "ann", "password": "{s} x y"}}', "c"),
        ("json-camel", '{{"webhookToken":"{s}","enabled":true}}', "c"),
        ("header-bearer", "Authorization: Bearer {s}", "c"),
        ("header-basic", "sent Authorization: Basic {s}", "c"),
        ("bare-bearer", "retried with bearer {s}", "c"),
        ("api-key-space", "api key: {s}", "c"),
        ("api-key-dash", "API-Key={s}", "c"),
        ("semicolon", "secret={s};region=eu", "c"),
        ("cookie-header", "Cookie: sessionid={s}", "c"),
        ("php-arrow", "'password' => '{s}'", "c"),
        ("reason-url", "upstream 401 for https://api.example/x?apikey={s}", "r"),
        ("reason-pair", "login failed, token={s}", "r"),
        ("reason-quoted", 'bad passphrase "{s} words"', "r"),
        ("reason-header", "proxy said Proxy-Authorization: Basic {s}", "r"),
    ]


def _shaped_secrets(n: int) -> list[tuple[str, str]]:
    """(id, secret) recognisable by shape alone, whatever surrounds it."""
    pad = f"{n:04d}"
    return [
        ("jwt", f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ{pad}In0.c2lnbmF0dXJl{pad}"),
        ("github", f"ghp_{pad}aBcDeFgHiJkLmNoPqRsTuVwXyZ01"),
        ("github-pat", f"github_pat_{pad}ABCDEFGHIJ_abcdefghijklmnop"),
        ("slack", f"xoxb-{pad}-2222222222-abcdefABCDEF"),
        ("aws", f"AKIA{pad}ABCDEFGHIJKL"),
        ("stripe", f"sk_live_{pad}abcdefghijklmnopqrstuv"),
        ("google", f"AIza{pad}abcdefghijklmnopqrstuvwxyz01234"),
    ]


def cases() -> list[SecretCase]:
    out: list[SecretCase] = []
    n = 0

    def secret(tag: str) -> str:
        nonlocal n
        n += 1
        return f"Sx{n:03d}-{tag}-q7Zp"

    for key in SECRET_KEYS:
        s = secret("key")
        out.append(SecretCase(f"param-{key}", [s], params={key: s, "name": "Support bot"}))
    # Nested shapes: forms, header maps, field lists, pairs.
    s1, s2, s3 = secret("nested"), secret("nested"), secret("nested")
    out.append(
        SecretCase(
            "nested-user-credentials",
            [s1, s2],
            params={"user": {"name": "ann", "credentials": {"password": s1, "otp": s2}}},
        )
    )
    out.append(
        SecretCase(
            "headers-map",
            [s1, s2, s3],
            params={
                "headers": {
                    "Authorization": f"Bearer {s1}",
                    "Cookie": f"sid={s2}",
                    "X-Api-Key": s3,
                    "Accept": "application/json",
                }
            },
        )
    )
    s4, s5 = secret("pairs"), secret("pairs")
    out.append(
        SecretCase(
            "headers-as-pairs",
            [s4, s5],
            params={"headers": [["Authorization", f"Basic {s4}"], ["X-Auth-Token", s5]]},
        )
    )
    s6 = secret("record")
    out.append(
        SecretCase(
            "form-field-records",
            [s6],
            params={
                "fields": [{"name": "password", "value": s6}, {"name": "email", "value": "a@b"}]
            },
        )
    )
    s7 = secret("list")
    out.append(
        SecretCase("list-of-settings", [s7], params={"bots": [{"id": "b1", "botToken": s7}]})
    )
    s8 = secret("url-in-param")
    out.append(
        SecretCase(
            "url-value-in-innocent-key",
            [s8],
            params={"webhook_url": f"https://hooks.example/in?token={s8}"},
        )
    )
    s9 = secret("dsn")
    out.append(
        SecretCase(
            "dsn-in-param", [s9], params={"database_url": f"postgres://app:{s9}@db.internal/app"}
        )
    )
    pem_body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" + f"{n:04d}" + "AgEAAoIBAQC7"
    out.append(
        SecretCase(
            "pem-in-param",
            [pem_body],
            params={"tls": f"-----BEGIN PRIVATE KEY-----\n{pem_body}\n-----END PRIVATE KEY-----"},
        )
    )
    # useraudit.diff() of settings changes.
    for key in (
        "password2",
        "botToken",
        "webhookToken",
        "api_key",
        "clientSecret",
        "smtp.password",
    ):
        old, new = secret("diff-old"), secret("diff-new")
        comments, params = diff({key: old, "name": "A"}, {key: new, "name": "B"})
        out.append(SecretCase(f"diff-{key}", [old, new], params=params, comments=comments))
    old, new = secret("diff-url"), secret("diff-url")
    comments, params = diff(
        {"callback": f"https://x.example/cb?access_token={old}"},
        {"callback": f"https://x.example/cb?access_token={new}"},
    )
    out.append(SecretCase("diff-url-value", [old, new], params=params, comments=comments))
    # Free text: comments and reasons.
    for case_id, template, where in _text_cases():
        s = secret(case_id)
        text = template.format(s=s)
        if where == "c":
            out.append(SecretCase(f"comment-{case_id}", [s], comments=text))
        else:
            out.append(SecretCase(f"reason-{case_id}", [s], reason=text))
    for case_id, shaped in _shaped_secrets(n):
        out.append(SecretCase(f"shape-{case_id}", [shaped], comments=f"pasted {shaped} by mistake"))
    # Identifiers that name a secret but are not one: kept.
    out.append(
        SecretCase(
            "identifiers-kept",
            [],
            params={
                "token_id": "tok-keep-1",
                "session_count": 4,
                "password_changed_at": "2026-01-02T03:04",
                "api_key_name": "ci-key-keep",
                "token_type": "bearer",
            },
            comments="rotated token_id=tok-keep-2 audit.token.id: tok-keep-3",
            keep=["tok-keep-1", "tok-keep-2", "tok-keep-3", "ci-key-keep", "2026-01-02T03:04"],
        )
    )
    return out
