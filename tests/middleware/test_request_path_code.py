"""The modules on every request's path call no method on an object imported by name.

CPython 3.11 compiles ``name.method()`` on a name bound by ``from … import``
to a plain attribute load: the interpreter cannot specialise it, and each
call makes a new bound method. On ``bound.get/set/reset`` that was about a
tenth of a quiet request's cost (docs/capture.md, "Cost"); such methods are
named once in their module (``context.bind`` and the rest) instead.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types

import pytest

REQUEST_PATH = [
    "useraudit.middleware._common",
    "useraudit.middleware.asgi",
    "useraudit.middleware.django",
    "useraudit.middleware.fastapi",
    "useraudit.middleware.structlog",
    "useraudit.middleware.wsgi",
]

# What `from … import name` may bind and still be called through cheaply.
CHEAP = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)


def method_calls_on_imported_objects(module: types.ModuleType, source: str) -> list[str]:
    tree = ast.parse(source)
    imported = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if not isinstance(getattr(module, alias.asname or alias.name, None), CHEAP)
    }
    return [
        f"{module.__name__}:{node.lineno} {node.func.value.id}.{node.func.attr}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in imported
    ]


@pytest.mark.parametrize("module_name", REQUEST_PATH)
def test_no_method_call_on_an_imported_object(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert method_calls_on_imported_objects(module, inspect.getsource(module)) == []


def test_the_check_finds_such_a_call() -> None:
    """The check can fail: a method called on an imported instance, not on a module or class."""
    source = (
        "import decimal\n"
        "from decimal import Decimal, DefaultContext\n"
        "def f():\n"
        "    decimal.getcontext()\n"
        "    Decimal.from_float(1.0)\n"
        "    return DefaultContext.copy()\n"
    )
    module = types.ModuleType("example")
    exec(compile(source, "example", "exec"), module.__dict__)
    assert method_calls_on_imported_objects(module, source) == ["example:6 DefaultContext.copy()"]
