"""English and Russian: complete, compiled catalogs; the choice remembered per user."""

from __future__ import annotations

import gettext
import io
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import Environment

from useraudit.catalog import CATALOG

from .adminview_docs import ACCOUNT, ADMIN
from .conftest import PASSWORD, login, make_app

TRANSLATIONS = Path(__file__).parents[2] / "webapp" / "translations"
RU_PO = TRANSLATIONS / "ru" / "LC_MESSAGES" / "messages.po"
RU_MO = RU_PO.with_suffix(".mo")


def _po() -> Any:
    with RU_PO.open("rb") as fh:
        return read_po(fh, locale="ru")


def test_russian_catalog_is_complete() -> None:
    """Every message of the template has a Russian translation, none fuzzy."""
    with (TRANSLATIONS / "messages.pot").open("rb") as fh:
        template = {m.id for m in read_po(fh) if m.id}
    catalog = _po()
    ids = {m.id for m in catalog if m.id}
    assert template <= ids
    untranslated = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
    assert untranslated == []


def test_every_catalog_label_is_translated() -> None:
    """Products, groups and actions of useraudit.catalog all have Russian labels."""
    translated = {m.id: m.string for m in _po() if m.id}
    labels = {p.label for p in CATALOG.products()}
    labels |= {g for p in CATALOG.products() for g in CATALOG.groups(p.code)}
    labels |= {a.label for a in CATALOG.actions()}
    assert sorted(label for label in labels if not translated.get(label)) == []


def test_shipped_mo_matches_the_po() -> None:
    """The committed .mo is the compiled .po (run `python -m useraudit.webapp.i18n compile`)."""
    buf = io.BytesIO()
    write_mo(buf, _po())
    buf.seek(0)
    fresh = gettext.GNUTranslations(buf)
    with RU_MO.open("rb") as fh:
        shipped = gettext.GNUTranslations(fh)
    assert shipped._catalog == fresh._catalog  # type: ignore[attr-defined]


def test_language_switch_is_remembered_per_user(
    seeded_store: Any, users_db: Any, initech: Any
) -> None:
    """Switching to Russian translates the page, numbers and dates, and the next sign-in
    (another browser) opens in Russian too; English comes back the same way."""
    app = make_app(seeded_store, users_db)
    first, second = app.test_client(), app.test_client()
    login(first, ADMIN)
    try:
        page = first.get(f"/language/ru?next=/a/{ACCOUNT}/actions", follow_redirects=True)
        html = page.get_data(as_text=True)
        assert '<html lang="ru">' in html
        assert "Действия пользователей" in html and "Пользователь вошёл" in html
        assert "Экспорт в XLSX" in html
        assert re.search(r"\d{2}\.\d{2}\.\d{4} <span", html)  # dd.mm.yyyy
        login(second, ADMIN)
        again = second.get(f"/a/{ACCOUNT}/actions").get_data(as_text=True)
        assert '<html lang="ru">' in again and "Фильтры" in again
    finally:
        first.get("/language/en")
    assert '<html lang="en">' in second.get(f"/a/{ACCOUNT}/actions").get_data(as_text=True)


def test_browser_language_is_the_default(seeded_store: Any, users_db: Any) -> None:
    """Before any choice, Accept-Language picks the language (sign-in page)."""
    client = make_app(seeded_store, users_db).test_client()
    html = client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).get_data(
        as_text=True
    )
    assert '<html lang="ru">' in html and "Вход" in html
    assert '<html lang="en">' in client.get("/login").get_data(as_text=True)


def test_numbers_and_dates_follow_the_language(seeded_store: Any, users_db: Any) -> None:
    """12,345 / 12 345 (no-break space), 2026-12-06 / 06.12.2026: as each language writes them."""
    from datetime import datetime

    from useraudit.webapp.i18n import day, number

    app = make_app(seeded_store, users_db)
    ts = datetime(2026, 12, 6, 5, 0)
    with app.test_request_context(headers={"Accept-Language": "ru"}):
        assert (number(12345), day(ts)) == ("12\xa0345", "06.12.2026")
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert (number(12345), day(ts)) == ("12,345", "2026-12-06")


TEMPLATES = Path(__file__).parents[2] / "webapp" / "templates"
# Text in templates that is not language: names, and values of Jinja blocks
# that fill a class attribute.
NOT_LANGUAGE = {"UTC", "· useraudit", "page wide", "centered card-page"}


class _TextFinder(HTMLParser):
    """Visible text and human-read attributes, outside code, script and style."""

    HUMAN_ATTRS = ("title", "aria-label", "placeholder", "alt")

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "code", "pre"):
            self._code += 1
        for name, value in attrs:
            if name in self.HUMAN_ATTRS and value:
                self.found.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code", "pre"):
            self._code -= 1

    def handle_data(self, data: str) -> None:
        if not self._code:
            self.found.append(data)


def _untranslated(source: str) -> list[str]:
    """Latin words written straight into a template instead of through gettext."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    # Statements vanish (their bodies stay); each expression becomes one
    # letter-free mark, so text made only of expressions is not reported.
    parts, inside = [], ""
    for _, kind, value in env.lex(source):
        if kind in ("block_begin", "variable_begin"):
            inside = kind
            parts.append("\x00" if kind == "variable_begin" else "")
        elif kind in ("block_end", "variable_end"):
            inside = ""
        elif kind == "data" and not inside:
            parts.append(value)
    literal = "".join(parts)
    finder = _TextFinder()
    finder.feed(re.sub(r"\x00+", "\x00", literal))
    texts = (" ".join(t.replace("\x00", " ").split()) for t in finder.found)
    # Attribute and URL pieces that Jinja blocks fill in are markup, not words.
    texts = (re.sub(r'[\w-]+="[^"]*"|#[\w-]+', "", t).strip() for t in texts)
    return [t for t in texts if re.search(r"[A-Za-z]{2,}", t) and t not in NOT_LANGUAGE]


def test_templates_hold_no_untranslated_text() -> None:
    """Every visible string of every page goes through gettext (a plain English
    string in a template would show in English on the Russian UI)."""
    leftovers = {
        str(path.relative_to(TEMPLATES)): found
        for path in sorted(TEMPLATES.rglob("*.html"))
        if (found := _untranslated(path.read_text(encoding="utf-8")))
    }
    assert leftovers == {}


def test_the_untranslated_text_check_finds_plain_english() -> None:
    assert _untranslated('<p title="{{ _(\'Ok\') }}">{{ _("Saved") }}</p>') == []
    assert _untranslated("<p>Sign out everywhere</p>") == ["Sign out everywhere"]
    assert _untranslated('<button aria-label="Close">{{ x }}</button>') == ["Close"]
    assert _untranslated("<code>useraudit users grant</code>") == []


def _query_error_templates() -> set[str]:
    """Every QueryError message written as a literal in the store and the webapp."""
    import ast

    from useraudit.webapp.filters import DATE_PROBLEMS

    root = Path(__file__).parents[2]
    found = set(DATE_PROBLEMS.values())
    for path in [*(root / "store").rglob("*.py"), *(root / "webapp").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "QueryError"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return found


def test_every_filter_error_has_a_russian_translation_with_the_same_placeholders() -> None:
    templates = _query_error_templates()
    assert len(templates) > 30 and "the search text could not be understood" in templates
    translated = {m.id: m.string for m in _po() if m.id}
    missing = sorted(t for t in templates if not translated.get(t))
    assert missing == []
    for template in templates:
        assert sorted(re.findall(r"%\(\w+\)s", translated[template])) == sorted(
            re.findall(r"%\(\w+\)s", template)
        ), template


# (query string, Russian words the message must show, English it must not)
RUSSIAN_ERRORS = [
    (
        "period=custom&from=2026-03-02T10:00&to=2026-03-01T10:00",
        "период заканчивается раньше, чем начинается: «По» (2026-03-01 10:00) раньше, "
        "чем «С» (2026-03-02 10:00)",
        "ends before it starts",
    ),
    ("ip=10.0.0.300", "&#39;10.0.0.300&#39; — не IP-адрес и не диапазон CIDR", "not an IP"),
    ("ip=10.0.0.0/33", "&#39;10.0.0.0/33&#39; — не IP-адрес и не диапазон CIDR", "CIDR range"),
    (
        "period=custom&from=yesterday",
        "дата начала должна выглядеть так: 2026-01-31T23:59",
        "should look like",
    ),
    ("period=custom&to=2026-13-40T99:99", "дата окончания должна выглядеть так", "end date"),
    ("q=%22bot+settings", "фраза в кавычках не закрыта", "not closed"),
    ("q=*ole", "слово не может начинаться со звёздочки", "wildcard"),
    ("q=-test", "запрос не может только исключать", "only exclude"),
    ("tz=Mars/Olympus", "неизвестный часовой пояс &#39;Mars/Olympus&#39;", "unknown time zone"),
    ("size=7", "размер страницы должен быть одним из: 25, 50, 100", "page size"),
]


def test_the_russian_ui_shows_filter_errors_in_russian(seeded_store: Any, users_db: Any) -> None:
    """A reversed period, a bad address or network, unreadable dates, bad query syntax, an
    unknown zone: the page (and the refused export) say what is wrong in Russian."""
    # A fresh admin: a language another test saved for alice would outrank the header.
    name = f"ru{uuid.uuid4().hex[:8]}"
    users_db.add(name, PASSWORD, email=f"{name}@example.com", full_name="Ru Tester")
    users_db.grant(name, "acme", "USER_ADMIN")
    client = make_app(seeded_store, users_db).test_client()
    ru = {"Accept-Language": "ru-RU,ru;q=0.9"}
    login(client, name)
    for qs, russian, english in RUSSIAN_ERRORS:
        resp = client.get(f"/a/acme/actions?{qs}", headers=ru)
        html = resp.get_data(as_text=True)
        assert resp.status_code == 400, qs
        message = re.search(r'<p id="query-error-text">(.*?)</p>', html, re.S)
        assert message, qs
        assert russian in message.group(1), (qs, message.group(1))
        assert english not in message.group(1), qs
        export = client.get(f"/a/acme/actions.csv?{qs}", headers=ru)
        assert export.status_code == 400, qs
        refused = export.get_data(as_text=True)
        assert "Экспорт невозможен" in refused and russian in refused, qs
    english = client.get("/a/acme/actions?ip=10.0.0.300").get_data(as_text=True)
    assert "&#39;10.0.0.300&#39; is not an IP address or CIDR range" in english


def test_a_refused_export_escapes_the_input_it_quotes(seeded_store: Any, users_db: Any) -> None:
    """The message quotes what was typed: it is escaped, not trusted as markup."""
    client = make_app(seeded_store, users_db).test_client()
    login(client, "alice")
    for fmt in ("csv", "xlsx", "ndjson"):
        resp = client.get(f"/a/acme/actions.{fmt}?ip=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E")
        body = resp.get_data(as_text=True)
        assert resp.status_code == 400
        assert "<img" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
