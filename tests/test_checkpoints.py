"""The checkpoint builders produce layouts that sentence-transformers 6.2, the reference
loader, reads as the real models: same modules, dims, prefixes, lengths and masking."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from checkpoints import (
    DOCUMENT_PREFIX_ID,
    QUERY_PREFIX_ID,
    build_edge_checkpoint,
    build_st_native_checkpoint,
    build_stanford_checkpoint,
    requires_minilm,
    requires_shared,
)

st = pytest.importorskip("sentence_transformers")

QUERY = "what is ColBERT?"
DOCUMENTS = ["ColBERT is a late interaction model.", ""]


def _load(path):
    return st.MultiVectorEncoder(str(path), device="cpu")


def _encode(model):
    kwargs = {"convert_to_numpy": True, "show_progress_bar": False}
    return model.encode_query([QUERY], **kwargs), model.encode_document(DOCUMENTS, **kwargs)


def _assert_token_vectors(outputs, count, dim):
    assert len(outputs) == count
    for vectors in outputs:
        assert isinstance(vectors, np.ndarray)
        assert vectors.ndim == 2 and vectors.shape[1] == dim and vectors.shape[0] >= 1
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def _query_ids(model, text):
    features = model[0].preprocess([text], prompt=model.prompts["query"], task="query")
    return features["input_ids"][0].tolist()


# --------------------------------------------------------------------------- edge


@pytest.fixture(scope="module")
def edge_17m(tmp_path_factory):
    return build_edge_checkpoint(tmp_path_factory.mktemp("edge17m"), num_hidden_layers=2)


@requires_shared
def test_edge_17m_files_follow_pylate_layout(edge_17m):
    names = {p.relative_to(edge_17m).as_posix() for p in edge_17m.rglob("*") if p.is_file()}
    assert names == {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Dense/config.json",
        "1_Dense/model.safetensors",
        "2_Dense/config.json",
        "2_Dense/model.safetensors",
    }
    config = json.loads((edge_17m / "config.json").read_text())
    assert config["local_rope_theta"] == config["global_rope_theta"] == 160000
    assert config["vocab_size"] == 50370 and config["max_position_embeddings"] == 7999
    modules = json.loads((edge_17m / "modules.json").read_text())
    assert [m["type"] for m in modules[1:]] == ["pylate.models.Dense.Dense"] * 2
    st_config = json.loads((edge_17m / "config_sentence_transformers.json").read_text())
    assert st_config["query_prefix"] == "[Q] " and st_config["document_prefix"] == "[D] "
    assert st_config["do_query_expansion"] is False and st_config["model_type"] == "ColBERT"


@requires_shared
def test_edge_17m_loads_and_encodes(edge_17m):
    model = _load(edge_17m)
    tokenizer = model[0].tokenizer
    assert tokenizer.convert_tokens_to_ids(["[Q] ", "[D] "]) == [QUERY_PREFIX_ID, DOCUMENT_PREFIX_ID]
    # transformers 5 folds the legacy *_rope_theta keys into rope_parameters.
    rope = model[0].auto_model.config.rope_parameters
    assert rope["sliding_attention"]["rope_theta"] == rope["full_attention"]["rope_theta"] == 160000
    assert model[0].do_lower_case and model[0].query_expansion is None

    queries, documents = _encode(model)
    _assert_token_vectors(queries, 1, 48)
    _assert_token_vectors(documents, 2, 48)
    # [CLS] [Q] what is col bert ? [SEP]: queries keep punctuation, the prefix is one token.
    ids = _query_ids(model, QUERY)
    assert ids[:2] == [50281, QUERY_PREFIX_ID] and ids[-1] == 50282
    assert queries[0].shape[0] == len(ids)
    # The empty document still yields [CLS] [D] [SEP].
    assert documents[1].shape[0] == 3


@pytest.mark.slow
@requires_shared
def test_edge_lowercases_only_when_configured(tmp_path):
    upper = build_edge_checkpoint(tmp_path / "cased", num_hidden_layers=1, do_lower_case=False)
    assert _query_ids(_load(upper), "ColBERT") != _query_ids(_load(upper), "colbert")
    lower = build_edge_checkpoint(tmp_path / "uncased", num_hidden_layers=1)
    assert _query_ids(_load(lower), "ColBERT") == _query_ids(_load(lower), "colbert")


@pytest.mark.slow
@requires_shared
def test_edge_17m_full_depth_parameter_count(tmp_path):
    model = _load(build_edge_checkpoint(tmp_path))
    assert model[0].auto_model.config.num_hidden_layers == 7
    assert 16.5e6 < sum(p.numel() for p in model.parameters()) < 17.1e6


@pytest.mark.slow
@requires_shared
def test_edge_32m_shape(tmp_path):
    model = _load(build_edge_checkpoint(tmp_path, shape="32m", num_hidden_layers=2))
    assert [(m.in_features, m.out_features) for m in (model[1], model[2])] == [(384, 768), (768, 64)]
    queries, documents = _encode(model)
    _assert_token_vectors(queries, 1, 64)
    _assert_token_vectors(documents, 2, 64)


@pytest.mark.slow
@requires_shared
def test_edge_query_expansion_pads_queries_to_query_length(tmp_path):
    path = build_edge_checkpoint(tmp_path, num_hidden_layers=1, query_length=24, do_query_expansion=True)
    queries, _ = _encode(_load(path))
    assert queries[0].shape == (24, 48)


@pytest.mark.slow
@requires_shared
def test_edge_build_is_deterministic(tmp_path):
    first = build_edge_checkpoint(tmp_path / "a", num_hidden_layers=1)
    again = build_edge_checkpoint(tmp_path / "b", num_hidden_layers=1)
    other = build_edge_checkpoint(tmp_path / "c", num_hidden_layers=1, seed=1)
    for name in ("model.safetensors", "1_Dense/model.safetensors", "2_Dense/model.safetensors"):
        assert (first / name).read_bytes() == (again / name).read_bytes()
        assert (first / name).read_bytes() != (other / name).read_bytes()


# --------------------------------------------------------------------------- Stanford


@requires_minilm
@pytest.mark.parametrize("attend", [False, True])
def test_stanford_loads_with_query_expansion(tmp_path, attend):
    path = build_stanford_checkpoint(tmp_path, query_maxlen=16, attend_to_mask_tokens=attend)
    model = _load(path)
    assert model[0].query_expansion == {"strategy": "fixed", "attend": attend, "token": None, "length": 16}
    assert model[0].document_length == 180
    queries, documents = _encode(model)
    _assert_token_vectors(queries, 1, 24)
    _assert_token_vectors(documents, 2, 24)
    assert queries[0].shape[0] == 16
    # [unused0] must stay a single token (id 1), not the text "[ unused ##0 ]".
    assert _query_ids(model, QUERY)[:2] == [101, 1]


@requires_minilm
def test_stanford_backbone_loads_as_plain_bert(tmp_path):
    from safetensors.torch import load_file
    from transformers import BertModel

    path = build_stanford_checkpoint(tmp_path)
    bert = BertModel.from_pretrained(str(path))
    stored = load_file(str(path / "model.safetensors"))
    torch.testing.assert_close(bert.embeddings.word_embeddings.weight, stored["bert.embeddings.word_embeddings.weight"])
    assert stored["linear.weight"].shape == (24, 32)


# --------------------------------------------------------------------------- MiniLM


@requires_minilm
def test_minilm_ranks_the_relevant_document_first(shared_minilm):
    model = _load(shared_minilm)
    assert model.prompts == {"query": "", "document": ""} and model[0].query_expansion is None
    queries, documents = _encode(model)
    _assert_token_vectors(queries, 1, 384)
    _assert_token_vectors(documents, 2, 384)

    query = model.encode_query(["capital of France"], show_progress_bar=False)
    docs = model.encode_document(
        ["Paris is the capital of France.", "Bananas are yellow fruit."], show_progress_bar=False
    )
    relevant, unrelated = model.similarity(query, docs)[0].tolist()
    assert relevant > unrelated


# --------------------------------------------------------------------------- ST native


@pytest.mark.slow
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda p: build_edge_checkpoint(p, num_hidden_layers=1), marks=requires_shared, id="edge"),
        pytest.param(lambda p: build_stanford_checkpoint(p), marks=requires_minilm, id="stanford"),
    ],
)
def test_st_native_resave_encodes_identically(tmp_path, build):
    source = build(tmp_path / "source")
    native = build_st_native_checkpoint(tmp_path / "native", source)
    config = json.loads((native / "config_sentence_transformers.json").read_text())
    assert config["model_type"] == "MultiVectorEncoder"
    for before, after in zip(_encode(_load(source)), _encode(_load(native))):
        for expected, actual in zip(before, after):
            np.testing.assert_allclose(actual, expected, atol=1e-6)
