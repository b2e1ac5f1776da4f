"""record(): masking before the spool, context filling, the settings diff helper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from useraudit.middleware import context
from useraudit.middleware.masking import MASK, Masker
from useraudit.middleware.recorder import Recorder, diff, new_event_id
from useraudit.spool import iter_all

SECRETS = [
    "hunter2-password",
    "sk_live_abcdef123456",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX2hlcmU",
]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"password": SECRETS[0]}, id="password-key"),
        pytest.param(
            {"new_password": SECRETS[0], "old_password": SECRETS[0]}, id="suffix-password"
        ),
        pytest.param({"API-Key": SECRETS[1]}, id="api-key-any-case"),
        pytest.param(
            {"headers": {"Authorization": f"Bearer {SECRETS[1]}"}}, id="nested-authorization"
        ),
        pytest.param({"items": [{"client_secret": SECRETS[1]}]}, id="secret-in-list"),
        pytest.param(
            {"note": f"login with password={SECRETS[0]} please"}, id="secret-in-free-text"
        ),
        pytest.param({"jwt_blob": SECRETS[2]}, id="jwt-shaped-value"),
        pytest.param({"access_token": SECRETS[1]}, id="access-token"),
        pytest.param({"cookie": f"session={SECRETS[1]}"}, id="cookie"),
    ],
)
def test_secrets_never_reach_the_spool_bytes(spool_dir: Path, params: dict) -> None:
    """Whatever shape a secret arrives in, the bytes on disk do not contain it."""
    rec = Recorder(spool_dir, durability="sync")
    rec.record(
        "environment_variable.updated", account="a", params=params, comments=json.dumps(params)
    )
    rec.close()
    raw = b"".join(
        spool_dir.joinpath(p).read_bytes() for p in [q.name for q in spool_dir.glob("*.seg")]
    )
    for secret in SECRETS:
        assert secret.encode() not in raw
    assert MASK.encode() in raw


def test_identifiers_that_name_a_secret_are_kept() -> None:
    """token_id and similar identifiers are audit data, not secrets, and stay readable."""
    masked = Masker().params(
        {"token_id": "tok-1", "password_changed_at": "2026-01-01", "tokens_count": 3}
    )
    assert masked == {"token_id": "tok-1", "password_changed_at": "2026-01-01", "tokens_count": 3}


def test_extra_patterns_are_configurable(spool_dir: Path) -> None:
    """Host-specific key and value patterns are masked too."""
    rec = Recorder(
        spool_dir,
        durability="sync",
        masker=Masker(extra_keys=[r"^ssn$"], extra_values=[r"\bACCT-\d+\b"]),
    )
    rec.record(
        "user.profile_updated",
        account="a",
        params={"ssn": "123-45-6789", "note": "acct ACCT-998877"},
    )
    rec.close()
    (event,) = [json.loads(p) for p in iter_all(spool_dir)]
    assert event["audit.params"] == {"ssn": MASK, "note": f"acct {MASK}"}


def test_request_context_fills_the_event_and_explicit_arguments_win(spool_dir: Path) -> None:
    """Who/where come from the bound request; an explicit user overrides the context's."""
    rec = Recorder(spool_dir, durability="sync")
    token = context.current.set(
        context.RequestContext(
            request_id="r1",
            client_ip="203.0.113.9",
            user_agent="curl/8",
            account_id="acc",
            user={"id": "u1", "name": "ann"},
            impersonator={"id": "admin"},
        )
    )
    try:
        rec.record("user.signed_in")
        rec.record("user.signed_in", user={"id": "u2"}, account="other")
    finally:
        context.current.reset(token)
    rec.close()
    first, second = [json.loads(p) for p in iter_all(spool_dir)]
    assert first["user.id"] == "u1" and first["audit.impersonator.id"] == "admin"
    assert first["source.address"] == "203.0.113.9" and first["http.request.id"] == "r1"
    assert second["user.id"] == "u2" and second["organization.id"] == "other"
    assert "user.name" not in second


def test_users_given_as_objects_are_understood() -> None:
    """A Django/Flask-style user object becomes id, name, email and full name."""

    class User:
        pk = 7
        username = "ann"
        email = "ann@example.com"

        def get_full_name(self) -> str:
            return "Ann Example"

    assert context.person(User()) == {
        "id": "7",
        "name": "ann",
        "email": "ann@example.com",
        "full_name": "Ann Example",
    }
    assert context.person("u1") == {"id": "u1"}
    assert context.person(None) is None


def test_diff_describes_a_settings_change_and_hides_secret_values() -> None:
    """diff() names what changed, from and to, and only says 'changed' for secrets."""
    comments, params = diff(
        {"name": "Support", "ttl": 5, "api_key": "old-secret", "legacy": True},
        {"name": "Sales", "ttl": 5, "api_key": "new-secret", "tags": ["x"]},
    )
    assert comments == (
        'api_key: changed; legacy: removed (was true); name: "Support" → "Sales"; tags: added ["x"]'
    )
    assert params["name"] == {"from": "Support", "to": "Sales"}
    assert params["api_key"] == {"changed": True}
    assert "secret" not in comments + json.dumps(params)


def test_event_ids_sort_by_creation_time() -> None:
    """Ids start with the millisecond clock, so later ids sort after earlier ones."""
    import time

    a = new_event_id()
    time.sleep(0.002)
    b = new_event_id()
    assert len(a) == 32 and a < b


def test_oversized_params_are_replaced_by_a_note_not_lost(spool_dir: Path) -> None:
    """An event whose params run to megabytes is still spooled, its params replaced
    by a sized note and flagged."""
    from useraudit.indexer.enrich import Enricher

    rec = Recorder(spool_dir, durability="sync")
    event_id = rec.record(
        "bot_project.imported", account="a", params={"blob": "x" * (20 * 1024 * 1024)}
    )
    rec.close()
    assert event_id is not None
    (raw,) = [json.loads(p) for p in iter_all(spool_dir)]
    assert raw["event.id"] == event_id
    assert raw["audit.params"]["truncated"].startswith("params of ")
    assert "truncated" in Enricher()(raw)["audit.flags"]


@pytest.mark.parametrize("durability", ["sync", "batch"])
def test_a_bound_value_json_cannot_hold_is_recorded_as_text_not_lost(
    spool_dir: Path, durability: str
) -> None:
    circular: list = ["a"]
    circular.append(circular)
    rec = Recorder(spool_dir, durability=durability, account="acc")
    ctx = context.RequestContext(request_id="r1", extra={"labels.loop": circular})
    token = context.current.set(ctx)
    try:
        event_id = rec.record("user.signed_in", user="u1")
    finally:
        context.current.reset(token)
    rec.close()
    (event,) = [json.loads(p) for p in iter_all(spool_dir)]
    assert event["event.id"] == event_id and event["user.id"] == "u1"
    assert event["labels.loop"] == "['a', [...]]"
    assert event["audit.origin.seq"] == 1
    assert rec.stats.recorded == 1 and rec.spool.stats.encode_errors == 0


def test_a_bound_value_changed_after_record_is_stored_as_it_was(spool_dir: Path) -> None:
    """Batch mode encodes later, on the spool's thread: what record() saw is what is stored."""
    tags = ["before"]
    rec = Recorder(spool_dir, durability="batch", flush_interval=3600, account="acc")
    token = context.current.set(context.RequestContext(extra={"labels.tags": tags}))
    try:
        rec.record("user.signed_in", user="u1")
    finally:
        context.current.reset(token)
    tags.append("after")
    rec.close()
    (event,) = [json.loads(p) for p in iter_all(spool_dir)]
    assert event["labels.tags"] == ["before"]
