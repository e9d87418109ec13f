"""What the benchmark scripts share: the inputs they read, the checkpoint they build, the machine they ran on."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from typing_extensions import Self

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SCIFACT = SHARED / "data" / "scifact"
BENCH_ROOT = Path(tempfile.gettempdir()) / "edgecolbert-bench"

# Reuses the tests' checkpoint builder rather than duplicating the exact 17m/32m layout here.
sys.path.insert(0, str(REPO / "tests"))
from checkpoints import build_edge_checkpoint  # noqa: E402 (after the sys.path entry above)


def require_shared() -> None:
    if not SCIFACT.is_dir() or not (SHARED / "models" / "modernbert-tokenizer").is_dir():
        sys.exit(
            f"error: {SHARED} is missing (needs data/scifact and models/modernbert-tokenizer); "
            "this benchmark reads SciFact and the ModernBERT tokenizer from the shared folder beside the repo."
        )


def cached_checkpoint(shape: str) -> Path:
    """The random-weight checkpoint for ``shape``, built once per machine under the temp folder."""
    return cached_build(f"edge-{shape}", lambda staging: build_edge_checkpoint(staging, shape=shape))


def cached_build(name: str, build: Callable[[Path], object]) -> Path:
    """``BENCH_ROOT/name``, made by ``build(folder)`` the first time and reused afterwards."""
    target = BENCH_ROOT / name
    if target.is_dir():
        return target
    BENCH_ROOT.mkdir(parents=True, exist_ok=True)
    # Built aside and renamed, so an interrupted build never leaves a half result to reuse.
    staging = Path(tempfile.mkdtemp(dir=BENCH_ROOT, prefix=f".{name}-"))
    build(staging)
    try:
        staging.rename(target)
    except OSError:  # another run finished first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def interleaved_times(
    calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, block: int = 1
) -> dict[str, list[float]]:
    """Seconds of each call per repeat, the calls taking turns so each sees the same stretch of a shared machine.

    A turn is ``block`` calls of one contender in a row, each timed.
    """
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[float]] = {label: [] for label in calls}
    while any(len(taken) < repeats for taken in samples.values()):
        for label, call in calls.items():
            for _ in range(min(block, repeats - len(samples[label]))):
                started = time.perf_counter()
                call()
                samples[label].append(time.perf_counter() - started)
    return samples


def prepare_run(threads: int) -> None:
    """Threads fixed, and no per-pass log lines or load bars in the middle of timed passes."""
    import torch
    import transformers

    torch.set_num_threads(threads)
    # The truncation warning would repeat on every timed pass; the reports state the count once.
    logging.getLogger("edgecolbert").setLevel(logging.ERROR)
    transformers.utils.logging.disable_progress_bar()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class ForeignCpu:
    """Share of the machine's CPU time that other processes took while the block ran (Linux only).

    The host is shared: a neighbour's job slows every contender, so the report says how alone it was.
    """

    def __init__(self) -> None:
        self.share: float | None = None

    def __enter__(self) -> Self:
        self._start = (time.perf_counter(), _machine_busy_seconds(), _own_cpu_seconds())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, busy, own = self._start
        end_busy = _machine_busy_seconds()
        if busy is None or end_busy is None:
            return
        elapsed = time.perf_counter() - wall
        foreign = (end_busy - busy) - (_own_cpu_seconds() - own)
        self.share = max(0.0, foreign) / (elapsed * (os.cpu_count() or 1))


class HostSpeed:
    """Times a fixed pure-Python loop now and then: how fast the host ran this process's core.

    The loop has no threads and next to no memory traffic, so on an idle host its time is fixed;
    where it swings, the host itself (a neighbour on the same physical core, say) slowed the
    process, which the foreign CPU share cannot see. The median over the fastest sample says how
    far below its best the host ran while the samples were taken.
    """

    LOOP = 200_000

    def __init__(self) -> None:
        self.samples_ms: list[float] = []

    def sample(self, times: int = 5) -> None:
        for _ in range(times):
            started = time.perf_counter()
            total = 0
            for value in range(self.LOOP):
                total += value
            self.samples_ms.append(1e3 * (time.perf_counter() - started))

    def summary(self) -> dict[str, float | int]:
        median = statistics.median(self.samples_ms)
        fastest = min(self.samples_ms)
        return {
            "samples": len(self.samples_ms),
            "median_ms": median,
            "fastest_ms": fastest,
            "slowdown": median / fastest,
        }


def _machine_busy_seconds() -> float | None:
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """This process's CPU time and that of the processes it started and waited for (the commands it times)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system
