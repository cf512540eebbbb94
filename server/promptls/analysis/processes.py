"""Work spread over worker processes: for pure-Python work, which holds the GIL.

Pure: imports neither pygls nor lsprotocol.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import sys
import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import NoReturn

__all__ = ["FAILURES", "ForkedWorkers", "start_workers"]

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
    if _may_fork():
        context = multiprocessing.get_context("fork")
    elif sys.platform.startswith("linux"):
        return None  # (other threads run)
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


def _may_fork() -> bool:
    """Whether worker processes may be forked from this process: on Linux, and only while it
    runs one thread (forking a process whose other threads may hold locks is not safe)."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


# -- long-lived forked workers (the language server) ---------------------------------------------

_FRAME = struct.Struct("<Q")


def _write_frame(fd: int, payload: bytes) -> None:
    data = memoryview(_FRAME.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None  # the other end closed
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> bytes | None:
    head = _read_exactly(fd, _FRAME.size)
    if head is None:
        return None
    return _read_exactly(fd, _FRAME.unpack(head)[0])


def _open_fds() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def _worker_main(jobs: int, results: int, handler: Callable[..., object]) -> NoReturn:
    """A forked worker's life: answer each job with `handler(*args)`, until the parent closes
    the job pipe (it exited, or closed the pool). Never returns."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the parent
        # Nothing of the parent's stays open here: not its standard input and output (the
        # client's pipes, which must see end-of-file when the parent ends), nor the pipes of
        # the other workers (whose jobs must see end-of-file when the parent closes them).
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        for fd in _open_fds():
            if fd > 2 and fd not in (jobs, results):
                with contextlib.suppress(OSError):
                    os.close(fd)
        while True:
            frame = _read_frame(jobs)
            if frame is None:
                break
            key, args = pickle.loads(frame)
            try:
                answer: tuple[object, bool, object] = (key, True, handler(*args))
            except Exception as exc:  # a job's failure is the parent's to handle
                answer = (key, False, f"{type(exc).__name__}: {exc}")
            _write_frame(results, pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    except BaseException:
        code = 1
    finally:
        os._exit(code)


class _Worker:
    def __init__(self, pid: int, jobs: int, results: int) -> None:
        self.pid = pid
        self.jobs = jobs
        self.results = results
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.pending: dict[Hashable, int] = {}
        """Jobs sent and not answered, with their sizes."""
        self.alive = True


class ForkedWorkers:
    """Long-lived worker processes answering jobs with one function (`handler`), for a
    process that later runs threads: the language server, which forks them when it starts.

    They are forked only from a process running one thread (on Linux); otherwise `running` is
    False and the caller does the work itself. A worker holds nothing of its parent's open but
    its two pipes: when the parent ends, however it ends, the worker reads end-of-file and exits
    (it never keeps the client's pipes open). A job that fails, or whose worker died, gives None.
    Jobs go to the worker with the least work waiting; each worker has a thread here feeding it
    and one reading its answers, so `submit` never blocks."""

    def __init__(self, processes: int, handler: Callable[..., object]) -> None:
        self._workers: list[_Worker] = []
        self._threads: list[threading.Thread] = []
        self._answers: dict[Hashable, tuple[bool, object]] = {}
        self._forgotten: set[Hashable] = set()
        """Jobs sent whose answers no one will ask for (`forget`)."""
        self._ready = threading.Condition()
        self.jobs = 0
        """Jobs answered."""
        self.failures = 0
        """Jobs answered with a failure or lost with their worker."""
        if processes < 1 or not _may_fork():
            return
        # (No streams to flush first: a worker ends with `os._exit`, never writing its copies.)
        for _ in range(processes):
            job_read, job_write = os.pipe()
            result_read, result_write = os.pipe()
            try:
                pid = os.fork()
            except OSError:
                for fd in (job_read, job_write, result_read, result_write):
                    os.close(fd)
                break
            if pid == 0:
                _worker_main(job_read, result_write, handler)
            os.close(job_read)
            os.close(result_write)
            for fd in (job_write, result_read):
                os.set_inheritable(fd, False)
            self._workers.append(_Worker(pid, job_write, result_read))
        self._threads = [
            threading.Thread(
                target=run, args=(worker,), name=f"promptls-worker-{what}", daemon=True
            )
            for worker in self._workers
            for run, what in ((self._feed, "feed"), (self._collect, "read"))
        ]
        for thread in self._threads:
            thread.start()

    @property
    def running(self) -> int:
        """How many workers are alive (0: do the work here)."""
        return sum(w.alive for w in self._workers)

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers alive."""
        return [w.pid for w in self._workers if w.alive]

    def submit(self, key: Hashable, args: tuple[object, ...], size: int = 1) -> bool:
        """Send job `key` (its answer is `handler(*args)`); False when no worker is alive.
        `size` weighs the job, to spread the work."""
        with self._ready:
            alive = [w for w in self._workers if w.alive]
            if not alive:
                return False
            worker = min(alive, key=lambda w: sum(w.pending.values()))
            worker.pending[key] = size
            self._answers.pop(key, None)
        worker.outbox.put(pickle.dumps((key, args), protocol=pickle.HIGHEST_PROTOCOL))
        return True

    def result(self, key: Hashable) -> object | None:
        """The answer to job `key`, waiting for it; None when it failed, its worker died, or it
        was never sent."""
        with self._ready:
            while True:
                answer = self._answers.pop(key, None)
                if answer is not None:
                    return answer[1] if answer[0] else None
                if not any(key in w.pending for w in self._workers):
                    return None
                self._ready.wait()

    def forget(self, keys: Iterable[Hashable]) -> None:
        """Drop the answers to `keys`, held or still to come: no one will ask for them (an
        index given up half way)."""
        with self._ready:
            for key in keys:
                if self._answers.pop(key, None) is None and any(
                    key in w.pending for w in self._workers
                ):
                    self._forgotten.add(key)

    @property
    def held(self) -> int:
        """Answers waiting to be asked for."""
        return len(self._answers)

    def close(self) -> None:
        """Stop the workers (they finish the job in hand), reap them, and end the threads
        serving them."""
        for worker in self._workers:
            worker.outbox.put(None)
        for thread in self._threads:
            thread.join()

    def _feed(self, worker: _Worker) -> None:
        try:
            while (job := worker.outbox.get()) is not None:
                _write_frame(worker.jobs, job)
        except OSError:
            pass  # the worker died: `_collect` reads end-of-file
        finally:
            with contextlib.suppress(OSError):
                os.close(worker.jobs)

    def _collect(self, worker: _Worker) -> None:
        try:
            while (frame := _read_frame(worker.results)) is not None:
                key, ok, value = pickle.loads(frame)
                with self._ready:
                    worker.pending.pop(key, None)
                    if key in self._forgotten:
                        self._forgotten.discard(key)
                    else:
                        self._answers[key] = (ok, value)
                    self.jobs += 1
                    self.failures += not ok
                    self._ready.notify_all()
        except (OSError, pickle.UnpicklingError):
            pass
        with self._ready:
            worker.alive = False
            self.failures += len(worker.pending)
            self._forgotten.difference_update(worker.pending)
            worker.pending.clear()
            self._ready.notify_all()
        with contextlib.suppress(OSError):
            os.close(worker.results)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(worker.pid, 0)  # (end-of-file: it is exiting)
