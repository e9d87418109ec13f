"""The package's public vocabulary: one error hierarchy, one missing-dependency message, async twins
with the sync signatures, and one version number."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

import edgecolbert
from edgecolbert.errors import (
    DatasetError,
    DocumentNotFoundError,
    EdgeColbertError,
    InvalidInputError,
    MissingDependencyError,
    SourceError,
    StoreError,
    TrainingDataError,
)
from edgecolbert.scoring.reranker import Reranker
from edgecolbert.store.base import BaseStore

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 has no tomllib; tomli is the same parser
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

ROOT = Path(__file__).resolve().parents[1]
INTEGRATIONS = ("langchain", "llama-index")


def _integration_sources() -> list[Path]:
    """The integrations' package modules: their tests import whatever they test, so they are left out."""
    return sorted(path for path in (ROOT / "integrations").rglob("*.py") if "tests" not in path.relative_to(ROOT).parts)


def _package_modules() -> list[str]:
    # __main__ runs the CLI when imported.
    return [
        info.name
        for info in pkgutil.walk_packages(edgecolbert.__path__, "edgecolbert.")
        if not info.name.endswith("__main__")
    ]


def _package_exceptions() -> dict[str, type[BaseException]]:
    found = {}
    for name in _package_modules():
        for value in vars(importlib.import_module(name)).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__.startswith("edgecolbert")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


# ---- errors ---------------------------------------------------------------------------------------


def test_every_exception_is_defined_in_errors_and_exported() -> None:
    exceptions = _package_exceptions()
    assert exceptions, "the package defines its own exceptions"
    elsewhere = sorted(name for name, cls in exceptions.items() if cls.__module__ != "edgecolbert.errors")
    assert elsewhere == []
    for cls in exceptions.values():
        assert issubclass(cls, EdgeColbertError), cls
        assert cls.__name__ in edgecolbert.__all__, cls
        assert getattr(edgecolbert, cls.__name__) is cls


def test_the_one_missing_dependency_error_is_the_exported_one() -> None:
    from edgecolbert.evaluation import MissingDependencyError as from_evaluation

    assert from_evaluation is edgecolbert.MissingDependencyError is MissingDependencyError


def test_documented_store_names_are_the_same_classes() -> None:
    from edgecolbert import store

    for name in (
        "StoreError",
        "ModelMismatchError",
        "DocumentNotFoundError",
        "StoreLockedError",
        "QdrantUnavailableError",
        "QdrantRequestError",
    ):
        assert getattr(store, name) is getattr(edgecolbert, name)
        assert issubclass(getattr(store, name), StoreError)


def test_moved_errors_keep_their_bases() -> None:
    assert issubclass(DocumentNotFoundError, KeyError)
    # KeyError's str() would quote the message; the store's message reads as written.
    assert str(DocumentNotFoundError("no document 'x'")) == "no document 'x'"
    assert issubclass(SourceError, InvalidInputError) and issubclass(SourceError, ValueError)
    assert issubclass(TrainingDataError, DatasetError)
    assert issubclass(MissingDependencyError, ImportError)


# ---- missing optional packages --------------------------------------------------------------------


def _block(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import module`` fail as if the package were not installed (cached submodules included)."""
    for module in modules:
        for loaded in [name for name in sys.modules if name == module or name.startswith(module + ".")]:
            monkeypatch.setitem(sys.modules, loaded, None)
        monkeypatch.setitem(sys.modules, module, None)


def _connect_to_qdrant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecolbert.store.qdrant import connect

    connect(url="http://127.0.0.1:1")


def _onnx_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecolbert.encoding.backends.onnx import require_onnxruntime

    require_onnxruntime()


def _quantize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecolbert.encoding.backends.onnx import quantize_int8

    quantize_int8(tmp_path / "model.onnx", tmp_path / "model.int8.onnx")


def _import_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh import, so app.py's module-level fastapi import runs again; the loaded modules come back after.
    for loaded in [name for name in sys.modules if name.startswith("edgecolbert.serving")]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.delattr(edgecolbert, "serving", raising=False)
    importlib.import_module("edgecolbert.serving")


def _run_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi import FastAPI

    from edgecolbert.serving.app import serve_in_background

    with serve_in_background(FastAPI()):
        pass


def _evaluate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecolbert.evaluation import per_query_metrics

    per_query_metrics({"q1": {"d1": 1}}, {"q1": {"d1": 1.0}})


def _mine_bm25(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecolbert.training.negatives import bm25_ranker

    bm25_ranker(["a document to mine negatives from"])


def _pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecolbert.encoding.pooling import pool_tokens

    pool_tokens(np.eye(8, dtype=np.float32), 2)


def _load_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecolbert import ColBERT

    ColBERT.from_pretrained(tmp_path)


def _export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecolbert.encoding.exported import export_model

    export_model(tmp_path, tmp_path / "out")


def _train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecolbert.training import TrainSettings, train

    train(TrainSettings(model="unused", train=tmp_path / "train.jsonl", out=tmp_path / "out"))


MISSING = [
    # (blocked package, what needs it, the extra that installs it)
    ("qdrant_client", _connect_to_qdrant, "qdrant"),
    ("torch", _load_checkpoint, "torch"),
    ("torch", _export, "torch"),
    ("transformers", _export, "torch"),
    ("onnxruntime", _onnx_backend, "onnx"),
    ("onnx", _quantize, "onnx"),
    ("fastapi", _import_service, "serve"),
    ("uvicorn", _run_service, "serve"),
    ("pytrec_eval", _evaluate, "eval"),
    ("bm25s", _mine_bm25, "train"),
    ("scipy", _pool, "pooling"),
    ("sentence_transformers", _train, "train"),
    ("datasets", _train, "train"),
]


@pytest.mark.parametrize(("package", "use", "extra"), MISSING, ids=[case[0] for case in MISSING])
def test_a_missing_optional_package_names_its_extra(
    package: str,
    use: Callable[[Path, pytest.MonkeyPatch], None],
    extra: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip(package, reason=f"{package} must be installed to be hidden")
    if use is _run_service:
        pytest.importorskip("fastapi", reason="the service needs fastapi")
    _block(monkeypatch, package)
    with pytest.raises(edgecolbert.MissingDependencyError) as caught:
        use(tmp_path, monkeypatch)
    message = str(caught.value)
    assert f" needs {package}, which is not installed: " in message
    assert f'pip install "edgecolbert[{extra}]"' in message
    assert isinstance(caught.value, ImportError)


def test_a_loaded_submodule_does_not_hide_a_missing_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("scipy.cluster.hierarchy", reason="scipy must be installed to be hidden")
    monkeypatch.setitem(sys.modules, "scipy", None)  # scipy.cluster.hierarchy stays loaded
    with pytest.raises(MissingDependencyError, match=r'needs scipy, .*"edgecolbert\[pooling\]"'):
        _pool(tmp_path, monkeypatch)


def test_the_missing_dependency_message_in_full(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime must be installed to be hidden")
    _block(monkeypatch, "onnxruntime")
    with pytest.raises(MissingDependencyError) as caught:
        _onnx_backend(tmp_path, monkeypatch)
    assert str(caught.value) == (
        "backend='onnx' needs onnxruntime, which is not installed: pip install \"edgecolbert[onnx]\", "
        "or use backend='torch'."
    )


def test_every_named_extra_exists() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert {extra for _, _, extra in MISSING} <= set(extras)


# ---- async twins ----------------------------------------------------------------------------------


def _async_pairs(cls: type) -> list[tuple[str, str]]:
    return [
        (name[1:], name)
        for name, member in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if name.startswith("a") and callable(getattr(cls, name[1:], None))
    ]


@pytest.mark.parametrize("cls", [BaseStore, Reranker], ids=lambda cls: cls.__name__)
def test_async_twins_take_exactly_the_sync_parameters(cls: type) -> None:
    pairs = _async_pairs(cls)
    assert len(pairs) >= 1
    for sync_name, async_name in pairs:
        sync = inspect.signature(getattr(cls, sync_name))
        twin = inspect.signature(getattr(cls, async_name))
        assert list(twin.parameters.values()) == list(sync.parameters.values()), async_name
        # An async def's return annotation is what awaiting it gives.
        assert twin.return_annotation == sync.return_annotation, async_name


def test_every_store_operation_has_its_async_twin() -> None:
    twins = {sync for sync, _ in _async_pairs(BaseStore)}
    assert twins >= {"add", "add_documents", "delete", "get", "count", "search", "search_first_stage", "rerank"}


# ---- version --------------------------------------------------------------------------------------


def test_version_comes_from_the_installed_metadata() -> None:
    assert edgecolbert.__version__ == importlib.metadata.version("edgecolbert")


def test_no_module_repeats_the_version_literal() -> None:
    literal = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    sources = [*(ROOT / "src").rglob("*.py"), *_integration_sources()]
    carrying = [
        str(path.relative_to(ROOT))
        for path in sources
        if f'"{literal}"' in path.read_text(encoding="utf-8") or f"'{literal}'" in path.read_text(encoding="utf-8")
    ]
    assert carrying == []


@pytest.mark.parametrize("integration", INTEGRATIONS)
def test_integrations_declare_the_edgecolbert_range_they_work_with(integration: str) -> None:
    project = tomllib.loads((ROOT / "integrations" / integration / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]
    requirements = [Requirement(line) for line in project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        requirements += [Requirement(line) for line in extra]
    on_edgecolbert = [req for req in requirements if req.name == "edgecolbert"]
    assert on_edgecolbert
    for requirement in on_edgecolbert:
        assert any(spec.operator == "<" for spec in requirement.specifier), str(requirement)
        assert requirement.specifier.contains(edgecolbert.__version__), str(requirement)


def test_langchain_integration_reports_its_own_version() -> None:
    langchain_edgecolbert = pytest.importorskip("langchain_edgecolbert", reason="the LangChain integration")
    assert langchain_edgecolbert.__version__ == importlib.metadata.version("langchain-edgecolbert")


# ---- one vocabulary -------------------------------------------------------------------------------


def test_reranker_and_stores_share_one_result_type() -> None:
    from edgecolbert.store import Hit

    assert Hit is edgecolbert.RerankResult is edgecolbert.Result is edgecolbert.scoring.Result
    result = edgecolbert.Result(id=None, text="a text", score=2.0, normalized_score=0.5, index=3)
    assert result.document == "a text"
    assert result.to_dict() == {
        "id": None,
        "text": "a text",
        "metadata": {},
        "score": 2.0,
        "normalized_score": 0.5,
        "index": 3,
    }


def _edgecolbert_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every ``from edgecolbert... import name`` in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "edgecolbert":
            found += [(node.module, alias.name) for alias in node.names]
    return found


def test_integrations_import_only_exported_names() -> None:
    sources = _integration_sources()
    private = [
        f"{path.relative_to(ROOT)}: from {module} import {name}"
        for path in sources
        for module, name in _edgecolbert_imports(path)
        if name not in getattr(importlib.import_module(module), "__all__", ())
    ]
    assert sources and private == []


def test_every_exception_is_in_the_errors_modules_all() -> None:
    from edgecolbert import errors

    assert {name for name, cls in _package_exceptions().items()} == {
        f"edgecolbert.errors.{name}" for name in errors.__all__ if isinstance(getattr(errors, name), type)
    }


def _definitions(predicate: Callable[[ast.AST], bool]) -> list[str]:
    sources = [*(ROOT / "src").rglob("*.py"), *_integration_sources()]
    return sorted(
        f"{path.relative_to(ROOT)}:{node.lineno}"  # type: ignore[attr-defined]
        for path in sources
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if predicate(node)
    )


def test_first_stage_names_are_spelled_once() -> None:
    names = {"bm25", "dense", "hybrid"}

    def lists_them(node: ast.AST) -> bool:
        elements = node.elts if isinstance(node, (ast.Tuple, ast.List)) else []
        return names <= {element.value for element in elements if isinstance(element, ast.Constant)}

    assert _definitions(lists_them) == [f"src/edgecolbert/store/stages.py:{_line_of('FirstStageName = Literal')}"]
    assert edgecolbert.store.FIRST_STAGES == ("bm25", "dense", "hybrid", "muvera", "hybrid-muvera")


def _line_of(text: str) -> int:
    lines = (ROOT / "src/edgecolbert/store/stages.py").read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.startswith(text))


@pytest.mark.parametrize("constant", ["RRF_K", "SCHEMA_FORMAT", "DEFAULT_TOP_K", "FIRST_STAGES"])
def test_shared_constants_are_defined_once(constant: str) -> None:
    def assigns(node: ast.AST) -> bool:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        return any(isinstance(target, ast.Name) and target.id == constant for target in targets)

    # evaluation.FIRST_STAGES is the subset of first stages an evaluation can use, named apart from the store's.
    assert len([place for place in _definitions(assigns) if "evaluation" not in place]) == 1


def test_open_store_is_the_one_entry_point_for_folders_and_servers(tmp_path: Path) -> None:
    from edgecolbert.store import open_store
    from edgecolbert.store.connect import open_store as defined

    assert open_store is defined
    with pytest.raises(edgecolbert.StoreError, match="No store at"):
        open_store(store=tmp_path / "typo", create=False)
    assert not (tmp_path / "typo").exists()
