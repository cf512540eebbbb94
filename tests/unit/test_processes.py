"""Work on worker processes (analysis.processes), and the compressions spread over them."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from promptls.analysis import compress
from promptls.analysis.compress import compress_document, compress_documents
from promptls.analysis.document import parse_document
from promptls.analysis.graph import WorkspaceIndex, parse_on_worker
from promptls.analysis.processes import ForkedWorkers, start_workers
from promptls.analysis.tokens import TokenCounter
from promptls.analysis.workspace import Workspace
from promptls.cli import main
from promptls.config import load_settings
from tests.conftest import WorkspaceMaker, first_arguments

COUNTER = TokenCounter()


def _pid(_: int) -> int:
    return os.getpid()


def _fail(n: int) -> int:
    raise ValueError(f"job {n} failed")


def _module(i: int) -> str:
    steps = "".join(
        f"    <step>Step {k} of module {i}: check it.</step>\n" for k in range(i % 7 + 1)
    )
    return (
        f'# Module {i}\n\n```xml\n<module name = "m{i}">\n  <purpose>\n    Module {i}.\n'
        f"  </purpose>\n  <steps>\n{steps}  </steps>\n</module>\n```\n"
    )


def _framework(make_workspace: WorkspaceMaker, modules: int) -> Path:
    """A workspace of `modules` modules and a command loading them all."""
    files = {f".claude/modules/m{i}.md": _module(i) for i in range(modules)}
    files[".claude/commands/run.md"] = "".join(
        f"@.claude/modules/m{i}.md\n" for i in range(modules)
    )
    return make_workspace(files)


def _index(root: Path, processes: int = 1) -> WorkspaceIndex:
    """`root` indexed (compressing on `processes` worker processes as it is read)."""
    settings = load_settings(root)
    index = WorkspaceIndex(Workspace([root], settings.kinds, settings.exclude), settings)
    index.index(processes=processes)
    return index


def _index_on_a_worker(root: Path) -> WorkspaceIndex:
    """`root` indexed as the server does: parsed on one worker process (closed afterwards)."""
    settings = load_settings(root)
    workers = ForkedWorkers(1, parse_on_worker)
    try:
        index = WorkspaceIndex(
            Workspace([root], settings.kinds, settings.exclude), settings, None, workers
        )
        index.index()
    finally:
        workers.close()
    return index


def _take_spy(taken: list[bool]) -> object:
    """`CompressionPool.take`, noting whether each document came from a worker."""
    real = compress.CompressionPool.take

    def take(self: compress.CompressionPool, key: str, text: str) -> object:
        edits = real(self, key, text)
        taken.append(edits is not None)
        return edits

    return take


def test_workers_are_other_processes() -> None:
    assert threading.active_count() == 1  # (the test runner runs one thread)
    pool = start_workers(2)
    assert pool is not None
    with pool:
        pids = list(pool.map(_pid, range(8)))
    assert os.getpid() not in pids


def test_one_process_is_this_one() -> None:
    assert start_workers(1) is None


def test_no_fork_while_other_threads_run() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert start_workers(2) is None
    finally:
        stop.set()
        other.join()


def test_a_failing_compression_job_raises_as_it_would_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compress, "_PROCESSES_MIN_CHARS", 0)
    monkeypatch.setattr(compress, "_compress_job", _fail)  # (the forked workers inherit it)
    docs = [parse_document(_module(i), "module") for i in range(3)]
    with pytest.raises(ValueError, match="failed"):
        compress_documents(docs, COUNTER, processes=2)


_XML_TASK = (
    "<task id='t'>\n  <note>\n    Run `make\n\n    all` then `test`\n  </note>\n"
    "  <step n='1'>\n    Read it.\n  </step>\n</task>\n"
)


def test_compressions_on_processes_equal_those_made_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compress, "_PROCESSES_MIN_CHARS", 0)
    docs = [parse_document(_module(i), "module") for i in range(12)]
    docs.insert(3, parse_document("# No XML here\n", "module"))
    # An `.xml` file, compressed there as here as XML, not as markdown (where the blank line
    # keeps the backticks apart).
    docs.append(parse_document(_XML_TASK, "module", xml_file=True))
    assert compress_document(docs[-1], COUNTER) != compress_document(
        parse_document(_XML_TASK, "module"), COUNTER
    )
    taken: list[bool] = []
    monkeypatch.setattr(compress.CompressionPool, "take", _take_spy(taken))
    spread = compress_documents(docs, COUNTER, processes=2)
    assert taken == [True] * 13  # from the workers; the document without XML is not sent
    here = [compress_document(d, COUNTER) for d in docs]
    assert spread == here
    assert spread[3] == [] and all(spread[i] for i in range(14) if i != 3)


def test_check_and_compress_give_the_same_output_with_one_or_two_jobs(
    make_workspace: WorkspaceMaker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compress, "_PROCESSES_MIN_CHARS", 0)
    root = _framework(make_workspace, 10)
    taken: list[bool] = []
    monkeypatch.setattr(compress.CompressionPool, "take", _take_spy(taken))
    outputs = []
    for jobs in ("1", "2"):
        for argv in (["check", "--fail-on", "hint"], ["compress", "--format", "json"]):
            code = main([*argv, "-j", jobs, str(root)])
            outputs.append((code, capsys.readouterr().out))
    assert outputs[:2] == outputs[2:]
    assert "xml-compressible" in outputs[0][1]
    assert outputs[0][0] == 1 and outputs[1][0] == 1
    # With -j 2 (-j 1 never starts processes): check compresses while it indexes, compress
    # after (with its own options); every module from a worker.
    assert taken == [True] * 20


def test_compression_pool_takes_only_what_was_sent_with_that_text() -> None:
    texts = {f"m{i}": _module(i) for i in range(4)}
    pool = compress.CompressionPool(2, COUNTER.name, "whitespace", False)
    assert pool.running
    for key, text in texts.items():
        pool.submit(key, text, "module")
    pool.done_submitting()
    assert not pool.running
    before = threading.active_count()
    pool.submit("late", texts["m0"], "module")  # ignored once done
    for key in ("m0", "m1"):
        expected = compress_document(parse_document(texts[key], "module"), COUNTER)
        assert pool.take(key, texts[key]) == expected
    assert pool.take("m0", texts["m0"]) is None  # taken already
    assert pool.take("m2", texts["m2"] + " ") is None  # not this text
    assert pool.take("late", texts["m0"]) is None
    pool.close()
    assert pool.take("m3", texts["m3"]) is None
    assert threading.active_count() < before  # the pool's own thread is gone


def test_index_compresses_on_workers_while_it_reads(
    make_workspace: WorkspaceMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _framework(make_workspace, 8)
    taken: list[bool] = []
    monkeypatch.setattr(compress.CompressionPool, "take", _take_spy(taken))
    spread = _index(root, processes=2)
    here = _index(root)
    paths = sorted(here.files)
    spread.prepare_compressions(paths, processes=2)
    assert taken == [True] * 8  # every module came from a worker
    assert spread._compressing is None  # the pool is closed once asked
    for path in paths:
        assert spread.compressions(path) == here.compressions(path)
        assert spread.findings(path) == here.findings(path)


def test_default_processes_one_per_core_at_most_eight(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from promptls import cli

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)), raising=False)
    assert cli._processes(argparse.Namespace(jobs=0)) == 8
    assert cli._processes(argparse.Namespace(jobs=12)) == 12
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert cli._processes(argparse.Namespace(jobs=0)) == 2


@pytest.mark.parametrize(
    ("cores", "argv", "workers"),
    [
        (2, [], 1),  # one core is left to the server's own threads
        (1, [], 0),
        (64, [], 8),
        (2, ["--workers", "0"], 0),
        (2, ["--workers", "3"], 3),
        (2, ["--workers", "-1"], 0),
    ],
)
def test_serve_workers_one_per_core_but_one(
    monkeypatch: pytest.MonkeyPatch, cores: int, argv: list[str], workers: int
) -> None:
    import promptls.lsp.server

    served: list[tuple[object, ...]] = []
    monkeypatch.setattr(promptls.lsp.server, "serve", lambda *args: served.append(args) or 0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    assert main(["serve", *argv]) == 0
    assert served == [("stdio", "127.0.0.1", 2087, workers)]


def _die(job: object) -> object:
    os._exit(3)  # a worker killed mid-job (out of memory, a signal)


def test_a_worker_that_dies_leaves_the_compressions_to_this_process(
    make_workspace: WorkspaceMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _framework(make_workspace, 4)
    here = _index(root)
    monkeypatch.setattr(compress, "_compress_job", _die)  # (the forked workers inherit it)
    taken: list[bool] = []
    monkeypatch.setattr(compress.CompressionPool, "take", _take_spy(taken))
    broken = _index(root, processes=2)
    paths = sorted(here.files)
    broken.prepare_compressions(paths)
    assert taken and not any(taken)  # nothing came from the workers
    for path in paths:
        assert broken.findings(path) == here.findings(path)
    assert threading.active_count() == 1


def test_compress_does_here_what_dead_workers_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compress, "_PROCESSES_MIN_CHARS", 0)
    docs = [parse_document(_module(i), "module") for i in range(4)]
    here = [compress_document(d, COUNTER) for d in docs]
    monkeypatch.setattr(compress, "_compress_job", _die)
    taken: list[bool] = []
    monkeypatch.setattr(compress.CompressionPool, "take", _take_spy(taken))
    assert compress_documents(docs, COUNTER, processes=2) == here
    assert taken == [False] * 4
    assert threading.active_count() == 1


def test_checking_named_files_does_not_compress_the_whole_workspace(
    make_workspace: WorkspaceMaker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = _framework(make_workspace, 6)
    submitted: list[str] = []
    real = compress.CompressionPool.submit

    def submit(
        self: compress.CompressionPool, key: str, text: str, kind: str, xml_file: bool = False
    ) -> None:
        submitted.append(key)
        real(self, key, text, kind, xml_file)

    monkeypatch.setattr(compress.CompressionPool, "submit", submit)
    one = root / ".claude/modules/m5.md"
    assert main(["check", "--fail-on", "hint", "-j", "2", str(one)]) == 1
    out = capsys.readouterr().out
    assert "m5.md" in out and "m4.md" not in out and "xml-compressible" in out
    assert submitted == []
    assert main(["check", "--fail-on", "hint", "-j", "2", str(root)]) == 1
    assert len(submitted) == 6


# -- the language server's long-lived workers (ForkedWorkers) ------------------------------------


def _echo(*args: object) -> tuple[object, ...]:
    return (os.getpid(), *args)


def _crash(_: object) -> None:
    os._exit(3)  # as a worker killed by the system would vanish


def _fds(pid: int) -> dict[int, str]:
    folder = Path(f"/proc/{pid}/fd")
    return {int(fd.name): os.readlink(fd) for fd in folder.iterdir()}


def test_forked_workers_answer_jobs_on_other_processes() -> None:
    assert threading.active_count() == 1
    workers = ForkedWorkers(2, _echo)
    try:
        assert workers.running == 2 and len(set(workers.pids)) == 2
        for n in range(20):
            assert workers.submit(("job", n), (n, "x" * n), size=n + 1)
        answers = [workers.result(("job", n)) for n in range(20)]
        assert [a[1:] for a in answers] == [(n, "x" * n) for n in range(20)]  # type: ignore[index]
        assert {a[0] for a in answers} <= set(workers.pids)  # type: ignore[index]
        assert os.getpid() not in {a[0] for a in answers}  # type: ignore[index]
        assert workers.jobs == 20 and workers.failures == 0
        assert workers.result(("never", "sent")) is None
    finally:
        workers.close()
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers.pids)  # reaped


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_forked_workers_hold_nothing_of_this_process_open() -> None:
    """Not the standard input and output (a language client's pipes, which must see
    end-of-file when the server ends), nor each other's pipes, nor any other file."""
    r, w = os.pipe()
    workers = ForkedWorkers(2, _echo)
    try:
        # (A worker closes and redirects them before it reads its first job: once each has
        # answered one, that is done.)
        for k in range(8):
            workers.submit(k, (k,))
        assert {workers.result(k)[0] for k in range(8)} == set(workers.pids)  # type: ignore[index]
        for pid in workers.pids:
            fds = _fds(pid)
            assert fds[0] == os.devnull and fds[1] == os.devnull
            assert fds[2] == os.readlink("/proc/self/fd/2")  # where its errors go
            pipes = {fd: target for fd, target in fds.items() if fd > 2}
            assert len(pipes) == 2 and all(t.startswith("pipe:") for t in pipes.values())
            assert f"pipe:[{os.fstat(r).st_ino}]" not in pipes.values()
    finally:
        workers.close()
        os.close(r)
        os.close(w)


def test_a_failed_job_gives_none_and_the_worker_goes_on() -> None:
    workers = ForkedWorkers(1, _fail)
    try:
        assert workers.submit(1, (1,))
        assert workers.result(1) is None
        assert workers.running == 1 and workers.failures == 1
    finally:
        workers.close()


def test_jobs_of_a_dead_worker_give_none_and_no_more_go_to_it() -> None:
    workers = ForkedWorkers(1, _crash)
    try:
        assert workers.submit("a", (1,))
        assert workers.result("a") is None  # (it died on the job)
        assert workers.running == 0 and workers.failures == 1
        assert not workers.submit("b", (2,))  # the caller does the work itself
    finally:
        workers.close()


def test_workers_end_when_this_process_closes_their_pipes() -> None:
    workers = ForkedWorkers(2, _echo)
    pids = workers.pids
    workers.close()
    assert workers.running == 0
    assert all(not Path(f"/proc/{p}").exists() for p in pids)


def test_no_forked_workers_while_other_threads_run() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        workers = ForkedWorkers(2, _echo)
        assert workers.running == 0 and not workers.submit(1, ())
    finally:
        stop.set()
        other.join()


def test_an_index_parsed_on_workers_equals_one_parsed_here(
    make_workspace: WorkspaceMaker,
) -> None:
    """Regions checked and references read on the workers (malformed ones too): the same
    analysis, finding for finding, and the region checks wait in the cache for edits."""
    files = {f".claude/modules/m{i}.md": _module(i) for i in range(6)}
    files[".claude/modules/bad.md"] = (
        "# Bad\n\n```xml\n<module><step>a & b<step></module>\n<!-- x -- y -->\n```\n"
        "<raw>\n```\n<not-xml>\n```\n</raw>\n"
    )
    files[".claude/modules/deps.md"] = (
        "```xml\n<depends_on>\n  m0.md\n  <why>m1.md</why>\n  missing.md\n</depends_on>\n"
        '<include component="m2.md"/>\n```\n'
    )
    files[".claude/modules/task.xml"] = _XML_TASK  # (no declaration: XML by its name)
    files[".claude/commands/run.md"] = (
        "---\ndescription: run\n---\n"
        + "".join(f"@.claude/modules/m{i}.md\n" for i in range(6))
        + "@.claude/modules/bad.md\n@.claude/modules/deps.md\n@.claude/modules/nope.md\n"
        + "@.claude/modules/task.xml\n"
    )
    root = make_workspace(files)
    settings = load_settings(root)
    here = WorkspaceIndex(Workspace([root], settings.kinds, settings.exclude), settings)
    here.index()
    workers = ForkedWorkers(2, parse_on_worker)
    try:
        there = WorkspaceIndex(
            Workspace([root], settings.kinds, settings.exclude), settings, None, workers
        )
        there.index()
        # (each file with something that may be XML; the command has none)
        assert workers.jobs == len(files) - 1 and workers.failures == 0
    finally:
        workers.close()
    assert sorted(there.files) == sorted(here.files)
    task = there.files[str(root / ".claude/modules/task.xml")].doc
    assert task.xml_file and [r.form for r in task.regions] == ["document"]
    for path, fa in here.files.items():
        other = there.files[path]
        assert other.doc == fa.doc
        assert [r.check.elements for r in other.doc.regions] == [
            r.check.elements for r in fa.doc.regions
        ]
        assert other.resolutions == fa.resolutions
        assert (other.raw_tokens, other.tokens) == (fa.raw_tokens, fa.tokens)
        assert there.findings(path) == here.findings(path)
        for region in other.doc.regions:
            key = (fa.doc.text[region.start : region.end], ())
            if key in there._region_checks:
                assert there._region_checks[key] is region.check


def test_edits_of_a_file_parsed_on_a_worker_resume_once_prepared(
    make_workspace: WorkspaceMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker keeps nothing for `recheck_region`: before `resume_edits` a renamed tag checks
    its region whole; after it, only near the edit, as for a file parsed here."""
    from promptls.analysis import document

    steps = "".join(f"  <step>Step {k}: do it.</step>\n" for k in range(200))
    root = make_workspace({".claude/modules/big.md": f"```xml\n<steps>\n{steps}</steps>\n```\n"})
    path = str(root / ".claude/modules/big.md")
    index = _index_on_a_worker(root)
    fa = index.files[path]
    assert fa.doc.regions and fa.doc.regions[0].check.resume is None  # (packed by the worker)
    whole = first_arguments(monkeypatch, document, "check_region")
    assert index.resume_edits(path)
    assert whole  # checked again here, once
    assert all(r.check.resume is not None for r in index.files[path].doc.regions)
    assert not index.resume_edits(path)  # (nothing left to do)
    whole.clear()
    text = fa.doc.text.replace("<step>Step 150:", "<steps>Step 150:", 1)  # a tag renamed
    index.workspace.overlay[path] = text
    index.update(path, 2)
    assert index.edits["region"] == 1 and whole == []  # resumed near the edit
    fresh = document.parse_document(text, "module")
    assert index.files[path].doc == fresh


def _slow_echo(n: int) -> int:
    import time

    time.sleep(0.05)
    return n


def test_forgotten_answers_are_not_kept() -> None:
    workers = ForkedWorkers(1, _slow_echo)
    try:
        for n in range(4):
            assert workers.submit(n, (n,))
        assert workers.result(0) == 0
        workers.forget([0, 1, 2])  # (0 taken already, 1 and 2 held or still to come)
        assert workers.result(3) == 3
        assert workers.held == 0 and workers.jobs == 4
        assert workers.result(1) is None  # never kept
    finally:
        workers.close()


def test_an_index_failing_half_way_leaves_no_answers_behind(
    make_workspace: WorkspaceMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_workspace({f".claude/modules/m{i}.md": _module(i) for i in range(6)})
    settings = load_settings(root)
    workers = ForkedWorkers(1, parse_on_worker)
    try:
        index = WorkspaceIndex(
            Workspace([root], settings.kinds, settings.exclude), settings, None, workers
        )
        real = WorkspaceIndex._parse
        calls: list[str] = []

        def parse(self: WorkspaceIndex, path: str, *args: Any) -> Any:
            calls.append(path)
            if len(calls) == 2:
                raise RuntimeError("the second file fails")
            return real(self, path, *args)

        monkeypatch.setattr(WorkspaceIndex, "_parse", parse)
        with pytest.raises(RuntimeError):
            index.index()
        deadline = time.monotonic() + 10
        while workers.jobs < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert workers.jobs == 6 and workers.held == 0
    finally:
        workers.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities: Linux")
def test_counting_yields_to_the_workers_parsing(
    make_workspace: WorkspaceMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While worker processes parse (the server's index), the threads counting tokens run at a
    lower priority than the rest of the process; without workers (the command line), as it."""
    seen: list[int] = []
    count_whole = TokenCounter.count_whole

    def noting(self: TokenCounter, texts: list[str]) -> list[int]:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return count_whole(self, texts)

    monkeypatch.setattr(TokenCounter, "count_whole", noting)
    root = make_workspace({f".claude/modules/m{i}.md": "```xml\n<a>x</a>\n```\n" for i in range(4)})
    settings = load_settings(root)
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    WorkspaceIndex(Workspace([root], settings.kinds, settings.exclude), settings).index()
    assert seen == [here] * 4
    seen.clear()
    index = _index_on_a_worker(root)
    assert seen == [min(19, here + 10)] * 4 and len(index.files) == 4
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == here
