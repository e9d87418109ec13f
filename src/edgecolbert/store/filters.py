"""One small, engine-neutral metadata filter, translated to each engine's own filter type.

The form is a mapping from a metadata field (dotted paths reach nested fields) to a condition::

    {"lang": "en"}                          equality
    {"tags": ["a", "b"]}                    any of these values
    {"year": {"gte": 2020, "lt": 2024}}     numeric range (gt, gte, lt, lte)
    {"lang": {"eq": "en"}}, {"tags": {"in": [...]}}   the same, spelled out

All conditions must hold. Values compared for equality are strings, integers or booleans:
floats are matched with a range, because exact float equality is rarely what anyone means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from edgecolbert.errors import InvalidInputError

MetadataFilter = Mapping[str, Any]

_RANGE_OPERATORS = ("gt", "gte", "lt", "lte")


@dataclass(frozen=True)
class Condition:
    key: str
    kind: Literal["eq", "any", "range"]
    value: Any


def parse_filter(spec: MetadataFilter | None) -> list[Condition]:
    """Check a filter mapping and turn it into conditions; raises InvalidInputError on anything unclear."""
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise InvalidInputError(
            f"A filter is a mapping of metadata field to condition, e.g. {{'lang': 'en'}}; got {type(spec).__name__}."
        )
    return [_condition(key, value) for key, value in spec.items()]


def _condition(key: object, value: Any) -> Condition:
    if not isinstance(key, str) or not key.strip():
        raise InvalidInputError(f"Filter keys are metadata field names; got {key!r}.")
    if isinstance(value, Mapping):
        return _operator_condition(key, value)
    if isinstance(value, (list, tuple)):
        return Condition(key, "any", _match_values(key, value))
    return Condition(key, "eq", _match_value(key, value))


def _operator_condition(key: str, value: Mapping[str, Any]) -> Condition:
    operators = set(value)
    if operators == {"eq"}:
        return Condition(key, "eq", _match_value(key, value["eq"]))
    if operators == {"in"}:
        if not isinstance(value["in"], (list, tuple)):
            raise InvalidInputError(f"Filter on '{key}': 'in' takes a list of values.")
        return Condition(key, "any", _match_values(key, value["in"]))
    if operators and operators <= set(_RANGE_OPERATORS):
        bounds = {name: _number(key, name, bound) for name, bound in value.items()}
        return Condition(key, "range", bounds)
    raise InvalidInputError(
        f"Filter on '{key}': unknown condition {sorted(operators)}; use 'eq', 'in' or range bounds {_RANGE_OPERATORS}."
    )


def _match_values(key: str, values: Sequence[Any]) -> list[str | int | bool]:
    if not values:
        raise InvalidInputError(f"Filter on '{key}': the list of accepted values is empty, so nothing could match.")
    matched = [_match_value(key, item) for item in values]
    kinds = {type(item) for item in matched}
    if len(kinds) > 1:
        # Qdrant matches either keywords or integers in one condition, never a mix.
        raise InvalidInputError(
            f"Filter on '{key}': the accepted values mix types {sorted(k.__name__ for k in kinds)}."
        )
    return matched


_INT64 = (-(2**63), 2**63 - 1)


def _match_value(key: str, value: Any) -> str | int | bool:
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        # Qdrant stores integers as 64-bit: a larger one could never match, and the engines reject it.
        raise InvalidInputError(f"Filter on '{key}': {value} is outside the 64-bit integer range Qdrant stores.")
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        raise InvalidInputError(f"Filter on '{key}': match a float with a range such as {{'gte': x, 'lte': x}}.")
    raise InvalidInputError(f"Filter on '{key}': values are strings, integers or booleans; got {type(value).__name__}.")


def _number(key: str, name: str, bound: Any) -> float:
    if isinstance(bound, bool) or not isinstance(bound, (int, float)):
        raise InvalidInputError(f"Filter on '{key}': range bound '{name}' must be a number; got {bound!r}.")
    try:
        number = float(bound)
    except OverflowError as exc:
        raise InvalidInputError(f"Filter on '{key}': range bound '{name}' is too large for a float.") from exc
    if math.isnan(number):
        raise InvalidInputError(f"Filter on '{key}': range bound '{name}' is NaN.")
    return number


def payload_key(prefix: str, key: str) -> str:
    """The payload path of a metadata field under the collection's metadata prefix ('' = top level)."""
    return f"{prefix}.{key}" if prefix else key
