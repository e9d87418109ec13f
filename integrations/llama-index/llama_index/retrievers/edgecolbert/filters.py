"""LlamaIndex ``MetadataFilters`` translated to edgecolbert's filter form.

edgecolbert takes one condition per metadata field, all of which must hold: equality, any-of and
numeric ranges. The LlamaIndex filters that say the same (AND of EQ, IN, ANY, CONTAINS and range
operators) are translated; anything else is refused with the reason rather than silently widened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from edgecolbert import InvalidInputError, InvalidTypeError
from edgecolbert.store import MetadataFilter as StoreFilter
from edgecolbert.store import parse_filter

_RANGES = {
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
}
# ANY and IN both mean "the field (or one element of a list field) equals one of these";
# CONTAINS means "the list field has this element", which is what equality does on a list field.
_ANY_OF = (FilterOperator.IN, FilterOperator.ANY)
_EQUALS = (FilterOperator.EQ, FilterOperator.CONTAINS)


def to_store_filter(filters: MetadataFilters | StoreFilter | None) -> dict[str, Any] | None:
    """An edgecolbert filter mapping from LlamaIndex ``MetadataFilters`` or from a filter mapping, checked."""
    if filters is None:
        return None
    if isinstance(filters, MetadataFilters):
        spec = _translate(filters)
    elif isinstance(filters, Mapping):
        spec = dict(filters)
    else:
        raise InvalidTypeError(
            "filters is an edgecolbert filter mapping such as {'lang': 'en'} or LlamaIndex MetadataFilters; "
            f"got {type(filters).__name__}."
        )
    parse_filter(spec)  # the store's own check, so a bad filter fails here and not at the first query
    return spec


def _translate(filters: MetadataFilters) -> dict[str, Any]:
    if filters.condition not in (None, FilterCondition.AND) and len(filters.filters) > 1:
        raise InvalidInputError(
            f"MetadataFilters with condition {filters.condition.value!r} cannot be expressed: edgecolbert filters "
            "require every condition to hold (AND)."
        )
    if filters.condition == FilterCondition.NOT:
        raise InvalidInputError("MetadataFilters with condition 'not' cannot be expressed in an edgecolbert filter.")
    spec: dict[str, Any] = {}
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            raise InvalidInputError("Nested MetadataFilters cannot be expressed; flatten them into one AND list.")
        _add(spec, item.key, _condition(item))
    return spec


def _condition(item: MetadataFilter) -> Any:
    operator, value = item.operator, item.value
    if operator in _RANGES:
        return {_RANGES[operator]: value}
    if operator in _EQUALS:
        # Exact float equality is a degenerate range in edgecolbert's form.
        return {"gte": value, "lte": value} if isinstance(value, float) else value
    if operator in _ANY_OF:
        if not isinstance(value, list):
            raise InvalidInputError(f"Filter on '{item.key}': operator {operator.value!r} takes a list of values.")
        return {"in": value}
    raise InvalidInputError(
        f"Filter on '{item.key}': operator {operator.value!r} has no edgecolbert equivalent; use ==, in, any, "
        "contains, >, >=, < or <=."
    )


def _add(spec: dict[str, Any], key: str, condition: Any) -> None:
    """One condition per field; two range bounds on one field (year >= a, year < b) merge into one range."""
    previous = spec.get(key)
    if previous is None:
        spec[key] = condition
        return
    if _is_range(previous) and _is_range(condition) and not set(previous) & set(condition):
        spec[key] = {**previous, **condition}
        return
    raise InvalidInputError(
        f"Filter on '{key}': two conditions on one field can only be range bounds on different sides; "
        f"got {previous!r} and {condition!r}."
    )


def _is_range(condition: Any) -> bool:
    return isinstance(condition, dict) and set(condition) <= set(_RANGES.values())
