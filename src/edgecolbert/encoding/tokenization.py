"""Turn texts into ColBERT model inputs: marker token, truncation, [MASK] expansion, scoring masks.

The recipe follows PyLate 1.6 and sentence-transformers 6.2 ``MultiVectorEncoder`` token for
token (see ``../shared/reference/model-format.md`` §3), because the published quality of a
checkpoint only carries over when its inputs are built exactly as in training.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tokenizers import AddedToken, Tokenizer
from tokenizers.normalizers import Lowercase
from tokenizers.normalizers import Sequence as NormalizerSequence

from edgecolbert.encoding.checkpoint import CheckpointSpec
from edgecolbert.errors import CorruptCheckpointError, InvalidInputError, MissingCheckpointFileError

logger = logging.getLogger(__name__)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

Kind = Literal["query", "document"]


@dataclass(frozen=True)
class TokenizedBatch:
    """Padded model inputs for one batch, as numpy arrays of shape ``[batch, length]``."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    keep_mask: np.ndarray


@dataclass(frozen=True)
class _Prefix:
    token_id: int | None
    text: str


class ColbertTokenizer:
    """Tokenizes queries and documents for one checkpoint.

    Holds its own copy of the fast tokenizer with padding and truncation switched off, so
    concurrent calls never race on the tokenizer's mutable settings.
    """

    def __init__(
        self,
        spec: CheckpointSpec,
        *,
        query_length: int,
        document_length: int,
    ) -> None:
        hf_tokenizer = _load_hf_tokenizer(spec.backbone_dir)
        self._tokenizer = _plain_backend(hf_tokenizer, lowercase=spec.do_lower_case)
        if spec.layout != "sentence-transformers":
            _register_markers(self._tokenizer, hf_tokenizer, (spec.query_prefix, spec.document_prefix))
        self._set_spec(spec, query_length, document_length)
        self.pad_id = _expansion_token_id(hf_tokenizer, spec.expansion_token)
        self._query_prefix = _resolve_prefix(hf_tokenizer, spec.query_prefix)
        self._document_prefix = _resolve_prefix(hf_tokenizer, spec.document_prefix)
        self.skiplist_ids = _skiplist_ids(hf_tokenizer, spec.skiplist_words)
        self.vocab_size = len(hf_tokenizer)

    def _set_spec(self, spec: CheckpointSpec, query_length: int, document_length: int) -> None:
        self.query_length = query_length
        self.document_length = document_length
        self.query_expansion = spec.query_expansion
        self.attend_to_expansion_tokens = spec.attend_to_expansion_tokens

    def state(self) -> dict[str, Any]:
        """What transformers worked out for this tokenizer, as JSON-ready values for :meth:`from_state`."""
        return {
            "tokenizer": self._tokenizer.to_str(),
            "pad_id": self.pad_id,
            "query_prefix": [self._query_prefix.token_id, self._query_prefix.text],
            "document_prefix": [self._document_prefix.token_id, self._document_prefix.text],
            "skiplist_ids": self.skiplist_ids.tolist(),
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_state(
        cls, spec: CheckpointSpec, state: dict[str, Any], *, query_length: int, document_length: int
    ) -> ColbertTokenizer:
        """The tokenizer :meth:`state` described, rebuilt with the tokenizers library alone (no transformers)."""
        tokenizer = cls.__new__(cls)
        tokenizer._tokenizer = Tokenizer.from_str(state["tokenizer"])
        tokenizer._set_spec(spec, query_length, document_length)
        tokenizer.pad_id = int(state["pad_id"])
        tokenizer._query_prefix = _Prefix(*state["query_prefix"])
        tokenizer._document_prefix = _Prefix(*state["document_prefix"])
        tokenizer.skiplist_ids = np.array(state["skiplist_ids"], dtype=np.int64)
        tokenizer.vocab_size = int(state["vocab_size"])
        return tokenizer

    def token_ids(self, texts: Sequence[str], kind: Kind) -> tuple[list[list[int]], int]:
        """Token ids per text with the marker inserted and truncation applied.

        Returns the ids and how many texts were truncated.
        """
        prefix = self._query_prefix if kind == "query" else self._document_prefix
        length = self.query_length if kind == "query" else self.document_length
        # The marker takes one position, so the text gets one fewer (PyLate truncates to L - 1).
        budget = length - 1 if prefix.token_id is not None else length
        encodings = self._encode(texts, prefix)
        sequences: list[list[int]] = []
        truncated = 0
        for encoding in encodings:
            ids = encoding.ids
            if len(ids) > budget:
                # Keep the closing special token, as the tokenizer's own truncation does.
                ids = ids[: budget - 1] + ids[-1:]
                truncated += 1
            if prefix.token_id is not None:
                ids = ids[:1] + [prefix.token_id] + ids[1:]
            sequences.append(ids)
        return sequences, truncated

    def count(self, texts: Sequence[str], kind: Kind = "document") -> list[int]:
        """Untruncated token counts, markers and special tokens included: what a text would need."""
        prefix = self._query_prefix if kind == "query" else self._document_prefix
        marker = 1 if prefix.token_id is not None else 0
        return [len(encoding.ids) + marker for encoding in self._encode(texts, prefix)]

    def _encode(self, texts: Sequence[str], prefix: _Prefix) -> list:  # type: ignore[type-arg]
        if prefix.text:
            texts = [prefix.text + text for text in texts]
        try:
            return self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        except TypeError:
            # The Rust tokenizer rejects strings holding lone UTF-16 surrogates (broken decodes of
            # scraped text); they carry no meaning, so they become U+FFFD like any undecodable byte.
            logger.warning("Replaced lone surrogate characters in the input with U+FFFD.")
            clean = [_LONE_SURROGATE.sub("\ufffd", text) for text in texts]
            return self._tokenizer.encode_batch(clean, add_special_tokens=True)

    def pad(self, sequences: Sequence[Sequence[int]], kind: Kind) -> TokenizedBatch:
        """Pad a batch and build the attention mask and the mask of vectors to keep."""
        expand = kind == "query" and self.query_expansion
        width = self.query_length if expand else max(len(ids) for ids in sequences)
        input_ids = np.full((len(sequences), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(sequences), width), dtype=np.int64)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        if expand:
            # Every [MASK] position is scored; the encoder sees them only when the model was trained so.
            keep_mask = np.ones_like(attention_mask, dtype=bool)
            if self.attend_to_expansion_tokens:
                attention_mask = np.ones_like(attention_mask)
        elif kind == "query" or self.skiplist_ids.size == 0:
            keep_mask = attention_mask.astype(bool)
        else:
            keep_mask = attention_mask.astype(bool) & ~np.isin(input_ids, self.skiplist_ids)
        return TokenizedBatch(input_ids=input_ids, attention_mask=attention_mask, keep_mask=keep_mask)


def _load_hf_tokenizer(folder: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise MissingCheckpointFileError(
            f"{folder} has no tokenizer files (tokenizer.json, vocab.txt or tokenizer_config.json)."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    except Exception as exc:  # transformers raises many types for unreadable tokenizer files
        raise CorruptCheckpointError(f"The tokenizer in {folder} could not be loaded: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise CorruptCheckpointError(f"The tokenizer in {folder} has no fast (Rust) implementation.")
    return tokenizer


def _plain_backend(hf_tokenizer, *, lowercase: bool) -> Tokenizer:  # type: ignore[no-untyped-def]
    backend = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    if lowercase and not _has_lowercase(backend.normalizer):
        # Lowercasing as a normaliser step (not str.lower) matches sentence-transformers exactly,
        # including characters where the two differ (the Greek final sigma).
        existing = backend.normalizer
        steps = [Lowercase()]
        if isinstance(existing, NormalizerSequence):
            steps += list(existing)
        elif existing is not None:
            steps.append(existing)
        backend.normalizer = NormalizerSequence(steps)
    return backend


def _register_markers(backend: Tokenizer, hf_tokenizer, prefixes: Sequence[str]) -> None:  # type: ignore[no-untyped-def]
    """Make a marker that occurs in user text tokenize as the marker token, as sentence-transformers does.

    Legacy checkpoints store "[Q] " or "[unused0]" as ordinary vocabulary entries, which a
    lowercasing or word-splitting tokenizer breaks apart when the text itself contains them.
    sentence-transformers registers them as special tokens on load; doing the same keeps such texts
    (rare, but real in scraped corpora) tokenized identically.
    """
    known = set(hf_tokenizer.get_vocab())
    for prefix in prefixes:
        if not prefix or not prefix.split():
            continue
        for candidate in (prefix, prefix.split(None, 1)[0]):
            if candidate not in known:
                continue
            if backend.encode(candidate, add_special_tokens=False).tokens != [candidate]:
                backend.add_special_tokens([AddedToken(candidate, normalized=False, special=True)])
            break


def _has_lowercase(normalizer) -> bool:  # type: ignore[no-untyped-def]
    if isinstance(normalizer, Lowercase):
        return True
    if isinstance(normalizer, NormalizerSequence):
        return any(isinstance(step, Lowercase) for step in normalizer)
    return False


def _resolve_prefix(hf_tokenizer, prefix: str) -> _Prefix:  # type: ignore[no-untyped-def]
    """A marker the vocabulary knows is inserted as one token id; any other prefix is plain text."""
    if not prefix:
        return _Prefix(token_id=None, text="")
    unk = hf_tokenizer.unk_token_id
    for candidate in (prefix, prefix.split(None, 1)[0] if prefix.split() else prefix):
        token_id = hf_tokenizer.convert_tokens_to_ids(candidate)
        if token_id is not None and (token_id != unk or candidate == hf_tokenizer.unk_token):
            return _Prefix(token_id=int(token_id), text="")
    return _Prefix(token_id=None, text=prefix)


def _expansion_token_id(hf_tokenizer, token: str | None) -> int:  # type: ignore[no-untyped-def]
    if token is not None:
        return int(hf_tokenizer.convert_tokens_to_ids(token))
    for candidate in (hf_tokenizer.mask_token_id, hf_tokenizer.eos_token_id, hf_tokenizer.pad_token_id):
        if candidate is not None:
            return int(candidate)
    raise CorruptCheckpointError("The tokenizer has no [MASK], end-of-sequence or padding token to pad with.")


def _skiplist_ids(hf_tokenizer, words: Sequence[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    unk = hf_tokenizer.unk_token_id
    ids = []
    for word in words:
        token_id = hf_tokenizer.convert_tokens_to_ids(word)
        # A word outside the vocabulary maps to [UNK]; skipping it would drop every real [UNK].
        if token_id is None or (token_id == unk and word != hf_tokenizer.unk_token):
            continue
        ids.append(int(token_id))
    return np.array(sorted(set(ids)), dtype=np.int64)


def check_length(name: str, value: int, maximum: int | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 3:
        raise InvalidInputError(f"{name} must be an integer of at least 3 tokens, got {value!r}.")
    if maximum is not None and value > maximum:
        raise InvalidInputError(
            f"{name}={value} exceeds the backbone's {maximum} position embeddings; use at most {maximum}."
        )
    return value
