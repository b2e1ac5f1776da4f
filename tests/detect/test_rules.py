"""Each built-in rule: what it raises, what it does not, and its thresholds per account.

The engine runs on a real SQLite alerts store; events are enriched as the
indexer enriches them. The same rules run on OpenSearch in the scenarios
(tests/detect/test_scenarios.py) and the contract (tests/store).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from useraudit.detect import SettingsError

from .conftest import FIREFOX_LINUX, SAFARI_IPHONE, Harness, event, make_harness

M = timedelta(minutes=1)
D = timedelta(days=1)


def fail(user: str, minute: float, ip: str = "10.0.0.5", **kw: object) -> dict:
    return event("user.signed_in", user, at=minute * M, outcome="failure", ip=ip, **kw)


def test_brute_force_fires_at_the_threshold_and_grows_one_alert(harness: Harness) -> None:
    """Four failures: nothing; the fifth within 10 minutes: one alert; the sixth adds to it."""
    harness.feed(*[fail("alice", i) for i in range(4)])
    assert harness.alerts(rule="brute_force") == []
    fifth = harness.feed(fail("alice", 4))
    (alert,) = harness.alerts(rule="brute_force")
    assert alert.count == 5 and fifth[0]["event.id"] in alert.event_ids
    assert alert.subject == "u-alice" and alert.severity == "medium"
    harness.feed(fail("alice", 5))
    (alert,) = harness.alerts(rule="brute_force")
    assert alert.count == 6


def test_brute_force_ignores_failures_spread_beyond_the_window(harness: Harness) -> None:
    """Five failures 3 minutes apart never have five inside 10 minutes."""
    harness.feed(*[fail("alice", i * 3) for i in range(5)])
    assert harness.alerts(rule="brute_force") == []


def test_brute_force_threshold_per_account(sqlite_alerts, enrich) -> None:  # type: ignore[no-untyped-def]
    """acme raises the threshold to 8: five failures alert in globex only."""
    h = make_harness(
        sqlite_alerts, enrich, {"accounts": {"acme": {"rules": {"brute_force": {"threshold": 8}}}}}
    )
    h.feed(
        *[fail("alice", i) for i in range(5)], *[fail("bob", i, account="globex") for i in range(5)]
    )
    assert h.alerts("acme", "brute_force") == []
    assert len(h.alerts("globex", "brute_force")) == 1


def test_a_rule_switched_off_for_one_account(sqlite_alerts, enrich) -> None:  # type: ignore[no-untyped-def]
    """enabled = false silences a rule for that account only, and status() says so."""
    h = make_harness(
        sqlite_alerts,
        enrich,
        {"accounts": {"acme": {"rules": {"brute_force": {"enabled": False}}}}},
    )
    h.feed(
        *[fail("alice", i) for i in range(6)], *[fail("bob", i, account="globex") for i in range(6)]
    )
    assert h.alerts("acme", "brute_force") == []
    assert len(h.alerts("globex", "brute_force")) == 1
    status = {r["rule"]: r for r in h.engine.status("acme")}
    assert status["brute_force"]["state"] == "off"
    assert status["brute_force"]["why"] == "disabled in the settings"


@pytest.mark.parametrize(
    "settings, message",
    [
        pytest.param({"defaults": {"rules": {"brute_forse": {}}}}, "no such rule", id="rule-typo"),
        pytest.param(
            {"accounts": {"a": {"rules": {"brute_force": {"treshold": 3}}}}},
            "unknown parameters ['treshold']",
            id="param-typo",
        ),
        pytest.param({"default": {}}, "unknown sections", id="section-typo"),
    ],
)
def test_settings_with_typos_are_refused(sqlite_alerts, enrich, settings, message) -> None:  # type: ignore[no-untyped-def]
    """A misspelt rule or parameter is an error naming it, never a rule silently at its default."""
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_harness(sqlite_alerts, enrich, settings)


def test_password_spraying_counts_distinct_users_per_network(harness: Harness) -> None:
    """One failure each for five users from one /24 is spraying; from five /24s it is not."""
    harness.feed(*[fail(f"user{i}", i * 0.5, ip=f"203.0.113.{10 + i}") for i in range(5)])
    (alert,) = harness.alerts(rule="password_spraying")
    assert alert.subject == "203.0.113.0/24" and alert.severity == "high"
    assert alert.details["users"] == [f"u-user{i}" for i in range(5)]
    harness.feed(*[fail(f"other{i}", 1, ip=f"198.51.{i}.7") for i in range(5)])
    assert len(harness.alerts(rule="password_spraying")) == 1
    assert harness.alerts(rule="brute_force") == []


def test_spraying_over_ipv6_groups_by_48(harness: Harness) -> None:
    """IPv6 sources in one /48 are one network."""
    harness.feed(*[fail(f"v{i}", 0, ip=f"2001:db8:1:{i}::9") for i in range(5)])
    (alert,) = harness.alerts(rule="password_spraying")
    assert alert.subject == "2001:db8:1::/48"


def test_account_blocked(harness: Harness) -> None:
    """The host's block for failed sign-ins is an alert about the blocked user."""
    harness.feed(
        event(
            "user_account.blocked_failed_sign_ins",
            "system",
            outcome="success",
            user__target__id="u-bob",
        )
    )
    (alert,) = harness.alerts(rule="account_blocked")
    assert alert.subject == "u-bob"


def test_takeover_success_right_after_failures(harness: Harness) -> None:
    """Three failures then a success within 15 minutes: high alert naming all four events."""
    raws = [fail("alice", i) for i in range(3)] + [event("user.signed_in", "alice", at=4 * M)]
    harness.feed(*raws)
    (alert,) = harness.alerts(rule="takeover")
    assert alert.severity == "high"
    assert sorted(alert.event_ids) == sorted(r["event.id"] for r in raws)


def test_takeover_not_after_a_single_typo(harness: Harness) -> None:
    """One mistyped password then success is normal life."""
    harness.feed(fail("alice", 0), event("user.signed_in", "alice", at=M))
    assert harness.alerts(rule="takeover") == []


def test_takeover_sees_failures_from_earlier_batches(harness: Harness) -> None:
    """State carries across batches (and so across restarts: it is in the store)."""
    for i in range(3):
        harness.feed(fail("alice", i))
    harness.feed(event("user.signed_in", "alice", at=5 * M))
    assert len(harness.alerts(rule="takeover")) == 1


def test_new_device_after_history_only(harness: Harness) -> None:
    """First sign-in is learnt; the same device again is quiet; a new browser+OS alerts."""
    harness.feed(event("user.signed_in", "alice"))
    harness.feed(event("user.signed_in", "alice", at=D))
    assert harness.alerts(rule="new_device") == []
    harness.feed(event("user.signed_in", "alice", at=2 * D, ua=SAFARI_IPHONE))
    (alert,) = harness.alerts(rule="new_device")
    assert alert.details["device"] == "Mobile Safari / iOS"
    assert alert.details["known"] == ["Chrome / Windows"]


def test_new_device_forgotten_after_the_lookback(harness: Harness) -> None:
    """A device unused for longer than lookback_days counts as new again."""
    harness.feed(event("user.signed_in", "alice", ua=FIREFOX_LINUX))
    harness.feed(event("user.signed_in", "alice", at=20 * D))
    harness.feed(event("user.signed_in", "alice", at=40 * D, ua=FIREFOX_LINUX))
    assert [a.details["device"] for a in harness.alerts(rule="new_device")] == [
        "Firefox / Ubuntu",
        "Chrome / Windows",
    ]


def test_new_network(harness: Harness) -> None:
    """Another address in a known /24 is quiet; another /24 alerts."""
    harness.feed(event("user.signed_in", "alice", ip="192.0.2.10"))
    harness.feed(event("user.signed_in", "alice", at=M, ip="192.0.2.99"))
    assert harness.alerts(rule="new_network") == []
    harness.feed(event("user.signed_in", "alice", at=2 * M, ip="198.51.100.4"))
    (alert,) = harness.alerts(rule="new_network")
    assert alert.details["network"] == "198.51.100.0/24"


def test_admin_granted(harness: Harness) -> None:
    """Roles updated to include USER_ADMIN: high alert on the modified user; other roles: none."""
    harness.feed(
        event(
            "user.roles_updated",
            "root",
            user__target__id="u-bob",
            audit__params={"roles": ["EDITOR"]},
        )
    )
    assert harness.alerts(rule="admin_granted") == []
    harness.feed(
        event(
            "user.roles_updated",
            "root",
            at=M,
            user__target__id="u-bob",
            audit__params={"roles": ["EDITOR", "USER_ADMIN"]},
        )
    )
    (alert,) = harness.alerts(rule="admin_granted")
    assert alert.subject == "u-bob" and alert.severity == "high"
    assert alert.details == {"roles": ["USER_ADMIN"], "by": "u-root", "dedup_s": 3600}


def test_admin_roles_configurable_per_account(sqlite_alerts, enrich) -> None:  # type: ignore[no-untyped-def]
    """An account naming OWNER as its admin role is alerted for OWNER, not USER_ADMIN."""
    h = make_harness(sqlite_alerts, enrich, {"accounts": {"acme": {"admin_roles": ["OWNER"]}}})
    h.feed(
        event(
            "user.roles_updated",
            "root",
            user__target__id="u-a",
            audit__params={"roles": ["USER_ADMIN"]},
        ),
        event(
            "user.roles_updated", "root", user__target__id="u-b", audit__params={"roles": ["owner"]}
        ),
    )
    assert [a.subject for a in h.alerts(rule="admin_granted")] == ["u-b"]


def test_custom_role_changes(harness: Harness) -> None:
    """Every custom role change by one admin within the hour is one low alert with a count."""
    harness.feed(
        event("custom_role.created", "root"),
        event("custom_role.renamed", "root", at=M),
        event("custom_role.deleted", "root", at=2 * M),
    )
    (alert,) = harness.alerts(rule="custom_role_changed")
    assert alert.count == 3 and alert.severity == "low"


def test_impersonation_summarised_per_session(harness: Harness) -> None:
    """Ten actions by root as alice within an hour: one alert counting ten."""
    harness.feed(
        *[
            event("bot_project.created", "alice", at=i * M, audit__impersonator__id="u-root")
            for i in range(10)
        ]
    )
    (alert,) = harness.alerts(rule="impersonation")
    assert alert.count == 10 and alert.subject == "u-root->u-alice"


def test_token_from_a_new_network(harness: Harness) -> None:
    """A token created from the user's usual network is quiet; from another network it alerts."""
    harness.feed(event("user.signed_in", "alice", ip="192.0.2.10"))
    harness.feed(event("token.created", "alice", at=M, ip="192.0.2.11", audit__token__id="t1"))
    assert harness.alerts(rule="token_new_network") == []
    harness.feed(
        event("token.refreshed", "alice", at=2 * M, ip="203.0.113.50", audit__token__id="t1")
    )
    (alert,) = harness.alerts(rule="token_new_network")
    assert alert.details["token"] == "t1" and alert.details["network"] == "203.0.113.0/24"


def test_a_useraudit_api_token_from_a_new_network(harness: Harness) -> None:
    """useraudit's own API tokens (created in its admin UI or CLI) are watched like the host's."""
    harness.feed(event("user.signed_in", "alice", ip="192.0.2.10"))
    harness.feed(
        event("audit_api_token.created", "alice", at=M, ip="203.0.113.50", audit__token__id="t9")
    )
    (alert,) = harness.alerts(rule="token_new_network")
    assert alert.details["token"] == "t9" and alert.details["action"] == "audit_api_token.created"


def test_bulk_download_above_the_users_baseline(harness: Harness) -> None:
    """Two downloads a day for two weeks is the baseline; 21 in one day is above 20 and 3x."""
    baseline = [
        event("message_log.downloaded", "alice", at=d * D + h * timedelta(hours=1))
        for d in range(1, 15)
        for h in (2, 3)
    ]
    harness.feed(*baseline)
    burst = [event("session_log.downloaded", "alice", at=16 * D + i * M) for i in range(21)]
    harness.feed(*burst[:20])
    assert harness.alerts(rule="bulk_download") == []
    harness.feed(burst[20])
    (alert,) = harness.alerts(rule="bulk_download")
    assert (alert.details["last_24h"], alert.details["daily_average"]) == (21, 2.0)


def test_bulk_download_heavy_user_needs_more(harness: Harness) -> None:
    """19 a day for 3 days (about 14/day over 4 days): 40 in a day is under 3x, 43 is over."""
    harness.feed(
        *[
            event("audit_log.downloaded", "alice", at=d * D + i * 2 * M)
            for d in range(3)
            for i in range(19)
        ]
    )
    harness.feed(*[event("audit_log.downloaded", "alice", at=4 * D + i * M) for i in range(40)])
    assert harness.alerts(rule="bulk_download") == []
    harness.feed(
        *[event("audit_log.downloaded", "alice", at=4 * D + (40 + i) * M) for i in range(4)]
    )
    (alert,) = harness.alerts(rule="bulk_download")
    assert alert.details["last_24h"] == 43


def test_off_hours_admin_only_when_the_account_sets_hours(sqlite_alerts, enrich) -> None:  # type: ignore[no-untyped-def]
    """A role change at 23:00 Berlin alerts in acme (hours set); globex sets none."""
    hours = {"start": "08:00", "end": "19:00", "days": [0, 1, 2, 3, 4], "timezone": "Europe/Berlin"}
    h = make_harness(sqlite_alerts, enrich, {"accounts": {"acme": {"working_hours": hours}}})
    late = 12 * timedelta(hours=1)  # 22:00 UTC = 23:00 in Berlin
    h.feed(
        event("custom_role.updated", "root", at=timedelta(hours=1)),  # 12:00 Berlin: fine
        event("custom_role.updated", "root", at=late),
        event("custom_role.updated", "root", at=late, account="globex"),
    )
    (alert,) = h.alerts("acme", "off_hours_admin")
    assert alert.details["local_time"] == "2026-03-02T23:00+01:00"
    assert h.alerts("globex", "off_hours_admin") == []


def test_geo_rules_are_off_without_a_database(harness: Harness) -> None:
    """Without GeoIP the country and travel rules say they are off, and why."""
    status = {r["rule"]: r for r in harness.engine.status("acme")}
    assert status["new_country"]["state"] == "off"
    assert "GeoIP" in status["impossible_travel"]["why"]
    assert status["brute_force"]["state"] == "on"


def test_replaying_a_batch_changes_nothing(harness: Harness) -> None:
    """The indexer re-sends after a crash: the same events again change no alert or count."""
    raws = [fail("alice", i) for i in range(6)] + [event("user.signed_in", "alice", at=7 * M)]
    harness.feed(*raws)
    before = {a.id: (a.count, sorted(a.event_ids)) for a in harness.alerts()}
    harness.feed(*raws)
    harness.feed(*raws[3:])
    after = {a.id: (a.count, sorted(a.event_ids)) for a in harness.alerts()}
    assert after == before and {a.rule for a in harness.alerts()} == {"brute_force", "takeover"}


def test_a_failing_host_rule_is_counted_and_the_others_run(sqlite_alerts, enrich) -> None:  # type: ignore[no-untyped-def]
    """A host rule that raises does not stop the built-in ones."""
    from useraudit.detect import BUILTIN_RULES, Rule

    class Broken(Rule):
        name = "broken"
        actions = frozenset({"user.signed_in"})

        def evaluate(self, event, state, params):  # type: ignore[no-untyped-def]
            raise RuntimeError("host bug")

    h = make_harness(sqlite_alerts, enrich, rules=[*BUILTIN_RULES, Broken()])
    h.feed(*[fail("alice", i) for i in range(5)])
    assert h.engine.stats.rule_errors == 5
    assert len(h.alerts(rule="brute_force")) == 1


def test_host_app_rule_sees_the_event_and_state(sqlite_alerts, enrich) -> None:  # type: ignore[no-untyped-def]
    """A host rule with state: the third refund of one user in a day alerts."""
    from useraudit.detect import BUILTIN_RULES, Finding, Rule, user_of

    class ManyRefunds(Rule):
        name = "many_refunds"
        title = "Many refunds"
        severity = "high"
        actions = frozenset({"billing.refund_issued"})
        defaults = {"limit": 3}

        def keys(self, event, params):  # type: ignore[no-untyped-def]
            return [f"refunds:{user_of(event)}"]

        def evaluate(self, event, state, params):  # type: ignore[no-untyped-def]
            key = f"refunds:{user_of(event)}"
            state.add(key, event["event.id"], 0, event["event.id"])
            ids = [e[1] for _m, e in state.entries(key)]
            if len(ids) < params["limit"]:
                return []
            return [Finding(subject=user_of(event), event_ids=ids)]

    h = make_harness(sqlite_alerts, enrich, rules=[*BUILTIN_RULES, ManyRefunds()])
    h.feed(event("billing.refund_issued", "alice"), event("billing.refund_issued", "alice", at=M))
    h.feed(event("billing.refund_issued", "alice", at=2 * M))
    (alert,) = h.alerts(rule="many_refunds")
    assert alert.count == 3 and alert.severity == "high"
