"""Work spread over worker processes: for pure-Python work, which holds the GIL.

Pure: imports neither pygls nor lsprotocol.
"""

from __future__ import annotations

import multiprocessing
import pickle
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

__all__ = ["run_in_processes"]

T = TypeVar("T")
R = TypeVar("R")


def run_in_processes(fn: Callable[[T], R], jobs: Sequence[T], processes: int) -> list[R] | None:
    """`fn` of each job on `processes` worker processes, results in the order of `jobs`; None
    when worker processes cannot be used here (the caller then does the work itself).

    On Linux the workers are forked, inheriting what this process has imported and loaded (the
    tokenizer's encoding among it), but only from a process running one thread: forking a
    process whose other threads may hold locks is not safe. Elsewhere they are spawned. `fn`
    must be a module-level function, and jobs and results picklable.
    """
    if processes < 2 or len(jobs) < 2:
        return None
    if sys.platform.startswith("linux"):
        if threading.active_count() > 1:
            return None
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("spawn")
    # A forked worker flushes its copy of the standard streams when it exits: whatever this
    # process had buffered would be written twice.
    sys.stdout.flush()
    sys.stderr.flush()
    workers = min(processes, len(jobs))
    chunk = max(1, len(jobs) // (workers * 8))
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            return list(pool.map(fn, jobs, chunksize=chunk))
    except (OSError, BrokenProcessPool, pickle.PicklingError):
        return None
