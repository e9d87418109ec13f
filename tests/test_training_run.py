"""Fine-tuning runs on tiny checkpoints: the saved model, prefixes, determinism, resume, distillation, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.torch import load_file

from checkpoints import TOKENIZER_DIR, build_edge_checkpoint, build_stanford_checkpoint, requires_minilm
from edgecolbert import ColBERT
from edgecolbert.cli import main
from edgecolbert.errors import TrainingError
from edgecolbert.scoring.maxsim import maxsim
from edgecolbert.training import TrainSettings, train
from edgecolbert.training.fine_tune import PREPARED_EXAMPLES, REPORT
from edgecolbert.training.progress import ExamplesPerSecond
from training_fixtures import synonym_collection, write_pairs

pytest.importorskip("datasets", reason="training needs the datasets package (edgecolbert[train])")
pytest.importorskip("accelerate", reason="training needs accelerate (edgecolbert[train])")
pytestmark = requires_minilm

PROBE = ["apple river stone", "the table of yellow horse", "a garden in winter"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stanford_checkpoint(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    queries, documents = synonym_collection(48)
    return write_pairs(tmp_path_factory.mktemp("data") / "train.jsonl", queries, documents)


def settings(model: Path, data: Path, out: Path, **overrides: Any) -> TrainSettings:
    values: dict[str, Any] = {
        "model": str(model),
        "train": data,
        "out": out,
        "batch_size": 8,
        "max_steps": 3,
        "lr": 1e-3,
        "device": "cpu",
        "progress": False,
    }
    return TrainSettings(**(values | overrides))


def weights(folder: Path) -> dict[str, np.ndarray]:
    tensors = {}
    for file in sorted(folder.glob("**/*.safetensors")):
        if "checkpoints" in file.relative_to(folder).parts:
            continue
        for name, tensor in load_file(file).items():
            tensors[f"{file.relative_to(folder)}:{name}"] = tensor.numpy()
    return tensors


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = weights(a), weights(b)
    assert left.keys() == right.keys() and left
    for name in left:
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)


@pytest.mark.slow
def test_saved_model_loads_alike_in_edgecolbert_and_sentence_transformers(
    tiny: Path, pairs: Path, tmp_path: Path
) -> None:
    from sentence_transformers import MultiVectorEncoder

    report = train(settings(tiny, pairs, tmp_path / "out"))
    assert report.steps == 3 and report.losses == ("contrastive",) and report.examples == 48
    assert report.final_loss is not None and np.isfinite(report.final_loss)
    assert json.loads((tmp_path / "out" / REPORT).read_text())["steps"] == 3
    prepared = [json.loads(line) for line in (tmp_path / "out" / PREPARED_EXAMPLES).read_text().splitlines()]
    assert len(prepared) == 48 and all(len(row["negatives"]) == 1 for row in prepared)
    assert all(row["negatives"][0] != row["positive"] for row in prepared)

    ours = ColBERT.from_pretrained(tmp_path / "out", device="cpu")
    theirs = MultiVectorEncoder(str(tmp_path / "out"), device="cpu")
    for mine, reference in zip(ours.encode_documents(PROBE), theirs.encode_document(PROBE), strict=True):
        np.testing.assert_allclose(mine, reference.float().numpy(), atol=1e-5)
    for text in PROBE:
        np.testing.assert_allclose(ours.encode_query(text), theirs.encode_query([text])[0].float().numpy(), atol=1e-5)
    # Training moved the weights away from the starting point.
    before = ColBERT.from_pretrained(tiny, device="cpu").encode_documents(PROBE)
    assert not np.allclose(before[0], ours.encode_documents(PROBE)[0], atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(
    not (TOKENIZER_DIR / "tokenizer.json").is_file(), reason="../shared/models/modernbert-tokenizer is absent"
)
def test_prefixes_and_lengths_survive_training(pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a zero learning rate the saved model must encode exactly as the PyLate original did."""
    from sentence_transformers import MultiVectorEncoder

    source = build_edge_checkpoint(tmp_path / "edge", num_hidden_layers=1, query_length=16, document_length=40)
    seen: set[tuple[str | None, str | None]] = set()
    preprocess = MultiVectorEncoder.preprocess

    def spy(self: Any, inputs: Any, prompt: str | None = None, **kwargs: Any) -> Any:
        seen.add((prompt, kwargs.get("task")))
        return preprocess(self, inputs, prompt=prompt, **kwargs)

    monkeypatch.setattr(MultiVectorEncoder, "preprocess", spy)
    train(settings(source, pairs, tmp_path / "out", lr=0.0, max_steps=1))
    assert {("[Q] ", "query"), ("[D] ", "document")} <= seen

    original = ColBERT.from_pretrained(source, device="cpu")
    trained = ColBERT.from_pretrained(tmp_path / "out", device="cpu")
    assert (trained.query_length, trained.document_length) == (original.query_length, original.document_length)
    long_text = " ".join(["word"] * 100)
    for mine, reference in zip(
        trained.encode_documents([*PROBE, long_text]), original.encode_documents([*PROBE, long_text]), strict=True
    ):
        np.testing.assert_allclose(mine, reference, atol=1e-5)
    for text in PROBE:
        np.testing.assert_allclose(trained.encode_query(text), original.encode_query(text), atol=1e-5)


@pytest.mark.slow
def test_same_seed_gives_the_same_model(tiny: Path, pairs: Path, tmp_path: Path) -> None:
    train(settings(tiny, pairs, tmp_path / "a", seed=3))
    train(settings(tiny, pairs, tmp_path / "b", seed=3))
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    train(settings(tiny, pairs, tmp_path / "c", seed=4))
    with pytest.raises(AssertionError):
        assert_same_weights(tmp_path / "a", tmp_path / "c")


@pytest.mark.slow
def test_resumed_run_ends_where_an_uninterrupted_one_does(
    tiny: Path, pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train(settings(tiny, pairs, tmp_path / "whole", max_steps=6, save_steps=3))

    on_step_end = ExamplesPerSecond.on_step_end

    def interrupt_at_step_5(self: ExamplesPerSecond, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        on_step_end(self, args, state, control, **kwargs)
        if state.global_step == 5:
            raise KeyboardInterrupt

    broken = settings(tiny, pairs, tmp_path / "broken", max_steps=6, save_steps=3)
    with monkeypatch.context() as patch:
        patch.setattr(ExamplesPerSecond, "on_step_end", interrupt_at_step_5)
        with pytest.raises(KeyboardInterrupt):
            train(broken)
    assert (tmp_path / "broken" / "checkpoints" / "checkpoint-3").is_dir()
    assert not (tmp_path / "broken" / REPORT).exists()

    with pytest.raises(TrainingError, match="--resume"):
        train(broken)
    report = train(broken.model_copy(update={"resume": True}))
    assert report.resumed_from_step == 3 and report.steps == 6
    assert_same_weights(tmp_path / "whole", tmp_path / "broken")

    fresh = train(broken.model_copy(update={"overwrite": True, "max_steps": 1}))
    assert fresh.steps == 1 and fresh.resumed_from_step is None


@pytest.mark.slow
def test_teacher_scores_add_distillation(tiny: Path, tmp_path: Path) -> None:
    queries, documents = synonym_collection(24, seed=1)
    rows = [
        {"query": q, "positive": d, "negatives": [documents[(i + 1) % 24]], "scores": [5.0, 1.0]}
        for i, (q, d) in enumerate(zip(queries, documents))
    ]
    data = tmp_path / "scored.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = train(settings(tiny, data, tmp_path / "out", max_steps=4))
    assert report.losses == ("contrastive", "distillation")
    assert report.final_loss is not None and np.isfinite(report.final_loss)

    unscored = write_pairs(tmp_path / "plain.jsonl", queries, documents)
    with pytest.raises(TrainingError, match="teacher scores"):
        train(settings(tiny, unscored, tmp_path / "out2", loss="distillation"))


@pytest.mark.slow
def test_teacher_checkpoint_scores_every_example(tiny: Path, pairs: Path, tmp_path: Path) -> None:
    report = train(settings(tiny, pairs, tmp_path / "out", teacher=str(tiny), max_steps=2))
    assert report.losses == ("contrastive", "distillation")
    rows = [json.loads(line) for line in (tmp_path / "out" / PREPARED_EXAMPLES).read_text().splitlines()]
    assert all(len(row["scores"]) == 2 for row in rows)


@pytest.mark.slow
def test_cli_trains_and_reports(tiny: Path, pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["train", "--model", str(tiny), "--train", str(pairs), "--out", str(out), "--max-steps", "2"]
    assert main([*args, "--batch-size", "8", "--device", "cpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "trained 2 steps" in printed and f"model saved to {out}" in printed
    assert (out / "modules.json").is_file()

    assert main([*args, "--batch-size", "1"]) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--model",
                str(tiny),
                "--train",
                str(tmp_path / "missing.jsonl"),
                "--out",
                str(out),
                "--overwrite",
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err


def mean_reciprocal_rank(model_path: Path, queries: list[str], documents: list[str], first: int) -> float:
    """MRR over ``documents`` of ``queries[first:]``; query i is relevant to document i only."""
    model = ColBERT.from_pretrained(model_path, device="cpu")
    vectors = model.encode_documents(documents)
    ranks = []
    for i in range(first, len(queries)):
        scores = maxsim(model.encode_query(queries[i]), vectors)
        ranks.append(1 + int((scores > scores[i]).sum()))
    return float(np.mean([1 / rank for rank in ranks]))


@pytest.mark.slow
def test_a_short_run_improves_held_out_queries(tiny: Path, tmp_path: Path) -> None:
    queries, documents = synonym_collection(240, seed=0)
    data = write_pairs(tmp_path / "train.jsonl", queries[:180], documents[:180])
    before = mean_reciprocal_rank(tiny, queries, documents, first=180)
    train(settings(tiny, data, tmp_path / "out", max_steps=None, epochs=5, batch_size=16, lr=3e-3))
    after = mean_reciprocal_rank(tmp_path / "out", queries, documents, first=180)
    assert after > 2 * before and after - before > 0.04, (before, after)
