"""Prepare what the torch-free runtime tests load, with torch: ``python tests/runtime/prepare_runtime.py DIR``.

DIR gets a random-weight test checkpoint, its ``edgecolbert export`` folder and a store indexed with
the checkpoint on torch. The tests then run where torch cannot be imported, with DIR in
``$EDGECOLBERT_TEST_RUNTIME_DIR`` (``.ci/run`` does this in a virtualenv without torch).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime_corpus import CHECKPOINT, DOCUMENTS, EXPORT, STORE  # noqa: E402

from checkpoints import build_stanford_checkpoint  # noqa: E402
from edgecolbert.store import EdgeStore  # noqa: E402


def prepare(folder: Path, *, onnx_cache_dir: Path | None = None) -> Path:
    checkpoint = build_stanford_checkpoint(folder / CHECKPOINT, seed=0)
    cache = onnx_cache_dir if onnx_cache_dir is not None else folder / "onnx-cache"
    from edgecolbert.encoding.exported import export_model

    export_model(checkpoint, folder / EXPORT, onnx_cache_dir=cache)
    with EdgeStore(folder / STORE, str(checkpoint), muvera=True) as store:
        store.add(list(DOCUMENTS.values()), ids=list(DOCUMENTS))
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/runtime/prepare_runtime.py DIR")
    print(prepare(Path(sys.argv[1])))
