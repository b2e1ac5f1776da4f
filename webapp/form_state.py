"""What the filter form shows when the URL's filters cannot be used.

An invalid filter must not throw away what the admin typed: the page shows
the form as submitted, marks the field at fault and disables Export (an
export must never quietly fall back to other filters).
"""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from useraudit.store import QueryError

from .filters import DEFAULT_PERIOD, DEFAULT_SIZE, MULTI, PAGE_SIZES, PERIODS, Filters

# Form field (as the template names it) → the URL parameters it is made of.
FIELDS: dict[str, tuple[str, ...]] = {
    "period": ("period", "from", "to"),
    "tz": ("tz",),
    "q": ("q",),
    "size": ("size",),
    "c": ("c", "last", "b"),
    "group": ("group",),
    **{name: (name,) for name in MULTI},
}


def as_typed(args: MultiDict, default_tz: str) -> Filters:
    """The submitted values, unchecked, in the shape the template reads."""
    values: dict[str, tuple[str, ...]] = {}
    for name in MULTI:
        # As typed, one value per box (never split on commas: see filters._values).
        parts = tuple(dict.fromkeys(v.strip() for v in args.getlist(name) if v.strip()))
        if parts:
            values[name] = parts
    period = args.get("period") or DEFAULT_PERIOD
    try:
        size = int(args.get("size") or DEFAULT_SIZE)
    except ValueError:
        size = DEFAULT_SIZE
    return Filters(
        values=values,
        groups=tuple(g for g in args.getlist("group") if g),
        period=period if period in PERIODS else DEFAULT_PERIOD,
        start_local=(args.get("from") or "").strip(),
        end_local=(args.get("to") or "").strip(),
        tz=(args.get("tz") or default_tz).strip(),
        text=(args.get("q") or "").strip(),
        size=size if size in PAGE_SIZES else DEFAULT_SIZE,
    )


def field_at_fault(args: MultiDict, default_tz: str) -> str | None:
    """The first form field whose removal makes the filters valid (None if no single one)."""
    present = {name for name, _v in args.items(multi=True)}
    for field, names in FIELDS.items():
        if not present & set(names):
            continue
        trimmed = MultiDict([(k, v) for k, v in args.items(multi=True) if k not in names])
        try:
            Filters.parse(trimmed, default_tz)
        except QueryError:
            continue
        return field
    return None
