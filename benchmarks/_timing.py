"""Wall-clock timing shared by the benchmark scripts (run as ``python benchmarks/<name>.py``, so this module is
importable as ``_timing``)."""
from __future__ import annotations

import statistics
import time

import torch


def timed(fn, device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, with CUDA work finished before and after (a GPU runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_time(fn, device: torch.device, rounds: int, warm_up: bool = True) -> float:
    """The median of ``rounds`` timed calls, after one untimed warm-up call (caches, lazy initialisation)."""
    if warm_up:
        fn()
    return statistics.median(timed(fn, device) for _ in range(rounds))
