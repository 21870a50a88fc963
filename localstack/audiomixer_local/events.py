"""EventBridge event-pattern matching (the subset rules use: exact values, prefix, suffix, anything-but,
exists, equals-ignore-case, wildcard, numeric), so that a local event reaches a function only when the
template's rule would have sent it there."""

from __future__ import annotations

import fnmatch
import operator
from typing import Any

_MISSING = object()
_NUMERIC = {"<": operator.lt, "<=": operator.le, "=": operator.eq, ">=": operator.ge, ">": operator.gt}


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """True when `event` matches the EventBridge `pattern`."""
    if not isinstance(event, dict):
        return False
    for key, expected in pattern.items():
        value = event.get(key, _MISSING)
        if isinstance(expected, dict):
            if value is _MISSING or not matches(expected, value):
                return False
        elif isinstance(expected, list):
            if not _match_values(expected, value):
                return False
        elif value != expected:
            return False
    return True


def _match_values(matchers: list[Any], value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    for matcher in matchers:
        if isinstance(matcher, dict):
            if "exists" in matcher:
                if (value is not _MISSING) == bool(matcher["exists"]):
                    return True
                continue
            if value is _MISSING:
                continue
            if any(_match_one(matcher, v) for v in values):
                return True
        elif value is not _MISSING and any(v == matcher for v in values):
            return True
    return False


def _match_one(matcher: dict[str, Any], value: Any) -> bool:
    ((kind, arg),) = matcher.items()
    if kind == "prefix":
        return isinstance(value, str) and value.startswith(_text(arg))
    if kind == "suffix":
        return isinstance(value, str) and value.endswith(_text(arg))
    if kind == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(arg).lower()
    if kind == "wildcard":
        return isinstance(value, str) and fnmatch.fnmatchcase(value, str(arg))
    if kind == "anything-but":
        if isinstance(arg, dict):
            return not _match_one(arg, value)
        excluded = arg if isinstance(arg, list) else [arg]
        return value not in excluded
    if kind == "numeric":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        ops = list(arg)
        return all(_NUMERIC[ops[i]](value, ops[i + 1]) for i in range(0, len(ops), 2))
    return False


def _text(arg: Any) -> str:
    # {"prefix": {"equals-ignore-case": ...}} is rare; plain strings are the rule
    return str(arg)
