"""The event catalog: every action useraudit knows, with a stable code.

Every action on the product page (``shared/seed/user-actions-audit.txt``) is
here word for word as its human label, under its product ("Common events",
"JAICP") and group. The machine code (``custom_role.renamed``) is what is
stored in ``event.action``; labels may be reworded later, codes never change.

Host apps add their own products and actions::

    from useraudit import catalog
    catalog.register_product("billing", "Billing")
    catalog.register_action("invoice.paid", "Invoice paid",
                            product="billing", group="Invoices",
                            category=("configuration",), type=("change",))

An action code that is not registered is still accepted everywhere: the
indexer stores it with ``audit.flags: ["unknown_action"]`` and its code as the
label, so nothing is ever dropped for being new.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

ACTION_CODE = re.compile(r"^[a-z0-9][a-z0-9_]*(\.[a-z0-9_]+)+$")


@dataclass(frozen=True, slots=True)
class Product:
    code: str
    label: str


@dataclass(frozen=True, slots=True)
class Action:
    """One auditable action.

    ``category`` and ``type`` are the ECS ``event.category`` and
    ``event.type`` values the indexer writes for it, so Dashboards users can
    query by ECS categorisation as well as by our own codes.
    """

    code: str
    label: str
    product: str
    group: str
    category: tuple[str, ...]
    type: tuple[str, ...]
    # Actions that one user performs on another fill the Modified user column.
    targets_user: bool = False


class UnknownProduct(ValueError):
    pass


class Catalog:
    """A registry of products and actions; thread-safe for registration."""

    def __init__(self) -> None:
        self._products: dict[str, Product] = {}
        self._actions: dict[str, Action] = {}
        self._lock = threading.Lock()
        # Bumped by every registration: views built from the catalog cache on it.
        self.version = 0

    def register_product(self, code: str, label: str) -> Product:
        product = Product(code, label)
        with self._lock:
            self._products[code] = product
            self.version += 1
        return product

    def register_action(
        self,
        code: str,
        label: str,
        *,
        product: str,
        group: str,
        category: tuple[str, ...] = ("configuration",),
        type: tuple[str, ...] = ("change",),
        targets_user: bool = False,
    ) -> Action:
        if not ACTION_CODE.match(code):
            raise ValueError(
                f"action code {code!r} must be dotted lower-case words, e.g. 'custom_role.renamed'"
            )
        if product not in self._products:
            raise UnknownProduct(f"register product {product!r} before its actions")
        action = Action(code, label, product, group, tuple(category), tuple(type), targets_user)
        with self._lock:
            existing = self._actions.get(code)
            if existing is not None and existing != action:
                raise ValueError(f"action code {code!r} is already registered as {existing}")
            self._actions[code] = action
            self.version += 1
        return action

    def get(self, code: str) -> Action | None:
        return self._actions.get(code)

    def product(self, code: str) -> Product | None:
        return self._products.get(code)

    def products(self) -> list[Product]:
        return list(self._products.values())

    def actions(self, product: str | None = None) -> Iterator[Action]:
        for action in list(self._actions.values()):
            if product is None or action.product == product:
                yield action

    def groups(self, product: str) -> list[str]:
        seen: dict[str, None] = {}
        for action in self.actions(product):
            seen.setdefault(action.group, None)
        return list(seen)

    def __contains__(self, code: object) -> bool:
        return code in self._actions

    def __len__(self) -> int:
        return len(self._actions)


CATALOG = Catalog()
register_product = CATALOG.register_product
register_action = CATALOG.register_action

# ECS categorisation shorthands.
_AUTH_START = (("authentication",), ("start",))
_AUTH_END = (("authentication", "session"), ("end",))
_IAM_CREATE = (("iam",), ("creation",))
_IAM_CHANGE = (("iam",), ("change",))
_IAM_DELETE = (("iam",), ("deletion",))
_IAM_USER_CHANGE = (("iam",), ("user", "change"))
_IAM_USER_CREATE = (("iam",), ("user", "creation"))
_CFG_CREATE = (("configuration",), ("creation",))
_CFG_CHANGE = (("configuration",), ("change",))
_CFG_DELETE = (("configuration",), ("deletion",))
_ACCESS = (("web",), ("access",))
_API_CREATE = (("api", "iam"), ("creation",))
_API_CHANGE = (("api", "iam"), ("change",))
_API_DELETE = (("api", "iam"), ("deletion",))

# (code, label, group, (category, type), targets_user)
_COMMON: list[tuple[str, str, str, tuple[tuple[str, ...], tuple[str, ...]], bool]] = [
    # "Account verification actions" on the page is a heading over the two below.
    (
        "phone_number.confirmed",
        "Phone number confirmed",
        "Account verification",
        _IAM_USER_CHANGE,
        False,
    ),
    (
        "phone_number.confirmation_code_requested",
        "Phone number confirmation code request",
        "Account verification",
        (("iam",), ("user", "info")),
        False,
    ),
    ("custom_role.created", "Custom role created", "Custom role", _IAM_CREATE, False),
    ("custom_role.updated", "Custom role updated", "Custom role", _IAM_CHANGE, False),
    ("custom_role.renamed", "Custom role renamed", "Custom role", _IAM_CHANGE, False),
    ("custom_role.deleted", "Custom role deleted", "Custom role", _IAM_DELETE, False),
    (
        "user_account.blocked",
        "User account blocked",
        "User account",
        (("iam",), ("user", "admin", "change")),
        True,
    ),
    (
        "user_account.unblocked",
        "User account unblocked",
        "User account",
        (("iam",), ("user", "admin", "change")),
        True,
    ),
    (
        "user_account.blocked_failed_sign_ins",
        "Account is blocked, too many failed sign-in attempts",
        "User account",
        (("iam", "authentication"), ("user", "change")),
        True,
    ),
    ("user.added", "New user added", "Users", _IAM_USER_CREATE, True),
    (
        "user.roles_updated",
        "User roles updated",
        "Users",
        (("iam",), ("user", "group", "change")),
        True,
    ),
    ("user.signed_in", "User signed in", "Users", _AUTH_START, False),
    ("user.signed_out", "User signed out", "Users", _AUTH_END, False),
    ("user.password_changed", "User profile password changed", "Users", _IAM_USER_CHANGE, False),
    ("user.profile_updated", "User profile updated", "Users", _IAM_USER_CHANGE, False),
]


def _verbs(
    prefix_code: str, prefix_label: str, group: str, verbs: list[tuple[str, str, tuple]]
) -> list[tuple[str, str, str, tuple, bool]]:
    return [
        (f"{prefix_code}.{code}", f"{prefix_label} {label}", group, cat, False)
        for code, label, cat in verbs
    ]


def _labels(code: str, label: str) -> list[tuple[str, str, str, tuple, bool]]:
    return _verbs(
        code,
        label,
        "Labels",
        [
            ("added_to_catalog", "added to catalog", _CFG_CREATE),
            ("updated", "updated", _CFG_CHANGE),
            ("removed_from_catalog", "removed from catalog", _CFG_DELETE),
        ],
    )


_JAICP: list[tuple[str, str, str, tuple, bool]] = [
    *_verbs(
        "bot_project",
        "Bot project",
        "Bot projects",
        [
            ("created", "created", _CFG_CREATE),
            ("cloned", "cloned", _CFG_CREATE),
            ("deleted", "deleted", _CFG_DELETE),
        ],
    ),
    ("bot_project.exported", "Bot project exported", "Bot projects", _ACCESS, False),
    ("bot_project.imported", "Bot project imported", "Bot projects", _CFG_CHANGE, False),
    (
        "bot_project.settings_updated",
        "Bot project settings updated",
        "Bot projects",
        _CFG_CHANGE,
        False,
    ),
    *_verbs(
        "task",
        "Task",
        "Tasks",
        [
            ("closed", "closed", _CFG_CHANGE),
            ("created", "created", _CFG_CREATE),
            ("updated", "updated", _CFG_CHANGE),
        ],
    ),
    (
        "inbound_channel.settings_updated",
        "Inbound channel settings updated",
        "Inbound channels",
        _CFG_CHANGE,
        False,
    ),
    *_verbs(
        "inbound_channel",
        "Inbound channel",
        "Inbound channels",
        [
            ("connected", "connected", _CFG_CREATE),
            ("deleted", "deleted", _CFG_DELETE),
            ("blocked", "blocked", _CFG_CHANGE),
            ("unblocked", "unblocked", _CFG_CHANGE),
        ],
    ),
    (
        "cep.connected",
        "Customer engagement platform connected",
        "Customer engagement platforms",
        _CFG_CREATE,
        False,
    ),
    (
        "cep.settings_updated",
        "Customer engagement platform settings updated",
        "Customer engagement platforms",
        _CFG_CHANGE,
        False,
    ),
    (
        "cep.deleted",
        "Customer engagement platform deleted",
        "Customer engagement platforms",
        _CFG_DELETE,
        False,
    ),
    *_verbs(
        "client",
        "Client",
        "Clients",
        [
            ("blocked", "blocked", _CFG_CHANGE),
            ("unblocked", "unblocked", _CFG_CHANGE),
        ],
    ),
    *_labels("label_group", "Label group"),
    *_labels("phrase_label", "Phrase label"),
    *_labels("session_label", "Session label"),
    *_labels("task_label", "Task label"),
    ("project_label.created", "Project label created", "Tags", _CFG_CREATE, False),
    ("project_label.updated", "Project labels updated", "Tags", _CFG_CHANGE, False),
    ("project_label.deleted", "Project label deleted", "Tags", _CFG_DELETE, False),
    *_verbs(
        "masking_rule",
        "Masking rule",
        "Log obfuscation rules",
        [
            ("created", "created", _CFG_CREATE),
            ("updated", "updated", _CFG_CHANGE),
            ("enabled", "enabled", _CFG_CHANGE),
            ("disabled", "disabled", _CFG_CHANGE),
            ("deleted", "deleted", _CFG_DELETE),
        ],
    ),
    (
        "masking_rule_template.deleted",
        "Masking rule template deleted",
        "Log obfuscation rules",
        _CFG_DELETE,
        False,
    ),
    ("message_log.downloaded", "Message log downloaded", "Analytics", _ACCESS, False),
    ("session_log.downloaded", "Session log downloaded", "Analytics", _ACCESS, False),
    ("client_report.downloaded", "Client report downloaded", "Analytics", _ACCESS, False),
    *_verbs(
        "token",
        "Token",
        "API tokens",
        [
            ("created", "created", _API_CREATE),
            ("refreshed", "refreshed", _API_CHANGE),
            ("updated", "updated", _API_CHANGE),
            ("deleted", "deleted", _API_DELETE),
        ],
    ),
    (
        "environment_variable.created",
        "Environment variable create",
        "Environment variables",
        _CFG_CREATE,
        False,
    ),
    (
        "environment_variable.updated",
        "Environment variable update",
        "Environment variables",
        _CFG_CHANGE,
        False,
    ),
    (
        "environment_variable.deleted",
        "Environment variable delete",
        "Environment variables",
        _CFG_DELETE,
        False,
    ),
]

# useraudit's own admin UI audits itself under a product of its own.
_USERAUDIT: list[tuple[str, str, str, tuple, bool]] = [
    ("audit_log.downloaded", "User actions log downloaded", "User actions", _ACCESS, False),
    ("audit_log.retention_changed", "Retention period changed", "User actions", _CFG_CHANGE, False),
    ("audit_log.legal_hold_placed", "Legal hold placed", "User actions", _CFG_CHANGE, False),
    ("audit_log.legal_hold_lifted", "Legal hold lifted", "User actions", _CFG_CHANGE, False),
    ("audit_log.canary", "Indexing latency probe (canary)", "User actions", _ACCESS, False),
    # useraudit's own API tokens (/api/v1): not the host product's tokens of the
    # product page's JAICP list, so an admin filtering those never sees these.
    ("audit_api_token.created", "User actions API token created", "API tokens", _API_CREATE, False),
    ("audit_api_token.revoked", "User actions API token revoked", "API tokens", _API_DELETE, False),
    (
        "audit_api_token.used_from_new_address",
        "User actions API token used from a new address",
        "API tokens",
        _AUTH_START,
        False,
    ),
    (
        "security_alert.acknowledged",
        "Security alert acknowledged",
        "Security alerts",
        _CFG_CHANGE,
        False,
    ),
    ("security_alert.resolved", "Security alert resolved", "Security alerts", _CFG_CHANGE, False),
    ("security_alert.reopened", "Security alert reopened", "Security alerts", _CFG_CHANGE, False),
]


def _load_builtin(catalog: Catalog) -> None:
    for product, label, rows in (
        ("common", "Common events", _COMMON),
        ("jaicp", "JAICP", _JAICP),
        ("useraudit", "User actions audit", _USERAUDIT),
    ):
        catalog.register_product(product, label)
        for code, action_label, group, (category, types), targets_user in rows:
            catalog.register_action(
                code,
                action_label,
                product=product,
                group=group,
                category=category,
                type=types,
                targets_user=targets_user,
            )


_load_builtin(CATALOG)
