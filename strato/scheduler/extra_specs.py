"""Matching a host's value against a flavor extra spec's requirement, as Nova's
``nova/scheduler/filters/extra_specs_ops.py`` does.

A requirement is either a plain string (the value must equal it exactly) or starts with an
operator word followed by its operand(s), separated by whitespace:

    =  N           numeric: value >= N (the old "at least" spelling)
    == N, != N     numeric equal / not equal
    >= N, <= N     numeric at least / at most
    s== S, s!= S   string equal / not equal
    s< S, s<= S    string order (code point comparison)
    s> S, s>= S
    <in> S         S is a substring of the value
    <all-in> A B   every word A, B, ... is in the value (a list-like value, e.g. the text
                   of a CPU feature list; on a string this is a substring test, as Nova)
    <or> A <or> B  the value equals one of the alternatives

As in Nova, only the first operand counts for the single-operand operators (``s== a b``
compares with ``a``), and an operator with no operand matches nothing. Unlike Nova, a
value or operand that is not a number never raises under a numeric operator: it simply
does not match.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import lru_cache

__all__ = ["OPERATORS", "match"]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def method(value: str, operand: str) -> bool:
        left, right = _number(value), _number(operand)
        return left is not None and right is not None and compare(left, right)
    return method


def _string(compare: Callable[[str, str], bool]) -> Callable[[str, str], bool]:
    def method(value: str, operand: str) -> bool:
        return compare(value, operand)
    return method


_SINGLE: dict[str, Callable[[str, str], bool]] = {
    "=": _numeric(operator.ge),
    "==": _numeric(operator.eq),
    "!=": _numeric(operator.ne),
    ">=": _numeric(operator.ge),
    "<=": _numeric(operator.le),
    "s==": _string(operator.eq),
    "s!=": _string(operator.ne),
    "s<": _string(operator.lt),
    "s<=": _string(operator.le),
    "s>": _string(operator.gt),
    "s>=": _string(operator.ge),
    "<in>": lambda value, operand: operand in value,
}

OPERATORS = frozenset({*_SINGLE, "<all-in>", "<or>"})


@lru_cache(maxsize=4096)
def _parse(requirement: str) -> tuple[str | None, tuple[str, ...]]:
    """(operator, operands) of a requirement; operator None for a plain string.

    Cached: the scheduler matches one flavor's requirements against thousands of hosts.
    For ``<or>`` the operands are the alternatives: the words at even places after the
    operator (the words between them are taken to be ``<or>`` without checking, as Nova).
    """
    words = requirement.split()
    if not words or words[0] not in OPERATORS:
        return None, ()
    op, rest = words[0], words[1:]
    if op == "<or>":
        return op, tuple(rest[0::2])
    return op, tuple(rest)


def match(value: str, requirement: str) -> bool:
    """Whether ``value`` (a host's capability, as text) satisfies ``requirement``."""
    op, operands = _parse(requirement)
    if op is None:
        return value == requirement
    if not operands:
        return False
    if op == "<or>":
        return value in operands
    if op == "<all-in>":
        return all(word in value for word in operands)
    return _SINGLE[op](value, operands[0])
