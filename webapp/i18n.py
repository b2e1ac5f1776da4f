"""English and Russian for the admin UI (Flask-Babel).

Messages live in ``webapp/translations/<lang>/LC_MESSAGES/messages.po``;
the compiled ``.mo`` beside each is shipped too (tests/webapp/test_i18n.py
fails when one is older than its ``.po``). The language is, in order: the
admin's saved choice (:mod:`.prefs`, switched in the header), the browser's
``Accept-Language``, English.

Catalog labels (products, groups, actions of :mod:`useraudit.catalog`) are
translated by :func:`label`: they are in the same ``messages.po``.

Refresh the catalogs after changing strings::

    .venv/bin/python -m useraudit.webapp.i18n update   # extract + merge into every .po
    .venv/bin/python -m useraudit.webapp.i18n compile  # .po -> .mo
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, g, has_request_context, request
from flask_babel import Babel, get_locale, get_translations
from markupsafe import Markup

from .prefs import LANGUAGES, preferences

if TYPE_CHECKING:
    from useraudit.store.query import QueryError

TRANSLATIONS = Path(__file__).with_name("translations")


def select_locale() -> str:
    if not has_request_context():
        return "en"
    saved = preferences().get("lang")
    if saved:
        return saved
    return request.accept_languages.best_match(tuple(LANGUAGES)) or "en"


def init_app(app: Flask) -> None:
    """Flask-Babel with our catalogs; a host's own Babel keeps its selector, gains our texts."""
    ours = str(TRANSLATIONS)
    if "babel" in app.extensions:
        dirs = app.config.get("BABEL_TRANSLATION_DIRECTORIES", "translations")
        if ours not in dirs.split(";"):
            app.config["BABEL_TRANSLATION_DIRECTORIES"] = f"{dirs};{ours}"
        return
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", ours)
    Babel(app, locale_selector=select_locale)
    # Flask-Babel's template callables look the catalog up through its
    # context on every {{ _() }} (over a hundred per results page); ours
    # look it up once per request, like label().
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: page_translations().ugettext(s),
        ngettext=lambda s, p, n: page_translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: page_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: page_translations().unpgettext(c, s, p, n),
    )
    app.jinja_env.globals.update(lang=current_language, label=label, LANGUAGES=LANGUAGES)
    app.jinja_env.filters.update(number=number, day=day, clock=clock)


def current_language() -> str:
    """The page's language, looked up once per request (the table asks ~100 times)."""
    try:
        return g._useraudit_lang  # type: ignore[no-any-return]
    except AttributeError:  # first ask in this request
        pass
    except RuntimeError:  # no app context
        return "en"
    if not has_request_context():
        return "en"
    locale = get_locale()
    lang = g._useraudit_lang = str(locale.language) if locale else "en"
    return lang


def page_translations() -> Any:
    """The request's message catalog, looked up through Flask-Babel once per request."""
    if not has_request_context():
        return get_translations()
    translations = g.get("_useraudit_translations")
    if translations is None:
        translations = g._useraudit_translations = get_translations()
    return translations


# Per message catalog: each template message as Jinja's newstyle gettext
# returns it (Markup, %-formatted even without variables).
_MARKUP_CACHE_MAX = 4096


def page_gettext() -> Callable[..., Markup]:
    """The templates' ``_`` for this request, passed in the page's context.

    Same output as the ``_`` Jinja's i18n extension installs (newstyle,
    autoescaped: the translation is Markup, variables are escaped into it),
    without its two ``Context.call`` hops and catalog lookup per call: the
    results page says ``_()`` ~130 times. Messages without variables are
    translated once per process and catalog.
    """
    translations = page_translations()
    cache: dict[str, Markup] = translations.__dict__.setdefault("_useraudit_markup", {})
    ugettext = translations.ugettext

    def _(text: str, **variables: Any) -> Markup:
        if variables:
            return Markup(ugettext(text)) % variables
        try:
            return cache[text]
        except KeyError:
            out = Markup(ugettext(text)) % {}
            if len(cache) < _MARKUP_CACHE_MAX:
                cache[text] = out
            return out

    return _


def gettext(text: str, **variables: Any) -> str:
    """Flask-Babel's ``gettext`` (same ``%(name)s`` filling) with the catalog
    looked up once per request: the results page translates ~50 strings in Python."""
    out = str(page_translations().ugettext(text))
    return out % variables if variables else out


def label(text: str) -> str:
    """A catalog label (product, group, action) in the page's language.

    The page asks for a few hundred (the action tree, facets, rows): the
    catalog is looked up once per request, not through Flask-Babel per call.
    """
    if not text or not has_request_context():
        return text
    return str(page_translations().ugettext(text))


def problem(exc: QueryError) -> str:
    """A filter's error in the page's language: the template translated, then filled in."""
    text = label(exc.template)
    return text % exc.params if exc.params else text


def ago(delta: timedelta, lang: str | None = None) -> str:
    """ "3 hours" in the page's language (a row's relative time); ``lang``: that
    language, when the caller already knows it (a loop over rows)."""
    seconds = int(delta.total_seconds())
    # Past an hour the words count hours or more: a minute's precision names
    # the same span, and the page's 50 rows then share a few spans.
    return _ago(seconds if seconds < 3600 else seconds // 60 * 60, lang or current_language())


@lru_cache(maxsize=4096)
def _ago(seconds: int, lang: str) -> str:
    from babel.dates import format_timedelta

    return str(format_timedelta(timedelta(seconds=seconds), threshold=1.1, locale=lang))


@lru_cache(maxsize=8)
def _group_symbol(lang: str) -> str:
    from babel.numbers import get_group_symbol

    return str(get_group_symbol(lang))


def number(value: int) -> str:
    """1,234 / 1 234 as the page's language writes it (Babel's grouping sign)."""
    return f"{value:,}".replace(",", _group_symbol(current_language()))


def number_format() -> Callable[[int], str]:
    """:func:`number` with the page's language looked up once (loops: facets, chart bars)."""
    sign = _group_symbol(current_language())
    if sign == ",":
        return "{:,}".format
    return lambda value: f"{value:,}".replace(",", sign)


# Numeric, fixed-width dates as each language writes them: the table's
# column stays narrow and its rows align.
DATE_FORMATS = {"en": "%Y-%m-%d", "ru": "%d.%m.%Y"}


def day(ts: datetime) -> str:
    """The date part of a row's time: ``2026-12-06`` / ``06.12.2026``."""
    return ts.strftime(DATE_FORMATS.get(current_language(), "%Y-%m-%d"))


def day_format() -> str:
    """The strftime format :func:`day` uses on this page (loops format with it directly)."""
    return DATE_FORMATS.get(current_language(), "%Y-%m-%d")


def clock(ts: datetime) -> str:
    return ts.strftime("%H:%M:%S")


def main(argv: list[str]) -> int:  # pragma: no cover - a maintainer's tool
    from babel.messages import frontend

    root = Path(__file__).parent
    pot = root / "translations" / "messages.pot"
    if argv[:1] == ["update"]:
        frontend.CommandLineInterface().run(
            [
                "pybabel", "extract", "-F", str(root / "babel.cfg"), "-k", "_l", "-k", "label_",
                # Filter errors: the store's and the form's QueryError templates.
                "-k", "QueryError",
                "--no-location", "--sort-output", "-o", str(pot), str(root),
                str(root.parent / "store"),
            ]
        )  # fmt: skip
        _add_catalog_labels(pot)
        frontend.CommandLineInterface().run(
            ["pybabel", "update", "-i", str(pot), "-d", str(TRANSLATIONS)]
        )
        return 0
    if argv[:1] == ["compile"]:
        frontend.CommandLineInterface().run(["pybabel", "compile", "-d", str(TRANSLATIONS)])
        return 0
    print("usage: python -m useraudit.webapp.i18n update|compile", file=sys.stderr)
    return 2


def _add_catalog_labels(pot: Path) -> None:  # pragma: no cover - a maintainer's tool
    from babel.messages.pofile import read_po, write_po

    from useraudit.catalog import CATALOG

    with pot.open("rb") as fh:
        catalog = read_po(fh)
    for product in CATALOG.products():
        catalog.add(product.label)
        for group in CATALOG.groups(product.code):
            catalog.add(group)
    for action in CATALOG.actions():
        catalog.add(action.label)
    for text in _code_labels():
        catalog.add(text)
    with pot.open("wb") as fh:
        write_po(fh, catalog, sort_output=True, omit_header=False)


# The error pages' texts (webapp/app.py), translated by error.html.
ERROR_TEXTS = (
    "Please sign in to see user actions.",
    "Form expired",
    "The form was open too long or came from elsewhere. Go back, reload the page and try again.",
    "Not allowed",
    "You need the USER_ADMIN role on this account to see its user actions.",
    "Not found",
    "There is nothing at this address.",
    "That method is not supported here.",
    "Too many attempts",
    "Too many attempts in a short time. Wait a minute and try again.",
    "Audit log unavailable",
    "The audit log store cannot be reached right now. Try again in a moment.",
    "Something went wrong",
    "An unexpected error happened. It has been logged.",
    # The refused exports (webapp/export.py).
    "Cannot export",
    "Export already running",
    "Your previous export, or too many others, are still being written. "
    "Try again when it has finished.",
)


def _code_labels() -> list[str]:  # pragma: no cover - a maintainer's tool
    """Labels kept in Python tables and translated where they are shown."""
    from useraudit.schema import COLUMNS

    from .filters import DATE_PROBLEMS, FACET_LABELS, MULTI, PERIODS

    return [
        *(c.label for c in COLUMNS),
        *(label for _attr, label in MULTI.values()),
        *FACET_LABELS.values(),
        *(label for label, _delta in PERIODS.values()),
        *ERROR_TEXTS,
        *DATE_PROBLEMS.values(),
    ]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
