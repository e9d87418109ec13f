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
    st.lists(st.sampled_from(AWKWARD) | st.text(st.characters(max_codepoint=127), max_size=5), max_size=8).map("".join),
)
# Any text around at least one visible character, built rather than filtered: filtering blank draws
# out of TEXT discarded so many that Hypothesis's health check failed some runs.
VISIBLE = st.characters(categories=["L", "N", "P", "S"])
QUERY = st.builds(lambda before, visible, after: before + visible + after, TEXT, VISIBLE, TEXT).filter(
    lambda text: bool(text.strip())
)
