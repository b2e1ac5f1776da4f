"""`useraudit users` and `useraudit web` on the command line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from useraudit.cli import main


def test_users_add_grant_passwd_list(tmp_path: Path) -> None:
    """Users are created, granted USER_ADMIN, re-passworded and listed from the CLI."""
    from useraudit.webapp.users import UserStore

    db = str(tmp_path / "webusers.db")
    run = CliRunner().invoke
    result = run(
        main,
        ["users", "add", "--db", db, "erin", "--email", "erin@example.com"],
        input="first-password\nfirst-password\n",
    )
    assert result.exit_code == 0, result.output
    assert run(main, ["users", "grant", "--db", db, "erin", "acme"]).exit_code == 0
    assert (
        run(
            main,
            ["users", "passwd", "--db", db, "erin"],
            input="second-password\nsecond-password\n",
        ).exit_code
        == 0
    )
    listing = run(main, ["users", "list", "--db", db]).output
    assert "erin" in listing and "acme:USER_ADMIN" in listing
    users = UserStore(db)
    assert users.authenticate("erin", "first-password") is None
    user = users.authenticate("erin", "second-password")
    assert user is not None and user.admin_accounts() == ["acme"]
    assert run(main, ["users", "grant", "--db", db, "erin", "acme", "--revoke"]).exit_code == 0
    assert users.authenticate("erin", "second-password").admin_accounts() == []  # type: ignore[union-attr]


def test_users_refuses_short_passwords_and_duplicates(tmp_path: Path) -> None:
    """Short passwords and existing usernames are refused with a message, not a traceback."""
    db = str(tmp_path / "webusers.db")
    run = CliRunner().invoke
    result = run(main, ["users", "add", "--db", db, "erin"], input="short\nshort\n")
    assert result.exit_code != 0 and "at least 8" in result.output
    run(main, ["users", "add", "--db", db, "erin"], input="long-enough\nlong-enough\n")
    result = run(main, ["users", "add", "--db", db, "ERIN"], input="long-enough\nlong-enough\n")
    assert result.exit_code != 0 and "already exists" in result.output


def test_web_command_is_registered() -> None:
    """`useraudit web` exists with --store, --host and --port."""
    result = CliRunner().invoke(main, ["web", "--help"])
    assert result.exit_code == 0
    for option in ("--store", "--host", "--port", "--secure-cookies", "--trusted-proxies"):
        assert option in result.output
