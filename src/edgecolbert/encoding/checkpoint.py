"""Find a late-interaction checkpoint and read what the encoder needs from it.

Three layouts are understood, all without importing the libraries that wrote them:

* PyLate (what mxbai-edge-colbert-v0 and GTE-ModernColBERT ship): ``modules.json`` with a
  Transformer and ``N_Dense`` projection folders, the ColBERT settings in
  ``config_sentence_transformers.json``;
* sentence-transformers 6 ``MultiVectorEncoder`` native saves: the same ``modules.json`` shape,
  with the settings on the Transformer module and a ``MultiVectorMask`` module;
* Stanford ColBERT (colbertv2.0, answerai-colbert-small-v1): a BERT with ``architectures:
  ["HF_ColBERT"]``, the projection as ``linear.weight`` in the root weights, settings in
  ``artifact.metadata``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

from edgecolbert.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    InvalidInputError,
    MissingCheckpointFileError,
    UnsupportedCheckpointError,
)

logger = logging.getLogger(__name__)

Layout = Literal["pylate", "sentence-transformers", "stanford"]

# PyLate's own fallbacks when a save omits a setting (model-format.md §2).
PYLATE_QUERY_LENGTH = 32
PYLATE_DOCUMENT_LENGTH = 180

# Only what a checkpoint legitimately needs; pickled weights are never fetched.
_HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "artifact.metadata"]
_HUB_IGNORE_PATTERNS = ["onnx/*", "openvino/*", "*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "*.ckpt"]

_DENSE_TYPES = ("Dense",)
_TRANSFORMER_TYPES = ("Transformer",)
_MASK_TYPES = ("MultiVectorMask",)
_IGNORED_TYPES = ("Normalize",)

SAFETENSORS_INDEX = "model.safetensors.index.json"

# Far above any released encoder (ModernBERT-large: 28 layers, 1,024 wide, 50,368 tokens), low
# enough that a forged config cannot ask for terabytes when its sizes cannot be matched to tensors.
_CONFIG_SIZE_LIMITS = {
    "num_hidden_layers": 1_024,
    "hidden_size": 65_536,
    "num_attention_heads": 4_096,
    "intermediate_size": 262_144,
    "vocab_size": 4_194_304,
}
# Sizes that are the length of some dimension of the weights (the embedding, the MLP).
_SIZES_IN_WEIGHTS = ("hidden_size", "intermediate_size", "vocab_size")
_LAYER_INDEX = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


@dataclass(frozen=True)
class DenseSpec:
    """One projection layer: ``y = act(x W^T + b)``, plus ``x`` (or ``x R^T``) when residual."""

    weights: Path
    key_prefix: str
    in_features: int
    out_features: int
    bias: bool
    activation: str
    use_residual: bool = False


@dataclass(frozen=True)
class CheckpointSpec:
    """Everything the encoder reads from a checkpoint, resolved to local files."""

    path: Path
    layout: Layout
    backbone_dir: Path
    dense: tuple[DenseSpec, ...]
    query_prefix: str
    document_prefix: str
    query_length: int
    document_length: int
    query_expansion: bool
    attend_to_expansion_tokens: bool
    skiplist_words: tuple[str, ...]
    do_lower_case: bool
    expansion_token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def weight_stamps(spec: CheckpointSpec) -> list[str]:
    """Path, size and modification time of the weight files: what caches keyed by checkpoint compare."""
    weights = [spec.backbone_dir / "model.safetensors", *(dense.weights for dense in spec.dense)]
    return [f"{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for path in weights if path.is_file()]


def check_output_folder(target: Path, overwrite: bool) -> None:
    """Refuse to write a model into a non-empty ``target`` unless ``overwrite`` (the command line's ``--overwrite``)."""
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"{target} is a file; name a folder to write to.")
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise InvalidInputError(
            f"{target} exists and is not empty; pass overwrite=True (--overwrite on the command line) to replace it."
        )


def resolve_checkpoint_dir(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Return a local folder holding the checkpoint: the folder itself, or a hub snapshot."""
    candidate = Path(os.path.expanduser(os.fspath(name_or_path)))
    _follow_link(candidate)
    if candidate.is_dir():
        return candidate.resolve()
    if candidate.exists():
        raise CheckpointNotFoundError(
            f"{candidate} is a file, not a checkpoint folder: pass the folder that holds config.json."
        )
    name = os.fspath(name_or_path)
    if not _looks_like_hub_id(name):
        raise CheckpointNotFoundError(
            f"No checkpoint folder at {candidate}: the folder does not exist, and {name!r} reads as a path "
            "rather than a Hugging Face hub id ('organisation/model'). Check the path."
        )
    return _download_snapshot(
        name, revision=revision, token=token, local_files_only=local_files_only, cache_dir=cache_dir
    )


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return (
        len(parts) in (1, 2)
        and all(parts)
        and not name.startswith((".", "~"))
        and not any(part in (".", "..") for part in parts)
        # `models/typo` beside an existing `models/` folder is a mistyped path, not a hub id to fetch.
        and not (len(parts) == 2 and os.path.isdir(parts[0]))
        and "\\" not in name
    )


def _download_snapshot(
    repo_id: str,
    *,
    revision: str | None,
    token: str | bool | None,
    local_files_only: bool,
    cache_dir: str | os.PathLike[str] | None,
) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            token=token,
            local_files_only=local_files_only,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
            allow_patterns=_HUB_ALLOW_PATTERNS,
            ignore_patterns=_HUB_IGNORE_PATTERNS,
        )
    except LocalEntryNotFoundError as exc:
        raise CheckpointNotFoundError(
            f"{repo_id!r} is neither a local folder nor in the local Hugging Face cache, and the hub cannot be "
            "used (offline mode or no network). Download it once with network access, unset HF_HUB_OFFLINE, "
            "or pass the path of a checkpoint folder."
        ) from exc
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise CheckpointNotFoundError(
            f"{repo_id!r} is not a local folder, and no Hugging Face hub repository of that name is accessible: "
            "check the path or id, or log in (HF_TOKEN) if it is private or gated."
        ) from exc
    except RevisionNotFoundError as exc:
        raise CheckpointNotFoundError(f"Revision {revision!r} of {repo_id!r} does not exist on the hub.") from exc
    except (HfHubHTTPError, OSError) as exc:
        raise CheckpointNotFoundError(f"Could not fetch {repo_id!r} from the Hugging Face hub: {exc}") from exc
    return Path(folder)


def _follow_link(path: Path) -> None:
    """Refuse a symbolic link that loops or leads nowhere, naming it, instead of calling the file absent."""
    if not path.is_symlink():
        return
    try:
        path.resolve(strict=True)
    except FileNotFoundError as exc:
        raise MissingCheckpointFileError(
            f"{path} is a symbolic link to {os.readlink(path)}, which does not exist: fix or remove the link."
        ) from exc
    except (OSError, RuntimeError) as exc:  # Python < 3.13 reports a loop as RuntimeError
        raise CorruptCheckpointError(
            f"{path} is a symbolic link that loops back on itself (directly or through other links): "
            "replace it with the file or folder it should point to."
        ) from exc


def is_checkpoint_file(path: Path) -> bool:
    """``path.is_file()``, except that a looping or dangling link is an error naming it."""
    _follow_link(path)
    return path.is_file()


def inside_checkpoint(folder: Path, relative: str, source: Path, *, is_dir: bool) -> Path:
    """``folder / relative``, refused when ``source`` (an index or modules.json) points out of the folder.

    For a file only its folder must resolve inside: hub snapshots link their files to a shared blob store.
    """
    if (
        not relative
        or PurePosixPath(relative).is_absolute()
        or PureWindowsPath(relative).is_absolute()
        or any(part == ".." for part in re.split(r"[\\/]", relative))
    ):
        raise UnsupportedCheckpointError(
            f"{source} names {relative!r}, a path outside the checkpoint folder {folder}; "
            "edgecolbert only reads files inside the checkpoint. Fix the entry or re-save the checkpoint."
        )
    target = folder / relative
    anchor = target if is_dir else target.parent
    for step in [*reversed(anchor.relative_to(folder).parents), anchor.relative_to(folder)]:
        _follow_link(folder / step)
    if not anchor.resolve().is_relative_to(folder.resolve()):
        raise UnsupportedCheckpointError(
            f"{source} names {relative!r}, which resolves to {anchor.resolve()} through a symbolic link, outside "
            f"the checkpoint folder {folder}; edgecolbert only reads files inside the checkpoint."
        )
    return target


def read_checkpoint(path: Path) -> CheckpointSpec:
    """Detect the layout of a local checkpoint folder and read its settings."""
    if is_checkpoint_file(path / "modules.json"):
        return _read_modules_checkpoint(path)
    config_path = path / "config.json"
    if not is_checkpoint_file(config_path):
        raise MissingCheckpointFileError(
            f"{path} is not a checkpoint: it has neither modules.json (PyLate / sentence-transformers) nor "
            "config.json (Stanford ColBERT / transformers). Point at the folder the model was saved to."
        )
    architectures = load_json(config_path).get("architectures") or []
    if "HF_ColBERT" in architectures:
        return _read_stanford_checkpoint(path)
    raise UnsupportedCheckpointError(
        f"{path} is a plain transformers model ({', '.join(architectures) or 'no architectures'}) without a "
        "ColBERT projection head. Use a late-interaction checkpoint (PyLate, Stanford ColBERT or a "
        "sentence-transformers MultiVectorEncoder save)."
    )


def load_json(path: Path) -> Any:
    """The JSON object or array in ``path``; callers check the shape they read."""
    _follow_link(path)
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError as exc:
        raise MissingCheckpointFileError(f"Checkpoint file {path} is missing.") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptCheckpointError(f"Checkpoint file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, (dict, list)):
        raise CorruptCheckpointError(f"Checkpoint file {path} holds {type(data).__name__}, expected a JSON object.")
    return data


def _optional_json(path: Path) -> dict[str, Any]:
    return load_json(path) if is_checkpoint_file(path) else {}


def _module_kind(type_name: str) -> str:
    short = type_name.rsplit(".", 1)[-1]
    for kind, names in (
        ("transformer", _TRANSFORMER_TYPES),
        ("dense", _DENSE_TYPES),
        ("mask", _MASK_TYPES),
        ("ignored", _IGNORED_TYPES),
    ):
        if short in names:
            return kind
    return short


def _read_modules_checkpoint(path: Path) -> CheckpointSpec:
    modules = load_json(path / "modules.json")
    if not isinstance(modules, list) or not modules:
        raise CorruptCheckpointError(f"{path / 'modules.json'} should be a non-empty list of modules.")
    modules = sorted(modules, key=lambda entry: entry.get("idx", 0))
    st_config = _optional_json(path / "config_sentence_transformers.json")

    backbone_dir: Path | None = None
    transformer_config: dict[str, Any] = {}
    dense: list[DenseSpec] = []
    mask_config: dict[str, Any] | None = None
    for entry in modules:
        kind = _module_kind(str(entry.get("type", "")))
        module_dir = _module_dir(path, entry)
        if kind == "transformer":
            backbone_dir = module_dir
            transformer_config = _optional_json(module_dir / "sentence_bert_config.json")
        elif kind == "dense":
            dense.append(_read_dense(module_dir))
        elif kind == "mask":
            mask_config = _optional_json(module_dir / "config.json")
        elif kind != "ignored":
            raise UnsupportedCheckpointError(
                f"{path} contains a {entry.get('type')} module: it is a single-vector (pooled) model or uses a "
                "module edgecolbert does not implement, not a late-interaction checkpoint."
            )
    if backbone_dir is None:
        raise UnsupportedCheckpointError(f"{path / 'modules.json'} lists no Transformer module.")
    if not dense:
        raise UnsupportedCheckpointError(
            f"{path} has no Dense projection module: without the trained ColBERT head the token vectors would "
            "be meaningless. Use a late-interaction checkpoint."
        )
    if st_config.get("model_type") == "ColBERT" or "query_prefix" in st_config or mask_config is None:
        return _pylate_spec(path, backbone_dir, tuple(dense), st_config, transformer_config)
    return _native_spec(path, backbone_dir, tuple(dense), st_config, transformer_config, mask_config)


def _module_dir(path: Path, entry: Any) -> Path:
    if not isinstance(entry, dict) or not isinstance(entry.get("path", ""), str):
        raise CorruptCheckpointError(f"{path / 'modules.json'} has an entry that is not a module: {entry!r}.")
    relative = entry.get("path", "")
    # "" is the checkpoint folder itself (PyLate's Transformer module).
    return path if relative in ("", ".") else inside_checkpoint(path, relative, path / "modules.json", is_dir=True)


def _read_dense(module_dir: Path) -> DenseSpec:
    config = load_json(module_dir / "config.json")
    weights = module_dir / "model.safetensors"
    if not is_checkpoint_file(weights):
        pickled = [name for name in ("pytorch_model.bin", "model.pt") if is_checkpoint_file(module_dir / name)]
        hint = (
            f" It has {pickled[0]}, a pickle file, which edgecolbert never loads: convert it to safetensors."
            if pickled
            else ""
        )
        raise MissingCheckpointFileError(f"Projection weights {weights} are missing.{hint}")
    try:
        return DenseSpec(
            weights=weights,
            key_prefix="linear.",
            in_features=_positive(config, "in_features"),
            out_features=_positive(config, "out_features"),
            bias=bool(config.get("bias", True)),
            activation=str(config.get("activation_function") or "torch.nn.modules.linear.Identity"),
            use_residual=bool(config.get("use_residual", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptCheckpointError(f"{module_dir / 'config.json'} lacks a valid {exc} entry.") from exc


def _positive(config: dict[str, Any], name: str) -> int:
    value = config[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name!r} (a positive whole number; it holds {value!r})")
    return value


def _max_seq_length(transformer_config: dict[str, Any]) -> int | None:
    value = transformer_config.get("max_seq_length")
    return int(value) if value else None


def _pylate_spec(
    path: Path,
    backbone_dir: Path,
    dense: tuple[DenseSpec, ...],
    st_config: dict[str, Any],
    transformer_config: dict[str, Any],
) -> CheckpointSpec:
    skiplist = st_config.get("skiplist_words")
    expansion = st_config.get("do_query_expansion", True)
    return CheckpointSpec(
        path=path,
        layout="pylate",
        backbone_dir=backbone_dir,
        dense=dense,
        query_prefix=st_config.get("query_prefix") or "",
        document_prefix=st_config.get("document_prefix") or "",
        query_length=int(st_config.get("query_length") or PYLATE_QUERY_LENGTH),
        document_length=int(st_config.get("document_length") or PYLATE_DOCUMENT_LENGTH),
        query_expansion=bool(expansion),
        attend_to_expansion_tokens=bool(expansion and st_config.get("attend_to_expansion_tokens", False)),
        skiplist_words=tuple(skiplist if skiplist is not None else string.punctuation),
        do_lower_case=bool(transformer_config.get("do_lower_case", False)),
    )


def _native_spec(
    path: Path,
    backbone_dir: Path,
    dense: tuple[DenseSpec, ...],
    st_config: dict[str, Any],
    transformer_config: dict[str, Any],
    mask_config: dict[str, Any],
) -> CheckpointSpec:
    prompts = st_config.get("prompts") or {}
    expansion = transformer_config.get("query_expansion")
    if expansion is not None and expansion.get("strategy", "fixed") != "fixed":
        raise UnsupportedCheckpointError(
            f"{path}: query_expansion strategy {expansion.get('strategy')!r} is not supported (only 'fixed')."
        )
    max_seq_length = _max_seq_length(transformer_config)
    query_length = (expansion or {}).get("length") or transformer_config.get("query_length") or max_seq_length
    document_length = transformer_config.get("document_length") or max_seq_length
    if not query_length or not document_length:
        raise CorruptCheckpointError(
            f"{backbone_dir / 'sentence_bert_config.json'} sets neither query/document lengths nor max_seq_length."
        )
    skiplist_tasks = mask_config.get("skiplist_tasks") or ["document"]
    if "query" in skiplist_tasks:
        raise UnsupportedCheckpointError(f"{path}: a skiplist applied to queries is not supported.")
    return CheckpointSpec(
        path=path,
        layout="sentence-transformers",
        backbone_dir=backbone_dir,
        dense=dense,
        query_prefix=prompts.get("query") or "",
        document_prefix=prompts.get("document") or "",
        query_length=int(query_length),
        document_length=int(document_length),
        query_expansion=expansion is not None,
        attend_to_expansion_tokens=bool((expansion or {}).get("attend", False)),
        skiplist_words=tuple(mask_config.get("skiplist_words") or ()),
        do_lower_case=bool(transformer_config.get("do_lower_case", False)),
        expansion_token=(expansion or {}).get("token"),
    )


def _read_stanford_checkpoint(path: Path) -> CheckpointSpec:
    metadata_path = path / "artifact.metadata"
    metadata = load_json(metadata_path) if is_checkpoint_file(metadata_path) else {}
    if not metadata:
        logger.warning("%s has no artifact.metadata: using Stanford ColBERT defaults.", path)
    weights = _root_weights(path)
    in_features, out_features = _stanford_projection_shape(weights)
    mask_punctuation = metadata.get("mask_punctuation", True)
    return CheckpointSpec(
        path=path,
        layout="stanford",
        backbone_dir=path,
        dense=(
            DenseSpec(
                weights=weights,
                key_prefix="linear.",
                in_features=in_features,
                out_features=out_features,
                bias=False,
                activation="torch.nn.modules.linear.Identity",
            ),
        ),
        query_prefix=(metadata.get("query_token_id") or "[unused0]") + " ",
        document_prefix=(metadata.get("doc_token_id") or "[unused1]") + " ",
        query_length=int(metadata.get("query_maxlen") or 32),
        document_length=int(metadata.get("doc_maxlen") or PYLATE_DOCUMENT_LENGTH),
        # Stanford ColBERT always pads queries with [MASK]: it is its query augmentation.
        query_expansion=True,
        attend_to_expansion_tokens=bool(metadata.get("attend_to_mask_tokens", False)),
        skiplist_words=tuple(string.punctuation) if mask_punctuation else (),
        do_lower_case=False,
    )


def _root_weights(path: Path) -> Path:
    check_backbone_weights(path)
    weights = path / "model.safetensors"
    if not is_checkpoint_file(weights):
        # The projection sits in the same file as the backbone, so a sharded save cannot be read here.
        raise MissingCheckpointFileError(f"{path} has no single model.safetensors holding 'linear.weight'.")
    return weights


def check_backbone_weights(folder: Path) -> list[Path]:
    """The backbone's safetensors files (single or sharded); pickled weights are refused by name.

    An index may only name safetensors files inside the folder: transformers follows an index to
    whatever it names, pickles included, even when asked for safetensors.
    """
    single = folder / "model.safetensors"
    index = folder / SAFETENSORS_INDEX
    shards = _index_shards(folder, index) if is_checkpoint_file(index) else []
    if is_checkpoint_file(single):
        return [single]
    if shards:
        return shards
    if any(is_checkpoint_file(folder / name) for name in ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        raise MissingCheckpointFileError(
            f"{folder} holds its backbone weights only as pytorch_model.bin (pickle), which edgecolbert never "
            "loads. Use a revision with model.safetensors (the hub's safetensors conversion) or convert them."
        )
    raise MissingCheckpointFileError(f"{folder} has no model.safetensors backbone weight file.")


def _index_shards(folder: Path, index: Path) -> list[Path]:
    data = load_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CorruptCheckpointError(f"{index} has no 'weight_map' of tensor names to shard files.")
    shards: list[Path] = []
    for name in dict.fromkeys(weight_map.values()):
        if not isinstance(name, str) or not name.endswith(".safetensors"):
            raise UnsupportedCheckpointError(
                f"{index} maps weights to {name!r}, which is not a .safetensors file; edgecolbert reads only "
                "safetensors weights (pickle files can run code). Convert the weights to safetensors."
            )
        shard = inside_checkpoint(folder, name, index, is_dir=False)
        if not is_checkpoint_file(shard):
            raise MissingCheckpointFileError(f"{index} names the shard {name}, which is missing from {folder}.")
        shards.append(shard)
    return shards


def tensor_shapes(files: Iterable[Path], what: str) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, read from the safetensors headers alone (no tensor data is loaded)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            # numpy, not pt: headers read the same, and torch (seconds to import) is not needed for them.
            with safe_open(str(file), framework="numpy") as handle:
                for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                    shapes[key] = tuple(int(size) for size in handle.get_slice(key).get_shape())
        except Exception as exc:  # safetensors raises its own error types for truncated or garbled files
            raise CorruptCheckpointError(f"{what} {file} are not a readable safetensors file: {exc}") from exc
    return shapes


def check_backbone_config(folder: Path) -> None:
    """Compare the sizes config.json declares with the tensors the weights hold, before anything is allocated.

    A config asking for 100,000 layers or a huge width would otherwise be built first (minutes, or
    terabytes) and found wrong only when its weights are copied in. The file is read as written:
    transformers' own checks of the same fields give messages that do not name them.
    """
    files = check_backbone_weights(folder)
    config_path = folder / "config.json"
    config = load_json(config_path)
    sizes = {name: _config_size(config, name, config_path) for name in _CONFIG_SIZE_LIMITS}
    shapes = tensor_shapes(files, "The backbone weights")
    where = files[0] if len(files) == 1 else f"the {len(files)} weight shards in {folder}"
    dims = {size for shape in shapes.values() if math.prod(shape) > 0 for size in shape}
    for name in _SIZES_IN_WEIGHTS:
        if sizes[name] is not None and sizes[name] not in dims:
            raise CorruptCheckpointError(
                f"{config_path} sets {name}={sizes[name]}, but no tensor in {where} has a dimension of that size: "
                "the config does not describe these weights. Restore the config.json saved with them."
            )
    layers = {int(match.group(1)) for key in shapes if (match := _LAYER_INDEX.search(key))}
    declared = sizes["num_hidden_layers"]
    if declared is not None and layers and not set(range(declared)) <= layers:
        raise CorruptCheckpointError(
            f"{config_path} sets num_hidden_layers={declared}, but {where} holds weights for {len(layers)} layers: "
            "the config does not describe these weights. Restore the config.json saved with them."
        )
    heads, hidden = sizes["num_attention_heads"], sizes["hidden_size"]
    if heads is not None and hidden is not None and heads > hidden:
        raise CorruptCheckpointError(
            f"{config_path} sets num_attention_heads={heads}, more than hidden_size={hidden}: not a valid model."
        )


def _config_size(config: Any, name: str, config_path: Path) -> int | None:
    value = config.get(name) if isinstance(config, dict) else None
    if value is None:
        return None
    limit = _CONFIG_SIZE_LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise CorruptCheckpointError(
            f"{config_path} sets {name}={value!r}; it must be a whole number from 1 to {limit:,}."
        )
    return value


def _stanford_projection_shape(weights: Path) -> tuple[int, int]:
    shape = tensor_shapes([weights], "The weights").get("linear.weight")
    if shape is None:
        raise UnsupportedCheckpointError(f"{weights} has no 'linear.weight' tensor: not a Stanford ColBERT checkpoint.")
    if len(shape) != 2:
        raise CorruptCheckpointError(f"{weights}: 'linear.weight' has shape {shape}; a projection is 2-dimensional.")
    out_features, in_features = shape
    return in_features, out_features
