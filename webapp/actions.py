"""The account picker and the User actions page.

Authorization happens here, on the server, for every request: the account
comes from the route, the signed-in user must hold ``USER_ADMIN`` on it
(403 otherwise), and the store :class:`~useraudit.store.Query` is built
with that account — nothing in the query string can change it, and cursors
carry only sort values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import lru_cache, wraps
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from markupsafe import Markup, escape

from useraudit.catalog import CATALOG
from useraudit.schema import COLUMN_FIELDS, COLUMNS, device_label
from useraudit.store import Query, QueryError, SearchPage, SearchRequest, StoreError
from useraudit.store.completeness import complete_up_to
from useraudit.store.query import FACETS

from . import chart, resources
from .columns import CELLS, local_time
from .filters import (
    FACET_LABELS,
    FACET_PARAMS,
    MULTI,
    PAGE_SIZES,
    PERIODS,
    Filters,
    query_pair,
    value_label,
    zone,
)
from .form_state import as_typed, field_at_fault
from .i18n import (
    ago,
    clock,
    current_language,
    day_format,
    label,
    number_format,
    page_gettext,
    page_translations,
    problem,
)
from .i18n import gettext as _
from .metrics import SEARCH_SECONDS
from .prefs import default_tz, preferences
from .zones import datalist_options, offset_label

bp = Blueprint("actions", __name__)
# Threads that search and read the completeness mark while the request
# thread renders the parts of the page the answer does not change.
_STORE_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="useraudit-page")

ACCOUNT_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
FACET_SIZE = 8
# What a row of the table shows, and its id: all a page's hits need.
PAGE_FIELDS = ("event.id", *COLUMN_FIELDS)


def admin_required(view: Any) -> Any:
    """login_required + USER_ADMIN on the route's ``account``; 403 otherwise."""

    @wraps(view)
    @login_required
    def wrapper(account: str, *args: Any, **kwargs: Any) -> Any:
        if not ACCOUNT_RE.match(account) or not current_user.is_admin_of(account):
            abort(403)
        return view(account, *args, **kwargs)

    return wrapper


@bp.get("/")
def index() -> Any:
    return redirect(url_for(".accounts"))


@bp.get("/accounts")
@login_required
def accounts() -> Any:
    """An admin of one account goes straight there; of several, picks first."""
    mine = current_user.admin_accounts()
    if len(mine) == 1:
        return redirect(url_for(".actions", account=mine[0]))
    return render_template("useraudit/accounts.html", accounts=mine)


_TAG = re.compile(r"<(?!/?mark>)")


def safe_highlight(fragment: str) -> Markup:
    """The store's pre-escaped highlight, trusted only for <mark> tags.

    Any other ``<`` is escaped again (defence in depth: a backend bug must
    not turn into stored XSS in the admins' browsers).
    """
    return Markup(_TAG.sub("&lt;", fragment))


# The page's two big static-ish blocks (the zone list, the catalog tree) are
# built with plain string joins: through Jinja loops they cost more than the
# rest of the page together.


def tree_html(shown: tuple[str, ...], groups: tuple[str, ...], actions: tuple[str, ...]) -> Markup:
    """The Actions dropdown: each group with an "(all)" box, then its actions.

    The same for every page with the same language and ticks: built once.
    """
    return _tree_html(CATALOG.version, current_language(), shown, groups, actions)


@lru_cache(maxsize=256)
def _tree_html(
    _version: int,
    _lang: str,
    shown: tuple[str, ...],
    groups: tuple[str, ...],
    actions: tuple[str, ...],
) -> Markup:
    tree = _catalog_tree()
    checked_groups, checked_actions = set(groups), set(actions)
    out: list[str] = []
    for p in tree:
        if shown and p["code"] not in shown:
            continue
        out.append(f'<p class="tree-product">{escape(label(p["label"]))}</p>')
        for g in p["groups"]:
            key = escape(g["key"])
            mark = " checked" if g["key"] in checked_groups else ""
            out.append(
                '<fieldset class="tree-group"><label class="tree-group-label">'
                f'<input type="checkbox" name="group" value="{key}"{mark}> '
                f"{escape(label(g['name']))} "
                f'<span class="muted">{escape(_("(all)"))}</span></label>'
            )
            for a in g["actions"]:
                mark = " checked" if a.code in checked_actions else ""
                out.append(
                    f'<label class="tree-action"><input type="checkbox" name="action" '
                    f'value="{escape(a.code)}"{mark}> {escape(label(a.label))}</label>'
                )
            out.append("</fieldset>")
    return Markup("".join(out))


def shown_value(param: str, value: str) -> str:
    """A filter value in words, in the page's language (catalog labels, results)."""
    text = value_label(param, value)
    if param in ("action", "product", "result") and text != value:
        return label(text)
    return text


def _catalog_tree() -> list[dict[str, Any]]:
    """Products → groups → actions, as the pickers show them (shared: do not change)."""
    return _catalog_tree_of(CATALOG.version)


@lru_cache(maxsize=4)
def _catalog_tree_of(_version: int) -> list[dict[str, Any]]:
    tree = []
    for product in CATALOG.products():
        groups = []
        for group in CATALOG.groups(product.code):
            groups.append(
                {
                    "name": group,
                    "key": f"{product.code}:{group}",
                    "actions": [a for a in CATALOG.actions(product.code) if a.group == group],
                }
            )
        tree.append({"code": product.code, "label": product.label, "groups": groups})
    return tree


PEOPLE = {"user": "user", "target": "user.target", "impersonator": "audit.impersonator"}


def _person(doc: dict, prefix: str) -> tuple[str, str, str]:
    """A person cell's tooltip (:func:`~useraudit.schema.person_label`'s text), and its
    display name over its second line (the e-mail when a name is shown)."""
    name = doc.get(f"{prefix}.full_name") or doc.get(f"{prefix}.name")
    email = doc.get(f"{prefix}.email")
    if name:
        return (f"{name} <{email}>" if email else str(name)), str(name), str(email or "")
    shown = str(email or doc.get(f"{prefix}.id") or "")
    return shown, shown, ""


def _e(value: Any) -> str:
    """markupsafe.escape's output (same entities) without a Markup object per
    value: the rows and facets below escape ~1,750 values per page."""
    v = value if type(value) is str else str(value)
    if "&" in v or "<" in v or ">" in v or '"' in v or "'" in v:
        return (
            v.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace('"', "&#34;")
            .replace("'", "&#39;")
        )
    return v


@lru_cache(maxsize=4096)
def _quote(key: str) -> str:
    """Jinja's urlencode filter for a path/query part ("/" kept)."""
    return quote(key, safe="/")


def _person_html(name: str, second: str) -> str:
    """Name, then the e-mail, on one line (the full text in the tooltip)."""
    if not name:
        return ""
    out = f'<span class="who">{_e(name)}</span>'
    if second:
        out += f' <span class="sub">{_e(second)}</span>'
    return out


OUTCOME_TEXT = {"success": "Success", "failure": "Failure", "unknown": "Unknown"}


# The result rows and the facet lists are the page's long repeated parts:
# built here as one string each, straight from the hits, instead of ~2,000
# autoescaped Jinja expressions; they are built after the store answered,
# so every microsecond here is on the page's critical path.


def rows_html(
    hits: list[dict[str, Any]], tz: Any, history_base: str, event_base: str, tz_arg: str
) -> Markup:
    """The results table's <tr> elements for a page of hits.

    Each row's action is a link to the event's details (app.js opens them in
    a dialog); every cell is one line, its full text in the tooltip; the
    time's tooltip has the exact time with its UTC offset and how long ago.
    """
    out = []
    now = datetime.now(UTC)
    # The page's language and catalog, looked up once for all rows.
    ago_text = _("%(span)s ago")  # translated once, filled per row
    lang = current_language()
    day_fmt = day_format()
    translate = page_translations().ugettext
    days: dict[tuple[int, int, int], str] = {}  # the rows share a few days...
    offsets: dict[Any, str] = {}  # ...and one or two UTC offsets
    base = _e(history_base)
    ev_base = _e(event_base)
    tz_q = f"?tz={_e(_quote(tz_arg))}" if tz_arg else ""
    history_title = _e(_("User history: every action by or on this user"))
    details_title = _e(_("Open the details"))
    outcome_text = {k: _e(_(v)) for k, v in OUTCOME_TEXT.items()}
    headers = {
        "action": _e(_("Action")),
        "timestamp": _e(_("Date and time")),
        "user": _e(_("User")),
        "token": _e(_("Token ID")),
        "target": _e(_("Modified user")),
        "project": _e(_("Project")),
        "comments": _e(_("Comments")),
        "ip_device": _e(_("IP and device")),
        "result": _e(_("Result")),
        "impersonator": _e(_("Impersonator")),
    }
    # Each cell's opening tag up to its last attribute; data-label titles the phone's cards.
    td = {key: f'<td class="col-{key}" data-label="{text}"' for key, text in headers.items()}
    action_cell, token_cell = CELLS["action"], CELLS["token"]
    comments_cell, result_cell = CELLS["comments"], CELLS["result"]
    for hit in hits:
        get = hit.get
        code = get("event.action", "")
        action = action_cell(hit)
        if action and CATALOG.get(code) is not None:
            action = str(translate(action))  # label(), without its lookups
        action_e = _e(action)
        token = _e(token_cell(hit))
        comments = _e(comments_cell(hit))
        ts = local_time(hit, tz)
        if ts is not None:
            # One strftime for the time's tooltip; the row's clock is its tail.
            exact = f"{ts:%Y-%m-%d %H:%M:%S}"
            day = days.get((ts.year, ts.month, ts.day))
            if day is None:
                day = days[(ts.year, ts.month, ts.day)] = ts.strftime(day_fmt)
            shift = ts.utcoffset()
            offset = offsets.get(shift)
            if offset is None:
                offset = offsets[shift] = offset_label(tz, ts)
            clock_text = exact[11:] if len(exact) == 19 else clock(ts)
            time_title = f"{exact} {offset} · {ago_text % {'span': ago(now - ts, lang)}}"
        else:
            day = clock_text = ""
            time_title = " · "
        highlight = get("_highlight")
        if isinstance(highlight, list):
            highlight = " … ".join(highlight)
        comments_html = safe_highlight(highlight) if highlight else comments
        user_title, user_name, user_second = _person(hit, "user")
        user = target = ""
        key = get("user.email") or get("user.name") or get("user.id")
        if key:
            user = (
                f'<a href="{base}{_e(_quote(str(key)))}" title="{_e(user_title)} · '
                f'{history_title}" data-testid="history-link">'
                f"{_person_html(user_name, user_second)}</a>"
            )
        key = get("user.target.email") or get("user.target.name") or get("user.target.id")
        if key:
            target_title, target_name, target_second = _person(hit, "user.target")
            target = (
                f'<a href="{base}{_e(_quote(str(key)))}" '
                f'title="{_e(target_title)} · {history_title}">'
                f"{_person_html(target_name, target_second)}</a>"
            )
        imp_title, imp_name, imp_second = _person(hit, "audit.impersonator")
        name, ident = get("audit.project.name") or "", get("audit.project.id") or ""
        if name:
            project = f'<span class="who">{_e(name)}</span>'
            if ident and ident != name:
                project += f' <span class="sub">{_e(ident)}</span>'
        else:
            project = _e(ident)
        ip = get("source.ip") or get("source.address") or ""
        device_text = device_label(hit)
        device = f' <span class="sub">{_e(device_text)}</span>' if device_text else ""
        event_id = get("event.id")
        ip_title = " · ".join(p for p in (str(ip), device_text) if p)
        outcome = get("event.outcome", "unknown")
        out.append(
            f'<tr data-event="{_e(event_id or "")}">'
            f"{td['action']}>"
            f'<a class="row-open" href="{ev_base}{_e(_quote(str(event_id or "")))}{tz_q}" '
            f'title="{action_e} ({_e(code)}) · {details_title}" '
            f'data-testid="row-open">{action_e}</a></td>'
            f"{td['timestamp']}>"
            f'<time datetime="{_e(get("@timestamp", ""))}" title="{_e(time_title)}">'
            f'{_e(day)} <span class="sub">{clock_text}</span></time></td>'
            f"{td['user']}>{user}</td>"
            f'{td["token"]} title="{token}">{token}</td>'
            f"{td['target']}>{target}</td>"
            f'{td["project"]} title="{_e(name or ident)}">{project}</td>'
            f'{td["comments"]} title="{comments}">{comments_html}</td>'
            f'{td["ip_device"]} title="{_e(ip_title)}">'
            f'<span class="ip">{_e(ip)}</span>{device}</td>'
            f'{td["result"]}><span class="badge badge-{_e(outcome)}">'
            f"{outcome_text.get(outcome, _e(result_cell(hit)))}</span></td>"
            f'{td["impersonator"]} title="{_e(imp_title)}">'
            f"{_person_html(imp_name, imp_second)}</td>"
            "</tr>\n"
        )
    return Markup("".join(out))


def facet_rests(filters: Filters) -> dict[str, str]:
    """Per facet parameter, the page's query string without it: each bucket's link
    adds its values to that (the filters alone decide it: built while the store searches)."""
    return {param: filters.with_values(param, ()).qs() for param in FACET_PARAMS.values()}


def facets_html(
    filters: Filters, page: SearchPage | None, base: str, rests: dict[str, str]
) -> Markup:
    """The facet sections: per facet its buckets, each a link toggling that value
    (any of a facet's ticked values matches), with its count."""
    if page is None:
        return Markup("")
    out = []
    number = number_format()
    base_e = _e(base)
    for name, buckets in page.facets.items():
        if not buckets:
            continue
        param = FACET_PARAMS[name]
        current = filters.values.get(param, ())
        rest = rests[param]
        name_e = _e(name)
        out.append(
            f'<section class="facet" data-facet="{name_e}"><h2>{_e(_(FACET_LABELS[name]))}</h2><ul>'
        )
        for value, count in buckets:
            active = value in current
            values = [v for v in current if v != value] if active else [*current, value]
            tail = "&".join(query_pair(param, v) for v in values)
            link = f"{rest}&{tail}" if rest and tail else rest or tail
            out.append(
                f'<li><a href="{base_e}?{_e(link)}" class="{"active" if active else ""}" '
                f'data-testid="facet-{name_e}" title="{_e(value)}">'
                f'<span class="facet-v">{_e(shown_value(param, value))}</span>'
                f'<span class="count">{_e(number(count))}</span>'
                "</a></li>\n"
            )
        out.append("</ul></section>\n")
    return Markup("".join(out))


def _history_base(account: str, filters: Filters) -> str:
    """The start of every "User history of …" link: the filters minus history, page 1."""
    qs = filters.with_values("history", ()).qs()
    return url_for(".actions", account=account) + "?" + (qs + "&" if qs else "") + "history="


def _read_mark(store: Any, account: str) -> datetime | None:
    """The account's completeness mark; None when there is none or it cannot be read now."""
    try:
        return complete_up_to(store, account)
    except StoreError:
        return None


def _completeness(mark: datetime | None, tz: Any) -> tuple[datetime | None, bool]:
    """The completeness mark in ``tz``, and whether indexing lags more than configured."""
    if mark is None:
        return None, False
    lag = float(current_app.config.get("USERAUDIT_COMPLETENESS_LAG", 120))
    return mark.astimezone(tz), (datetime.now(UTC) - mark).total_seconds() > lag


def page_request(filters: Filters, query: Query, tz: ZoneInfo) -> SearchRequest:
    """What the page asks the store for: a page of hits with their total, the
    facets and the activity chart's buckets, in one request (bench.search sends it raw)."""
    return SearchRequest(
        query,
        size=filters.size,
        cursor=filters.cursor,
        before=filters.before,
        last=filters.last,
        facets=tuple(FACETS),
        facet_size=FACET_SIZE,
        highlight=bool(filters.text),
        fields=PAGE_FIELDS,
        histogram=chart.plan(query, tz),
    )


class _SearchRefused(Exception):
    """The store refused the search after the page's head went out with Export enabled."""


def _search(store: Any, req: SearchRequest) -> SearchPage:
    with SEARCH_SECONDS.labels("actions").time():
        return store.search(req)


def pager_links(
    filters: Filters, page: SearchPage, href: Callable[..., str], _: Callable[..., Markup]
) -> dict[str, Any]:
    """The pager's range in words and its four links ("" where disabled), for both pagers."""
    first, last = filters.page_range(page.total, len(page.hits))
    number = number_format()
    back = not filters.on_first_page and bool(filters.cursors or page.prev_cursor)
    newer = page.prev_cursor if filters.from_end else None
    return {
        "range": _(
            "%(first)s–%(last)s of %(total)s",
            first=number(first),
            last=number(last),
            total=number(page.total),
        ),
        "first": href(filters) if back else "",
        "prev": href(filters.previous_page(newer), True) if back else "",
        "next": href(filters.next_page(page.next_cursor), True) if page.next_cursor else "",
        "last": href(filters.last_page(), True) if page.next_cursor else "",
    }


def _href(base: str) -> Callable[..., str]:
    """The page's link for a filter state (the templates' ``href``)."""

    def href(filters: Filters, cursors: bool = False) -> str:
        qs = filters.qs(keep_cursors=cursors)
        return f"{base}?{qs}" if qs else base

    return href


@bp.get("/a/<account>/actions")
@admin_required
def actions(account: str) -> Any:
    default = default_tz()
    error = error_field = None
    status = 200
    try:
        filters = Filters.parse(request.args, default)
    except QueryError as exc:
        error, status = problem(exc), 400
        error_field = field_at_fault(request.args, default)
        filters = as_typed(request.args, default)
    try:
        tz = zone(filters.tz)
    except QueryError:
        tz = zone(default)
    query: Query | None = None
    chart_spec: tuple[int, int] | None = None
    mark_job: Future[datetime | None] | None = None
    search_job: Future[SearchPage] | None = None
    if error is None:
        try:
            query = filters.query(account)
            req = page_request(filters, query, tz)
        except QueryError as exc:
            error, status = problem(exc), 400
        else:
            # The store searches on other threads while this one renders the
            # page down to the results (header, filters, pickers); the
            # template's results() then waits for the answer.
            store = resources.store()
            chart_spec = req.histogram
            search_job = _STORE_POOL.submit(_search, store, req)
            mark_job = _STORE_POOL.submit(_read_mark, store, account)
    base = url_for(".actions", account=account)
    href = _href(base)
    _ = page_gettext()
    tz_offset = offset_label(tz)
    outcome: dict[str, Any] = {"status": status}
    # What the answer's parts need that the filters alone decide, built while
    # the store searches: the chart's bars without their counts, the links' starts.
    keep = [(k, v) for k, v in filters.args() if k not in ("period", "from", "to")]
    chart_frame = (
        chart.frame(query, chart_spec, tz, base, keep)
        if search_job is not None and query is not None and chart_spec
        else None
    )
    history_base = _history_base(account, filters)
    rests = facet_rests(filters)
    event_base = url_for("useraudit.event.event", account=account, event_id="x")[:-1]

    def results() -> Markup:
        """The chart, facets and rows: waits for the store's answer, then renders them."""
        page: SearchPage | None = None
        store_down = False
        if search_job is not None:
            try:
                page = search_job.result()
            except QueryError as exc:
                if mark_job is not None:
                    mark_job.result()
                raise _SearchRefused(problem(exc)) from exc
            except StoreError as exc:
                current_app.logger.warning("search failed: %s", exc)
                store_down, outcome["status"] = True, 503
        hits = page.hits if page else []
        mark = mark_job.result() if mark_job is not None else None
        complete, lagging = _completeness(mark, tz) if page is not None else (None, False)
        activity = None
        if page is not None and page.total and page.histogram is not None and chart_frame:
            shape = chart_frame
            if not chart.covers(shape, page.histogram):  # a bucket began while it searched
                assert query is not None and chart_spec is not None
                shape = chart.frame(query, chart_spec, tz, base, keep)
            activity = chart.fill(page.histogram, shape)
        tz_arg = filters.tz if filters.tz != "UTC" else ""
        # Straight through Jinja: this part of the page reads nothing the
        # context processors add (user, CSRF token, notices), and the page
        # around it already ran them.
        results_template = current_app.jinja_env.get_template("useraudit/_results.html")
        return Markup(
            results_template.render(
                base=base,
                href=href,
                f=filters,
                page=page,
                rows=hits,
                rows_html=rows_html(hits, tz, history_base, event_base, tz_arg),
                facets_html=facets_html(filters, page, base, rests),
                pager=pager_links(filters, page, href, _) if page and hits else None,
                chart=activity,
                complete=complete,
                lagging=lagging,
                error=error,
                store_down=store_down,
                columns=COLUMNS,
                periods=PERIODS,
                tz_offset=tz_offset,
                now=datetime.now(UTC).astimezone(tz),
                _=_,
            )
        )

    def page_html() -> str:
        tree = _catalog_tree()
        shown = filters.values.get("product", ())
        return render_template(
            "useraudit/actions.html",
            account=account,
            accounts=current_user.admin_accounts(),
            base=base,
            href=href,
            f=filters,
            results=results,
            error=error,
            error_field=error_field,
            periods=PERIODS,
            page_sizes=PAGE_SIZES,
            tree=tree,
            tree_html=tree_html(shown, filters.groups, filters.values.get("action", ())),
            tz_options=datalist_options(),
            tz_offset=tz_offset,
            tree_codes={
                a.code
                for p in tree
                if not shown or p["code"] in shown
                for g in p["groups"]
                for a in g["actions"]
            },
            multi=MULTI,
            value_label=shown_value,
            active_count=len(filters.values)
            + (1 if filters.groups else 0)
            + (1 if filters.text else 0),
            tz_auto=not request.args.get("tz") and "tz" not in preferences(),
            _=_,
        )

    try:
        html = page_html()
    except _SearchRefused as refused:
        # Rare (SQLite's parser refusing a search text): render the page again
        # with the error, so Export is disabled as for any invalid filter.
        error, outcome["status"] = str(refused), 400
        search_job = mark_job = None
        html = page_html()
    return html, outcome["status"]
