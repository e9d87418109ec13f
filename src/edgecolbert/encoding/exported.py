"""Self-contained ONNX exports: a folder ONNX Runtime runs without torch or transformers.

``edgecolbert export MODEL OUT`` (:func:`export_model`, which needs the ``torch`` extra) writes:

* ``model.onnx`` and ``model.int8.onnx``, and every other graph file the export cache holds for the
  checkpoint: ``input_ids`` and ``attention_mask`` (int64, ``[batch, length]``) in, ``vectors`` out,
  the projected but not yet normalised token vectors. The projection head is inside the graph.
* ``tokenizer.json``: the checkpoint's tokenizer as the encoder runs it (the query and document
  markers registered, lowercasing as the checkpoint asks, no padding or truncation), readable by
  the tokenizers library alone.
* ``edgecolbert-export.json``, written last: the encoding settings (markers, lengths, [MASK]
  expansion, skiplist), the tokenizer's resolved ids, the backbone's position limit, and the source
  checkpoint's identity, so stores and caches made with that checkpoint recognise the export.

:meth:`ColBERT.from_pretrained <edgecolbert.encoding.encoder.ColBERT.from_pretrained>` loads such a
folder on ONNX Runtime; this module imports neither torch nor transformers unless an export is made.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from edgecolbert.encoding.backends.onnx import atomic_write, export_folder
from edgecolbert.encoding.checkpoint import CheckpointSpec, DenseSpec, check_output_folder, load_json, weight_stamps
from edgecolbert.errors import CorruptCheckpointError, InvalidInputError, require

logger = logging.getLogger(__name__)

MANIFEST_NAME = "edgecolbert-export.json"
TOKENIZER_NAME = "tokenizer.json"
# Raised whenever the folder's files or the manifest's meaning change; older loaders then refuse it.
FORMAT = "edgecolbert-export-v1"
_GRAPHS = {None: "model.onnx", "int8": "model.int8.onnx"}
_EXPORT_FEATURE = "edgecolbert export"


@dataclass(frozen=True)
class Origin:
    """The checkpoint an export was made from, as the encoder's fingerprint and a store's model identity name it."""

    path: str
    layout: str
    stamps: tuple[str, ...]
    identity: str


@dataclass(frozen=True)
class ExportedModel:
    """What :func:`read_export` found in an export folder."""

    folder: Path
    spec: CheckpointSpec
    origin: Origin
    tokenizer_state: dict[str, Any]
    max_positions: int | None

    def graph(self, quantize: str | None) -> Path:
        return self.folder / _GRAPHS[quantize]


def is_export(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is a finished export (the manifest is written last, so a partial one is not)."""
    return (Path(folder) / MANIFEST_NAME).is_file()


def runs_on_onnx(name_or_path: str | os.PathLike[str], backend: str | None) -> bool:
    """Whether a load of ``name_or_path`` with ``backend`` runs ONNX Runtime: asked for, or an export folder's default.

    Lets the command line and the service refuse ``quantize`` for a torch load before anything is loaded.
    """
    if backend is not None:
        return backend == "onnx"
    return is_export(Path(name_or_path).expanduser())


def read_export(folder: Path) -> ExportedModel:
    manifest_path = folder / MANIFEST_NAME
    manifest = load_json(manifest_path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise CorruptCheckpointError(
            f"{manifest_path} has format {found!r}; this edgecolbert reads {FORMAT!r}. Export the checkpoint again "
            "with this version (edgecolbert export MODEL OUT --overwrite)."
        )
    try:
        settings, source = manifest["encoding"], manifest["source"]
        spec = _spec(folder, settings)
        origin = Origin(str(source["path"]), str(source["layout"]), tuple(source["stamps"]), str(source["identity"]))
        state = {**manifest["tokenizer"], "tokenizer": (folder / TOKENIZER_NAME).read_text(encoding="utf-8")}
        max_positions = manifest["max_positions"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptCheckpointError(f"{manifest_path} is incomplete ({exc!r}); export the checkpoint again.") from exc
    except FileNotFoundError as exc:
        raise CorruptCheckpointError(f"{folder} lacks {TOKENIZER_NAME}; export the checkpoint again.") from exc
    return ExportedModel(folder, spec, origin, state, max_positions)


def _spec(folder: Path, settings: dict[str, Any]) -> CheckpointSpec:
    # The weights are in the graph: the dense layers keep only their shapes (the encoder reads the width).
    dense = tuple(
        DenseSpec(
            weights=folder / _GRAPHS[None],
            key_prefix="",
            in_features=int(layer["in_features"]),
            out_features=int(layer["out_features"]),
            bias=bool(layer["bias"]),
            activation=str(layer["activation"]),
            use_residual=bool(layer["use_residual"]),
        )
        for layer in settings["dense"]
    )
    if not dense:
        raise ValueError("no dense layers")
    return CheckpointSpec(
        path=folder,
        layout=settings["layout"],
        backbone_dir=folder,
        dense=dense,
        query_prefix=str(settings["query_prefix"]),
        document_prefix=str(settings["document_prefix"]),
        query_length=int(settings["query_length"]),
        document_length=int(settings["document_length"]),
        query_expansion=bool(settings["query_expansion"]),
        attend_to_expansion_tokens=bool(settings["attend_to_expansion_tokens"]),
        skiplist_words=tuple(settings["skiplist_words"]),
        do_lower_case=bool(settings["do_lower_case"]),
        expansion_token=settings["expansion_token"],
    )


def export_model(
    name_or_path: str | os.PathLike[str] | None,
    target: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    onnx_cache_dir: str | os.PathLike[str] | None = None,
    **load_kwargs: Any,
) -> Path:
    """Write a self-contained ONNX export of a checkpoint (hub id or folder) to ``target``; returns ``target``.

    Needs the ``torch`` extra. The graphs come from (and go to) the export cache that
    ``backend="onnx"`` uses, so a checkpoint already run on ONNX is not exported again. Nothing is
    written at ``target`` until the whole folder is ready: it is assembled beside it under a hidden
    name and renamed into place, so an interrupted export leaves no folder a load would accept.
    ``load_kwargs`` (``revision``, ``token``, ``local_files_only``, ``cache_dir``, ``trust_remote_code``)
    go to :meth:`ColBERT.from_pretrained <edgecolbert.encoding.encoder.ColBERT.from_pretrained>`.
    """
    for module in ("torch", "transformers", "onnx"):
        require(module, "torch", _EXPORT_FEATURE)
    from edgecolbert.encoding.encoder import ColBERT
    from edgecolbert.store.schema import model_identity

    target = Path(target).expanduser()
    check_output_folder(target, overwrite)
    if name_or_path is not None and is_export(name_or_path):
        raise InvalidInputError(f"{name_or_path} is already an export; export the checkpoint it was made from.")
    # int8 makes the cache hold both graphs.
    model = ColBERT.from_pretrained(
        name_or_path, backend="onnx", quantize="int8", onnx_cache_dir=onnx_cache_dir, **load_kwargs
    )
    spec = model.spec
    tokenizer = model.tokenizer.state()
    manifest = {
        "format": FORMAT,
        "graphs": {"fp32": _GRAPHS[None], "int8": _GRAPHS["int8"]},
        "inputs": ["input_ids", "attention_mask"],
        "output": "vectors: projected token vectors, not yet normalised (the projection head is inside the graph)",
        "encoding": _settings(spec),
        "tokenizer": {key: value for key, value in tokenizer.items() if key != "tokenizer"},
        "max_positions": model.max_positions,
        "source": {
            "name": model.name,
            "path": str(spec.path),
            "layout": spec.layout,
            "stamps": weight_stamps(spec),
            "identity": model_identity(model),
        },
    }
    graphs = _graph_files(export_folder(spec, onnx_cache_dir))
    _write_folder(target, graphs, tokenizer["tokenizer"], manifest)
    return target


def _settings(spec: CheckpointSpec) -> dict[str, Any]:
    return {
        "layout": spec.layout,
        "query_prefix": spec.query_prefix,
        "document_prefix": spec.document_prefix,
        "query_length": spec.query_length,
        "document_length": spec.document_length,
        "query_expansion": spec.query_expansion,
        "attend_to_expansion_tokens": spec.attend_to_expansion_tokens,
        "skiplist_words": list(spec.skiplist_words),
        "do_lower_case": spec.do_lower_case,
        "expansion_token": spec.expansion_token,
        "dense": [
            {
                "in_features": dense.in_features,
                "out_features": dense.out_features,
                "bias": dense.bias,
                "activation": dense.activation,
                "use_residual": dense.use_residual,
            }
            for dense in spec.dense
        ],
    }


def _graph_files(cache: Path) -> list[Path]:
    """Every finished file of the checkpoint's export cache: the graphs and whatever sits beside them.

    Hidden files are writes in progress; the load records are for the cache's own loads (the
    manifest carries what they hold).
    """
    files = [
        path
        for path in sorted(cache.iterdir())
        if path.is_file() and not path.name.startswith(".") and not path.name.startswith("prepared-")
    ]
    missing = [name for name in _GRAPHS.values() if not (cache / name).is_file()]
    if missing:
        raise CorruptCheckpointError(f"The export cache {cache} lacks {', '.join(missing)} after exporting.")
    return files


def _write_folder(target: Path, graphs: list[Path], tokenizer: str, manifest: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
        for graph in graphs:
            atomic_write(staging / graph.name, partial(_copy, graph))
        atomic_write(staging / TOKENIZER_NAME, lambda written: written.write_text(tokenizer, encoding="utf-8"))
        # Last: its presence is what makes the folder an export.
        text = json.dumps(manifest, indent=2) + "\n"
        atomic_write(staging / MANIFEST_NAME, lambda written: written.write_text(text, encoding="utf-8"))
        _replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)


def _replace_folder(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an old ``target`` is moved aside first and removed after."""
    if not target.exists():
        os.replace(staging, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
    os.replace(target, old / target.name)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old / target.name, target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
