"""The `promptls` command line: check, tokens, graph, stats, compress, report, baseline, serve.

Exit codes: 0 nothing at or above the fail level, 1 findings at or above it, 2 usage or I/O error
(one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from promptls import __version__
from promptls.analysis.findings import Severity
from promptls.analysis.graph import WorkspaceIndex, load_tree, tree_lines
from promptls.analysis.text import PositionEncoding
from promptls.analysis.tokens import EncodingUnavailable
from promptls.analysis.workspace import Workspace
from promptls.config import Settings, load_settings
from promptls.output import build_reports, render_json, render_sarif, render_text, severity_counts

if TYPE_CHECKING:
    from promptls.analysis.document import Document
    from promptls.fileio import Snapshot
    from promptls.report import Baseline


class UsageError(Exception):
    """A problem with the command line or the files it names (exit code 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptls",
        description="Token budgets, load costs and XML checks for Claude Code prompt frameworks.",
    )
    parser.add_argument("--version", action="version", version=f"promptls {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="report every finding of a workspace")
    check.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="workspace folders, or files inside one (default: .)",
    )
    check.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    check.add_argument(
        "--fail-on",
        choices=("error", "warning", "information", "hint"),
        default="error",
        help="lowest severity that makes the exit code 1",
    )
    check.add_argument(
        "--position-encoding",
        choices=[e.value for e in PositionEncoding],
        default="utf-16",
        help="how columns are counted (default utf-16, as LSP)",
    )
    check.add_argument(
        "--baseline",
        metavar="FILE",
        help="compare load costs with a baseline (promptls baseline): load-regression warnings",
    )
    check.add_argument(
        "--max-growth",
        metavar="GROWTH",
        help="load growth allowed since the baseline: 10%%, 10 or 0.1 (default 10%%)",
    )
    _common(check)

    report = sub.add_parser(
        "report", help="the budget dashboard: load costs, largest files, savings, findings"
    )
    report.add_argument("paths", nargs="*", metavar="PATH", help="workspace folders (default: .)")
    report.add_argument("--html", metavar="OUT", help="write the HTML dashboard to OUT")
    report.add_argument(
        "--format",
        choices=("markdown", "json", "html"),
        default=None,
        help="print the report to stdout (default: markdown, unless --html is given)",
    )
    report.add_argument("--baseline", metavar="FILE", help="show the change since a baseline")
    report.add_argument(
        "--top", type=int, default=15, help="rows of the largest and most-loaded tables"
    )
    _common(report)

    baseline = sub.add_parser(
        "baseline", help="record every file's tokens and every command's load cost"
    )
    baseline.add_argument("paths", nargs="*", metavar="PATH", help="workspace folders (default: .)")
    baseline.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write it (default: <workspace>/.promptls/baseline.json)",
    )
    _common(baseline)

    tokens = sub.add_parser(
        "tokens", help="count the tokens of files (of every prompt file in a folder)"
    )
    tokens.add_argument("files", nargs="+", metavar="PATH")
    _common(tokens)

    compress = sub.add_parser(
        "compress", help="compress the XML blocks of prompt files (verified, same meaning)"
    )
    compress.add_argument("paths", nargs="*", metavar="PATH", help="folders or files (default: .)")
    compress.add_argument(
        "--level",
        choices=("lossless", "whitespace"),
        default=None,
        help="lossless: same canonical XML; whitespace (default): same words",
    )
    compress.add_argument(
        "--remove-comments",
        action="store_true",
        help="also remove XML comments (they reach the model inside fences)",
    )
    mode = compress.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="report savings per file; exit 1 when anything is compressible (default)",
    )
    mode.add_argument("--write", action="store_true", help="write the files (atomically)")
    mode.add_argument("--diff", action="store_true", help="print a unified diff")
    compress.add_argument("--format", choices=("text", "json"), default="text")
    compress.add_argument(
        "--all",
        action="store_true",
        help="also the .md and .xml files of no prompt kind in the folders named (a framework's "
        "sources, say); without it they are counted and left out",
    )
    _common(compress)

    stats = sub.add_parser("stats", help="index a workspace and print its figures and the cache's")
    stats.add_argument("paths", nargs="*", metavar="PATH", help="workspace folders (default: .)")
    stats.add_argument("--format", choices=("text", "json"), default="text")
    _common(stats)

    serve = sub.add_parser("serve", help="run the language server (stdio by default)")
    transport = serve.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="speak LSP on stdin/stdout")
    transport.add_argument("--tcp", action="store_true", help="listen on --host:--port")
    transport.add_argument("--ws", action="store_true", help="WebSocket on --host:--port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=2087)
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes parsing files while the workspace is indexed (default: one per "
        "core but one, at most 8; 0: none)",
    )

    graph = sub.add_parser("graph", help="print the load tree of a file with each file's tokens")
    graph.add_argument("file", metavar="FILE")
    _common(graph)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", metavar="DIR", help="the workspace folder (default: found from the paths)"
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=0,
        help="threads for counting, processes for compressing (default: one per core; at most "
        "8 processes)",
    )


# Worker processes by default at most: each holds its own copy of the documents it compresses.
_MAX_DEFAULT_PROCESSES = 8


def _processes(args: argparse.Namespace) -> int:
    """Worker processes for the compressions: `--jobs`, or one per core this process may run
    on, at most 8."""
    if args.jobs:
        return int(args.jobs)
    return _default_processes()


def _default_processes() -> int:
    """One worker process per core this process may run on, at most 8."""
    return min(_cores(), _MAX_DEFAULT_PROCESSES)


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # (not on every platform)
        return os.cpu_count() or 1


def _workspace_root(path: Path) -> Path:
    """The folder a file belongs to: the nearest ancestor holding `.claude` or `.git`."""
    start = path if path.is_dir() else path.parent
    for folder in (start, *start.parents):
        if (folder / ".claude").is_dir() or (folder / ".git").exists():
            return folder
    return start


def _indexed_inside(index: WorkspaceIndex, folder: str) -> list[str]:
    """The indexed files below `folder` (a real path), sorted."""
    prefix = folder.rstrip(os.sep) + os.sep
    return sorted(p for p in index.files if p.startswith(prefix))


def _open_index(
    paths: Sequence[str], root: str | None, jobs: int, processes: int = 1
) -> tuple[WorkspaceIndex, set[str] | None, Settings]:
    """The indexed workspace of `paths`; with `processes` > 1, compressions are computed on
    that many worker processes while it is indexed (for the commands that report them)."""
    targets = [Path(p) for p in (paths or ["."])]
    for target in targets:
        if not target.exists():
            raise UsageError(f"{target}: no such file or folder")
    folders: list[Path]
    if root is not None:
        if not Path(root).is_dir():
            raise UsageError(f"--root {root}: not a folder")
        folders = [Path(root)]
    else:
        # A file or a folder inside a framework belongs to the framework (the nearest folder
        # holding `.claude` or `.git`): its references resolve there, as Claude Code's do.
        folders = []
        for target in targets:
            folder = _workspace_root(target.resolve())
            if folder.resolve() not in [f.resolve() for f in folders]:
                folders.append(folder)
    roots = {os.path.realpath(f) for f in folders}
    files = {os.path.realpath(t) for t in targets if t.is_file()}
    # What is reported: everything, unless only files, or folders inside a framework, are named.
    within = [os.path.realpath(t) for t in targets if t.is_dir()]
    whole = any(d in roots for d in within)
    settings = load_settings(folders[0])
    for problem in settings.problems:
        print(f"promptls: settings: {problem}", file=sys.stderr)
    try:
        workspace = Workspace(folders, settings.kinds, settings.exclude)
        index = WorkspaceIndex(workspace, settings)
    except EncodingUnavailable as exc:
        raise UsageError(str(exc)) from None
    # Files named alone are reported alone: workers compressing the whole workspace while it is
    # indexed would only compete with the index (those files are compressed when reported).
    index.index(threads=jobs or None, processes=processes if within else 1)
    only: set[str] | None = None
    if not whole:
        missing = [p for p in sorted(files) if index.get(p) is None]
        if missing:
            index.analyse_many(missing, threads=jobs or None)
        only = set(files)
        for named in within:
            only.update(_indexed_inside(index, named))
    return index, only, settings


_SOURCE_SUFFIXES = (".md", ".markdown", ".xml")


def _unkinded_sources(index: WorkspaceIndex, paths: Sequence[str]) -> list[str]:
    """The .md and .xml files the scan found in the folders named (or the workspace, when none
    is) that no kind takes, and so were not indexed (sorted)."""
    workspace = index.workspace
    named = [os.path.realpath(p) for p in (paths or ["."]) if os.path.isdir(p)]
    prefixes = tuple(folder.rstrip(os.sep) + os.sep for folder in named)
    return sorted(
        path
        for path in workspace.known_files()
        if path.startswith(prefixes)
        and path.lower().endswith(_SOURCE_SUFFIXES)
        and path not in index.files
        and workspace.kind(path) == "other"
        and not workspace.excluded(path)
    )


def _say_unkinded(
    index: WorkspaceIndex,
    paths: Sequence[str],
    what: str,
    others: Sequence[str] | None = None,
    option: str | None = None,
) -> None:
    """Tell (on stderr) that the folders named hold .md or .xml files of no prompt kind, and
    how to take them, when they do: a framework's own sources are often where no kind looks."""
    others = _unkinded_sources(index, paths) if others is None else others
    if not others:
        return
    ways = "name them, or map them in [kinds]" + (f", or pass {option}" if option else "")
    print(
        f"promptls: {len(others)} .md/.xml file(s) in the folders named are of no prompt kind "
        f"(by the [kinds] globs of .promptls.toml); {what}: {ways}",
        file=sys.stderr,
    )


def _holding_xml(index: WorkspaceIndex, paths: Sequence[str]) -> int:
    """How many of `paths` hold an XML block (parsed here, not indexed)."""
    from promptls.analysis.document import is_xml_path, parse_document
    from promptls.analysis.text import over_utf8_size

    holding = 0
    for path in paths:
        try:
            text = index.workspace.read_text(path)
        except (OSError, ValueError):  # (outside the workspace, gone, not UTF-8)
            continue
        if over_utf8_size(text, index.settings.max_file_bytes):
            continue  # (never parsed: nothing to compress)
        if "<" in text and parse_document(text, "other", xml_file=is_xml_path(path)).regions:
            holding += 1
    return holding


def _display(index: WorkspaceIndex) -> object:
    workspace = index.workspace
    if len(workspace.folders) == 1:
        return workspace.relative
    names = {f: os.path.basename(f) for f in workspace.folders}

    def show(path: str) -> str:
        folder = workspace.folder_of(path)
        rel = workspace.relative(path)
        return f"{names[folder]}/{rel}" if folder else rel

    return show


def _read_baseline(name: str) -> Baseline:
    from promptls.report import BaselineError, loads_baseline

    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise UsageError(f"--baseline {name}: {exc.strerror or exc}") from None
    try:
        return loads_baseline(text, name)
    except BaselineError as exc:
        raise UsageError(f"--baseline {name}: {exc}") from None


def _check_encoding(baseline: Baseline, settings: Settings) -> None:
    if baseline.encoding != settings.encoding:
        print(
            f"promptls: baseline {baseline.source}: counted with {baseline.encoding}, now "
            f"{settings.encoding}: the changes compare different tokenizers",
            file=sys.stderr,
        )


def cmd_check(args: argparse.Namespace) -> int:
    """`promptls check`."""
    from promptls.report import DEFAULT_MAX_GROWTH, parse_growth

    baseline: Baseline | None = None
    max_growth = DEFAULT_MAX_GROWTH
    if args.max_growth is not None:
        if args.baseline is None:
            raise UsageError("--max-growth needs --baseline FILE")
        try:
            max_growth = parse_growth(args.max_growth)
        except ValueError as exc:
            raise UsageError(f"--max-growth: {exc}") from None
    if args.baseline is not None:
        baseline = _read_baseline(args.baseline)
    index, only, settings = _open_index(args.paths, args.root, args.jobs, _processes(args))
    encoding = PositionEncoding(args.position_encoding)
    if args.format == "sarif" and encoding is PositionEncoding.UTF8:
        encoding = PositionEncoding.UTF16
    display = _display(index)
    reports = build_reports(index, encoding, only, display, _processes(args))
    if baseline is not None:
        from promptls.report import regression_findings, with_findings

        _check_encoding(baseline, settings)
        assert callable(display)
        extra = regression_findings(index, reports, baseline, max_growth, display)
        reports = with_findings(reports, extra, index, encoding)
    errors = {index.workspace.relative(p): m for p, m in index.errors.items()}
    if args.format == "json":
        out = render_json(reports, settings.encoding, encoding, errors)
    elif args.format == "sarif":
        out = render_sarif(reports, encoding)
    else:
        out = render_text(reports, errors)
    sys.stdout.write(out)
    if not reports and not errors:
        _say_unkinded(index, args.paths, "no prompt files were found")
    fail_at = Severity.parse(args.fail_on)
    counts = severity_counts(reports)
    failed = any(counts[s] for s in Severity if s <= fail_at) or bool(errors)
    return 1 if failed else 0


def cmd_tokens(args: argparse.Namespace) -> int:
    """`promptls tokens PATH...`: raw tokens, loaded tokens and kind of each file (of each
    prompt file inside a folder)."""
    index, _, settings = _open_index(args.files, args.root, args.jobs)
    total_raw = total = 0
    rows: list[tuple[str, str, int, int]] = []
    for name in args.files:
        real = os.path.realpath(name)
        if os.path.isdir(real):
            found = [
                (os.path.join(name, os.path.relpath(p, real)), index.files[p])
                for p in _indexed_inside(index, real)
            ]
        else:
            fa = index.get(real)
            if fa is None:
                raise UsageError(f"{name}: {index.errors.get(real, 'could not be read')}")
            found = [(name, fa)]
        for shown, fa in found:
            rows.append((shown, fa.kind, fa.raw_tokens, fa.tokens))
            total_raw += fa.raw_tokens
            total += fa.tokens
    if not rows:
        raise UsageError(f"no prompt files in {', '.join(args.files)}")
    width = max(len(r[0]) for r in rows)
    print(f"{'file':<{width}}  {'kind':<14} {'raw':>9} {'loaded':>9}")
    for name, kind, raw, tokens in rows:
        print(f"{name:<{width}}  {kind:<14} {raw:>9,} {tokens:>9,}")
    if len(rows) > 1:
        print(f"{'total':<{width}}  {'':<14} {total_raw:>9,} {total:>9,}")
    print(f"({settings.encoding}, calibration {settings.calibration:g})", file=sys.stderr)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    """`promptls graph FILE`: the load tree."""
    if os.path.isdir(args.file):
        raise UsageError(f"{args.file}: a folder; graph shows the load tree of one file")
    index, _, settings = _open_index([args.file], args.root, args.jobs)
    path = os.path.realpath(args.file)
    if index.get(path) is None:
        raise UsageError(f"{args.file}: {index.errors.get(path, 'could not be read')}")
    tree = load_tree(index, path)
    load_set = index.load_set(path)
    rel = index.workspace.relative
    print(
        f"{rel(path)}  (loads {len(load_set.files)} files, ≈{index.load_tokens(path):,} tokens; "
        f"load budget {settings.load_budget:,})"
    )
    print("\n".join(tree_lines(tree, rel)))
    for source, ref, depth in load_set.cut:
        print(f"  not loaded: @{ref.target} in {rel(source)} (import hop {depth})")
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    """`promptls compress`: verified XML compression, reported, diffed or written."""
    import difflib
    import json

    from promptls.analysis.compress import Level, apply_edits, compress_documents
    from promptls.analysis.document import parse_document
    from promptls.analysis.text import LineIndex
    from promptls.fileio import ChangedOnDisk, atomic_write, read_snapshot

    index, only, settings = _open_index(args.paths, args.root, args.jobs)
    others = _unkinded_sources(index, args.paths)
    if others and args.all:
        index.analyse_many(others, threads=args.jobs or None)
        if only is not None:
            only.update(others)
    elif others:
        holding = _holding_xml(index, others)
        if holding:
            _say_unkinded(
                index, args.paths, f"{holding} of them hold XML blocks, left out", others, "--all"
            )
    level: Level = args.level or (
        "lossless" if settings.compression.level == "lossless" else "whitespace"
    )
    remove_comments = args.remove_comments or settings.compression.remove_comments
    show = _display(index)
    assert callable(show)
    regions: list[dict[str, object]] = []
    totals = [0, 0]
    changed_files = 0
    problems: list[str] = []
    out: list[str] = []
    seen: set[str] = set()
    files: list[tuple[str, str, Snapshot, Document]] = []
    for path in sorted(index.files):
        if only is not None and path not in only:
            continue
        fa = index.files[path]
        if fa.doc.reduced or not fa.doc.regions:
            continue
        # A symlink is written through to its target, which must be inside the workspace; a
        # file reached by its own path and through a link is compressed once.
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        if not index.workspace.contains(real):
            problems.append(f"{show(path)}: a link to {real}, outside the workspace; left alone")
            continue
        try:
            data, snapshot = read_snapshot(real)
        except OSError as exc:
            problems.append(f"{show(path)}: {exc}")
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{show(path)}: not valid UTF-8; left untouched")
            continue
        # What the index parsed, unless the file changed since (what is written is this text).
        doc = (
            fa.doc
            if fa.doc.text == text
            else parse_document(text, fa.kind, xml_file=fa.doc.xml_file)
        )
        files.append((path, text, snapshot, doc))
    compressed = compress_documents(
        [doc for _, _, _, doc in files],
        index.counter,
        level=level,
        remove_comments=remove_comments,
        processes=_processes(args),
    )
    for (path, text, snapshot, _), edits in zip(files, compressed, strict=True):
        if not edits:
            continue
        changed_files += 1
        lines = LineIndex(text)
        before = sum(e.compressed.tokens_before for e in edits)
        after = sum(e.compressed.tokens_after for e in edits)
        totals[0] += before
        totals[1] += after
        for e in edits:
            r = lines.range(e.start, e.end)
            regions.append(
                {
                    "path": show(path),
                    "element": e.element,
                    "range": {
                        "start": {"line": r.start.line, "character": r.start.character},
                        "end": {"line": r.end.line, "character": r.end.character},
                    },
                    "tokensBefore": e.compressed.tokens_before,
                    "tokensAfter": e.compressed.tokens_after,
                    "level": e.compressed.level,
                    "restructured": e.compressed.restructured,
                }
            )
        new_text = apply_edits(text, edits)
        if args.diff:
            out.extend(
                difflib.unified_diff(
                    text.splitlines(keepends=True),
                    new_text.splitlines(keepends=True),
                    fromfile=f"a/{show(path)}",
                    tofile=f"b/{show(path)}",
                )
            )
        elif args.write:
            try:
                atomic_write(snapshot, new_text.encode("utf-8"))
            except (ChangedOnDisk, OSError) as exc:
                problems.append(str(exc))
                continue
        if args.format == "text" and not args.diff:
            verb = "compressed" if args.write else "compressible"
            out.append(
                f"{show(path)}: {verb}: {len(edits)} block(s), -{before - after:,} tokens "
                f"({before:,} -> {after:,}, -{(before - after) * 100 / max(1, before):.0f}%)\n"
            )
    for problem in problems:
        print(f"promptls: {problem}", file=sys.stderr)
    saved = totals[0] - totals[1]
    if args.format == "json":
        payload = {
            "level": level,
            "removeComments": remove_comments,
            "regions": regions,
            "summary": {
                "files": changed_files,
                "tokensBefore": totals[0],
                "tokensAfter": totals[1],
            },
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write("".join(out))
        if not args.diff:
            print(
                f"{changed_files} file(s), {len(regions)} block(s): -{saved:,} tokens "
                f"({level} level{', comments removed' if remove_comments else ''})"
            )
    if problems and args.write:
        return 2
    return 1 if regions and not args.write else 0


def cmd_stats(args: argparse.Namespace) -> int:
    """`promptls stats`: index, compute every file's load cost through the cache, print figures."""
    import json
    import time

    started = time.perf_counter()
    index, _, settings = _open_index(args.paths, args.root, args.jobs)
    indexed = time.perf_counter() - started
    files = list(index.files)
    for path in files:
        index.cost(path, "root")
    cache = index.costs.stats()
    payload = {
        "files": len(files),
        "tokens": sum(fa.tokens for fa in index.files.values()),
        "rawTokens": sum(fa.raw_tokens for fa in index.files.values()),
        "errors": len(index.errors),
        "indexingSeconds": round(indexed, 3),
        "encoding": settings.encoding,
        "cache": cache.as_json(),
    }
    if args.format == "json":
        print(json.dumps(payload, indent=2))
        return 0
    print(f"files        {payload['files']:>12,}")
    raw = payload["rawTokens"]
    print(f"tokens       {payload['tokens']:>12,}  (raw {raw:,}, {settings.encoding})")
    print(f"indexed in   {indexed:>12.3f} s")
    print(
        f"cache        {cache.entries:>12,} entries, {cache.bytes:,} bytes "
        f"(max {cache.max_entries:,} entries, {cache.max_bytes:,} bytes)"
    )
    print(
        f"             {cache.hits:>12,} hits, {cache.misses:,} misses, "
        f"{cache.evictions:,} evictions, hit rate {cache.hit_rate:.1%}"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """`promptls report`: the budget dashboard (HTML), or its model (JSON), or a markdown table."""
    from promptls.dashboard import render_html
    from promptls.report import build_report, render_json, render_markdown

    if args.top < 1:
        raise UsageError("--top must be at least 1")
    baseline = _read_baseline(args.baseline) if args.baseline is not None else None
    index, _, settings = _open_index(args.paths, args.root, args.jobs, _processes(args))
    if baseline is not None:
        _check_encoding(baseline, settings)
    display = _display(index)
    assert callable(display)
    report = build_report(
        index, baseline=baseline, display=display, top=args.top, processes=_processes(args)
    )
    if args.html is not None:
        out = Path(args.html)
        base = out.resolve().parent
        base.mkdir(parents=True, exist_ok=True)
        _write_text(out, render_html(report, link_base=str(base)))
        print(f"promptls: wrote {out}", file=sys.stderr)
    fmt = args.format or (None if args.html is not None else "markdown")
    if fmt == "json":
        sys.stdout.write(render_json(report))
    elif fmt == "html":
        sys.stdout.write(render_html(report, link_base=os.getcwd()))
    elif fmt == "markdown":
        sys.stdout.write(render_markdown(report))
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    """`promptls baseline`: record tokens and load costs for `check --baseline`."""
    from promptls.report import DEFAULT_BASELINE, baseline_of, build_report

    index, _, _settings = _open_index(args.paths, args.root, args.jobs, _processes(args))
    display = _display(index)
    assert callable(display)
    report = build_report(index, display=display, processes=_processes(args))
    baseline = baseline_of(report)
    out = Path(args.output) if args.output else Path(index.workspace.folders[0]) / DEFAULT_BASELINE
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_text(out, baseline.dumps())
    print(
        f"promptls: wrote {out}: {len(baseline.files)} files, {len(baseline.entries)} entry "
        f"files ({baseline.encoding})",
        file=sys.stderr,
    )
    return 0


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder, then rename (never half a file)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.resolve().parent)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # as open() would create it (mkstemp makes it 0600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def cmd_serve(args: argparse.Namespace) -> int:
    """`promptls serve`: the language server."""
    import importlib.util

    from promptls.lsp.server import serve

    transport = "tcp" if args.tcp else "ws" if args.ws else "stdio"
    if transport == "ws" and importlib.util.find_spec("websockets") is None:
        print(
            "promptls: serve --ws needs the websockets package: pip install 'promptls[ws]'",
            file=sys.stderr,
        )
        return 2
    if transport != "stdio" and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"promptls: warning: listening on {args.host}: whoever connects can have the server "
            "read any folder you can (no authentication; see SECURITY.md)",
            file=sys.stderr,
        )
    # One core is left to the server's own threads (reading, counting, resolving): on two
    # cores, one worker indexes faster than two (measured: benchmarks/README.md).
    workers = _cores() - 1 if args.workers is None else args.workers
    workers = max(0, min(workers, _MAX_DEFAULT_PROCESSES))
    return serve(transport, args.host, args.port, workers)


COMMANDS = {
    "check": cmd_check,
    "tokens": cmd_tokens,
    "graph": cmd_graph,
    "stats": cmd_stats,
    "compress": cmd_compress,
    "report": cmd_report,
    "baseline": cmd_baseline,
    "serve": cmd_serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:
        arguments = ["serve"]  # `python -m promptls` with no arguments: the language server
    args = parser.parse_args(arguments)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"promptls: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`promptls check | head`): stop quietly, as a program killed by
        # SIGPIPE would, with nothing left in stdout's buffer to fail again at exit.
        with contextlib.suppress(OSError, ValueError):  # (a stdout that is not a file)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 141
    except OSError as exc:
        print(f"promptls: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
