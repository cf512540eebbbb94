"""Work spread over worker processes: for pure-Python work, which holds the GIL.

Pure: imports neither pygls nor lsprotocol.
"""

from __future__ import annotations

import multiprocessing
import pickle
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

__all__ = ["FAILURES", "start_workers"]

FAILURES = (OSError, BrokenProcessPool, pickle.PicklingError)
"""What a pool of worker processes may raise for reasons of its own (not a job's)."""


def start_workers(processes: int) -> ProcessPoolExecutor | None:
    """A pool of `processes` worker processes, started now; None when worker processes cannot
    be used here (then the caller does the work itself).

    On Linux the workers are forked, inheriting what this process has imported and loaded, but
    only from a process running one thread: forking a process whose other threads may hold
    locks is not safe (so start them before any thread, to use them later). Elsewhere they are
    spawned. Jobs must be module-level functions, with picklable arguments and results.
    """
    if processes < 2:
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
    try:
        pool = ProcessPoolExecutor(max_workers=processes, mp_context=context)
        # With fork, the first job starts every worker, before the pool's own thread exists.
        pool.submit(int).result()
    except FAILURES:
        return None
    return pool
