"""Hypothesis strategies for text: surrogate-free text in every script, with the characters that break
naive pipelines (NUL, escapes, combining marks, zero-width and bidi controls, emoji) mixed in."""

from __future__ import annotations

from hypothesis import strategies as st

AWKWARD = [
    "",
    " ",
    "\x00",
    "\x07",
    "\x1b[0m",
    "\t\r\n",
    "\u0301",
    "\u200b",
    "\u200d",
    "\u202e",
    "\ufeff",
    "العربية",
    "🙂",
    "\x1b[31m",
    "שלום",
    "👩‍👩‍👧",
]
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=60),
    st.lists(st.sampled_from(AWKWARD) | st.text(max_size=5).filter(str.isascii), max_size=8).map("".join),
)
QUERY = TEXT.filter(lambda text: bool(text.strip()))
