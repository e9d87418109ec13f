"""Paths named on the command line that are not what the command needs: named, refused, nothing made.

Every check here fails before a model is loaded, so no checkpoint is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgecolbert.cli import main
from edgecolbert.serving import app as server
from edgecolbert.store.defaults import DEFAULT_STORE_PATH


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_search_refuses_a_missing_store_and_makes_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "stroe"
    assert main(["search", "anything", "--store", str(store)]) == 2
    assert f"No store at {store}: the folder does not exist" in _error(capsys)
    assert not store.exists()


def test_search_refuses_the_default_store_when_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QDRANT_URL", raising=False)
    assert main(["search", "anything"]) == 2
    assert f"No store at {Path(DEFAULT_STORE_PATH)}" in _error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_search_refuses_a_folder_that_is_not_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("not a store", encoding="utf-8")
    assert main(["search", "anything", "--store", str(tmp_path)]) == 2
    assert f"{tmp_path} is not an edgecolbert store (it holds no edgecolbert.json)" in _error(capsys)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_serve_refuses_a_missing_store_unless_asked_to_create_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(server, "serve", lambda *args, **kwargs: pytest.fail("the service started"))
    store = tmp_path / "stroe"
    assert main(["serve", "--store", str(store)]) == 2
    assert f"No store at {store}: the folder does not exist" in _error(capsys)
    assert not store.exists()
    assert main(["serve", "--create-store"]) == 2
    assert "--create-store makes the store named by --store" in _error(capsys)


@pytest.mark.parametrize("command", ["index", "search"])
def test_a_store_under_a_file_is_named(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs.txt").write_text("Some text.", encoding="utf-8")
    somefile = tmp_path / "somefile"
    somefile.write_text("a file, not a folder", encoding="utf-8")
    first = [str(tmp_path / "docs.txt")] if command == "index" else ["query"]
    for store in (somefile / "store", somefile):
        assert main([command, *first, "--store", str(store)]) == 2
        err = _error(capsys)
        if command == "index":
            assert f"Cannot make a store at {store}: {somefile} is a file, not a folder" in err
        else:
            assert f"No store at {store}" in err
    assert somefile.read_text(encoding="utf-8") == "a file, not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any folder whatever its permissions")
def test_a_store_in_a_folder_without_permission_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs.txt").write_text("Some text.", encoding="utf-8")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["index", str(tmp_path / "docs.txt"), "--store", str(locked / "store")]) == 2
        assert f"Cannot make a store at {locked / 'store'}: {locked} is not writable here" in _error(capsys)
    finally:
        locked.chmod(0o700)


def test_an_unusable_file_argument_is_named_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rerank", "query", "--file", str(tmp_path)]) == 2
    assert f"error: {tmp_path}: Is a directory" in _error(capsys)


def test_permission_refusals_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Root passes every permission check, so a denial is injected where the folder is checked.
    store = tmp_path / "store"
    store.mkdir()
    (store / "edgecolbert.json").write_text("{}", encoding="utf-8")
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    assert main(["search", "query", "--store", str(store)]) == 2
    assert f"{store} is a store, but it is not readable and writable here; check its permissions" in _error(capsys)
    (tmp_path / "docs.txt").write_text("Some text.", encoding="utf-8")
    assert main(["index", str(tmp_path / "docs.txt"), "--store", str(tmp_path / "new")]) == 2
    assert f"Cannot make a store at {tmp_path / 'new'}: {tmp_path} is not writable here" in _error(capsys)
    assert not (tmp_path / "new").exists()


def test_a_mistyped_model_folder_is_named_without_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgecolbert.encoding import checkpoint

    monkeypatch.setattr(
        checkpoint, "_download_snapshot", lambda repo_id, **_: pytest.fail(f"{repo_id} went to the hub")
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert main(["rerank", "--model", "models/mine", "query", "document"]) == 2
    assert "No checkpoint folder at models/mine: the folder does not exist" in _error(capsys)
