"""Workspace confinement: references and imports that point outside the workspace (`../..`,
absolute paths, `~/`, percent-encoded dots, symlinks out, symlinked folders, symlink loops, a
device behind a symlink, a FIFO, a socket) are reported as `outside-workspace`, never opened.

The proof is from outside the process: `promptls check` runs under an audit hook that records
every path opened (`open` events cover `open()`, `io.open` and `os.open`), and, when strace is
installed, under `strace -f -e trace=open,openat` too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptls.analysis.graph import WorkspaceIndex
from promptls.analysis.workspace import OutsideWorkspace, Status, Workspace
from promptls.config import MAX_PROJECT_FILE_BYTES, Settings, read_project_file
from tests.fuzzing import FUZZING

SECRET = "PROMPTLS-OUTSIDE-SECRET"


class Layout:
    """A workspace `ws` next to an `outside` folder, with every way out there is."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.ws = base / "ws"
        self.outside = base / "outside"
        self.home = base / "home"
        self.special: list[Path] = []


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[Layout]:
    lay = Layout(tmp_path.resolve())
    ws, outside, home = lay.ws, lay.outside, lay.home
    for folder in (ws / ".claude" / "commands", ws / ".claude" / "modules", outside, home):
        folder.mkdir(parents=True)
    (outside / "secret.md").write_text(f"# {SECRET}\n@also.md\n")
    (outside / "also.md").write_text(f"{SECRET}\n")
    (outside / "cmd.md").write_text(f"{SECRET}\n")
    (home / "secret.md").write_text(f"{SECRET}\n")
    mods = ws / ".claude" / "modules"
    (mods / "inside.md").write_text("# Inside\nA module inside the workspace.\n")
    os.symlink(outside / "secret.md", mods / "out.md")
    os.symlink(outside, mods / "outdir")
    os.symlink("../modules/inside.md", ws / ".claude" / "commands" / "alias.md")
    os.symlink(mods / "loop-b.md", mods / "loop-a.md")
    os.symlink(mods / "loop-a.md", mods / "loop-b.md")
    os.symlink(mods / "self.md", mods / "self.md")
    os.symlink("/dev/zero", mods / "zero.md")
    os.symlink(outside, ws / ".claude" / "commands" / "external")
    os.symlink(outside / "secret.md", ws / ".claude" / "commands" / "evil.md")
    os.mkfifo(mods / "fifo.md")
    lay.special.append(mods / "fifo.md")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(mods / "sock.md"))
        lay.special.append(mods / "sock.md")
    except OSError:
        pass
    (ws / ".promptls.toml").write_text('searchRoots = [".claude", "../outside", "/"]\n')
    (ws / "CLAUDE.md").write_text(
        textwrap.dedent(
            """\
            # Memory

            @../outside/secret.md
            @../../outside/secret.md
            @OUTSIDE/secret.md
            @~/secret.md
            @.claude/modules/out.md
            @.claude/modules/outdir/secret.md
            @.claude/modules/loop-a.md
            @.claude/modules/self.md
            @.claude/modules/zero.md
            @.claude/modules/fifo.md
            @.claude/modules/sock.md
            @.claude/modules/inside.md
            @.claude/commands/alias.md

            See [the secret](../outside/secret.md), [encoded](%2e%2e/outside/secret.md),
            [absolute](OUTSIDE/secret.md), [zero](.claude/modules/zero.md) and
            [home](~/secret.md).

            <delegation target="../../outside/secret.md"/>
            <uses_pattern from="OUTSIDE/secret.md"/>
            <module>../../../outside/secret.md - why</module>
            <include module="OUTSIDE/secret.md"/>
            <depends_on>
            ../outside/also.md
            </depends_on>

            components/../../outside/secret.md
            """
        ).replace("OUTSIDE", str(outside))
    )
    yield lay
    sock.close()


FORBIDDEN_NAMES = ("secret.md", "also.md", "cmd.md", "zero.md", "fifo.md", "sock.md", "loop-")


def _forbidden(path: str, lay: Layout) -> bool:
    """Whether opening `path` would break confinement."""
    real = os.path.realpath(path)
    if real.startswith((str(lay.outside), str(lay.home))) or real == "/dev/zero":
        return True
    if any(os.path.samefile(real, s) for s in lay.special if os.path.exists(real)):
        return True
    return path.startswith(str(lay.ws)) and any(n in path for n in FORBIDDEN_NAMES)


# ---------------------------------------------------------------------------------------------
# In process
# ---------------------------------------------------------------------------------------------


def test_statuses(layout: Layout) -> None:
    ws = Workspace([layout.ws], Settings().kinds)
    mods = str(layout.ws / ".claude" / "modules")
    expected = {
        "out.md": Status.OUTSIDE,
        "outdir/secret.md": Status.OUTSIDE,
        "loop-a.md": Status.LOOP,
        "self.md": Status.LOOP,
        "zero.md": Status.OUTSIDE,
        "fifo.md": Status.SPECIAL,
        "inside.md": Status.FILE,
    }
    if any(p.name == "sock.md" for p in layout.special):
        expected["sock.md"] = Status.SPECIAL
    for name, status in expected.items():
        assert ws.status(os.path.join(mods, name)) is status, name
        if status is not Status.FILE:
            with pytest.raises(OutsideWorkspace):
                ws.read_bytes(os.path.join(mods, name))
    assert ws.status(str(layout.outside / "secret.md")) is Status.OUTSIDE
    assert ws.status(str(layout.ws / ".." / "outside")) is Status.OUTSIDE
    assert ws.status(str(layout.ws) + "/a\x00b.md") is Status.MISSING


def test_every_way_out_is_reported(layout: Layout) -> None:
    settings = Settings(search_roots=[".claude", "../outside", "/"])
    index = WorkspaceIndex(Workspace([layout.ws], settings.kinds), settings)
    index.index(threads=1)
    assert not any(p.startswith(str(layout.outside)) for p in index.files)
    memory = str(layout.ws / "CLAUDE.md")
    fa = index.get(memory)
    assert fa is not None
    by_target = {r.ref.target: r for r in fa.resolutions}
    for target, res in by_target.items():
        if "inside" in target or "alias" in target:
            assert res.status == "resolved", target
            continue
        assert res.status in ("outside", "loop", "special", "unresolved"), (target, res.status)
        assert res.status != "unresolved" or not os.path.exists(str(res.path)), target
    findings = index.findings(memory)
    outside = [f for f in findings if f.code == "outside-workspace"]
    lines = {fa.doc.text.count("\n", 0, f.start) for f in outside}
    # Every line with a reference leading out (or to a loop or a special file) is reported.
    ways_out = ["secret", "also.md", "zero.md", "fifo.md", "loop-a.md", "self.md"]
    if any(p.name == "sock.md" for p in layout.special):
        ways_out.append("sock.md")
    for i, line in enumerate(fa.doc.text.splitlines()):
        if any(w in line for w in ways_out):
            assert i in lines, f"line {i + 1} not reported: {line}"
    for f in outside:
        assert SECRET not in f.message
    load_set = index.load_set(memory).files
    assert all(p.startswith(str(layout.ws)) for p in load_set)
    assert str(layout.ws / ".claude" / "modules" / "inside.md") in load_set
    allowed = {
        memory,
        *(str(layout.ws / ".claude" / n) for n in ("modules/inside.md", "commands/alias.md")),
    }
    assert set(load_set) <= allowed, load_set


# ---------------------------------------------------------------------------------------------
# From outside the process
# ---------------------------------------------------------------------------------------------

_HOOK = """
import atexit, os, sys
_log = sys.argv.pop(1)
_seen = []
_busy = [False]
def _hook(event, args):
    if _busy[0] or event not in ("open", "os.listdir", "os.scandir"):
        return
    _busy[0] = True
    try:
        target = args[0] if args else None
        if isinstance(target, bytes):
            target = os.fsdecode(target)
        if isinstance(target, (str, os.PathLike)):
            _seen.append(event + "\\t" + os.fspath(target))
    finally:
        _busy[0] = False
def _dump():
    _busy[0] = True
    with open(_log, "w", encoding="utf-8", errors="surrogateescape") as out:
        out.write("\\n".join(_seen))
sys.addaudithook(_hook)
atexit.register(_dump)
from promptls.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def _check(
    layout: Layout, args: list[str], tmp_path: Path, strace: bool
) -> tuple[subprocess.CompletedProcess[str], list[str], str]:
    audit = tmp_path / "audit.log"
    trace = tmp_path / "strace.log"
    command = [sys.executable, "-c", _HOOK, str(audit), *args]
    if strace:
        command = ["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(trace), *command]
    env = {**os.environ, "HOME": str(layout.home)}
    done = subprocess.run(
        command, cwd=layout.ws, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    opened = [line.split("\t", 1)[1] for line in audit.read_text().splitlines() if "\t" in line]
    return done, opened, trace.read_text(errors="replace") if strace else ""


def _strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(
        ["strace", "-qq", "-o", os.devnull, "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.parametrize("traced", [False, True], ids=["audit-hook", "audit-hook+strace"])
def test_check_never_opens_anything_outside(layout: Layout, tmp_path: Path, traced: bool) -> None:
    if traced and not _strace_works():
        pytest.skip("strace is not available (or not allowed here)")
    done, opened, trace = _check(layout, ["check", ".", "--format", "json"], tmp_path, traced)
    assert done.returncode in (0, 1), done.stderr
    assert SECRET not in done.stdout and SECRET not in done.stderr
    report = json.loads(done.stdout)
    paths = {f["path"] for f in report["files"]}
    assert "CLAUDE.md" in paths and not any("secret" in p or "external" in p for p in paths)
    memory = next(f for f in report["files"] if f["path"] == "CLAUDE.md")
    codes = [d["code"] for d in memory["diagnostics"]]
    assert codes.count("outside-workspace") >= 15, codes
    assert opened, "the audit hook saw nothing: is it installed?"
    assert any(p.endswith("CLAUDE.md") for p in opened), "the workspace was not read?"
    bad = [p for p in opened if _forbidden(p, layout)]
    assert not bad, f"opened outside the workspace: {bad}"
    if traced:
        assert "CLAUDE.md" in trace, "strace saw nothing"
        for line in trace.splitlines():
            if "open" not in line or "ENOENT" in line:
                continue
            quoted = line.split('"')
            path = quoted[1] if len(quoted) > 2 else ""
            assert not (path and _forbidden(path, layout)), line


def test_naming_a_symlink_out_on_the_command_line(layout: Layout, tmp_path: Path) -> None:
    evil = ".claude/commands/evil.md"
    done, opened, _ = _check(layout, ["check", evil, "--root", "."], tmp_path, False)
    assert done.returncode in (1, 2), done.stdout
    assert SECRET not in done.stdout + done.stderr
    bad = [p for p in opened if _forbidden(p, layout)]
    assert not bad, bad


def test_special_files_are_never_read(layout: Layout) -> None:
    """Reading a FIFO would block forever; `read_bytes` refuses without opening it."""
    ws = Workspace([layout.ws], Settings().kinds)
    for path in layout.special:
        assert stat.S_ISFIFO(os.stat(path).st_mode) or stat.S_ISSOCK(os.stat(path).st_mode)
        with pytest.raises(OutsideWorkspace):
            ws.read_bytes(str(path))
    assert str(layout.special[0]) not in ws.scan()


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_a_hostile_promptls_toml_is_never_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.toml"
    outside.write_text(f"# {SECRET}\nloadBudget = 1\n")
    runs = {}
    # A FIFO blocks until the timeout: under `make fuzz` only.
    for name in ("zero", "outside", *(["fifo"] if FUZZING else [])):
        ws = tmp_path / name
        ws.mkdir()
        (ws / "CLAUDE.md").write_text("# Memory\n")
        config = ws / ".promptls.toml"
        if name == "zero":
            os.symlink("/dev/zero", config)
        elif name == "fifo":
            os.mkfifo(config)
        else:
            os.symlink(outside, config)
        audit = tmp_path / f"{name}.audit"
        runs[name] = (
            subprocess.Popen(
                [sys.executable, "-c", _HOOK, str(audit), "check", str(ws)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=_limit_memory,  # noqa: PLW1509
            ),
            audit,
        )
    problems = []
    for name, (proc, audit) in runs.items():
        try:
            _, err = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            problems.append(f"{name}: still running after 2 s")
            continue
        if proc.returncode not in (0, 1) or b"Traceback" in err:
            problems.append(f"{name}: exit code {proc.returncode}: {err[-300:]!r}")
        opened = [line.split("\t", 1)[-1] for line in audit.read_text().splitlines()]
        if any(os.path.realpath(p) in (str(outside), "/dev/zero") for p in opened):
            problems.append(f"{name}: opened outside the workspace")
    assert not problems, problems


def _make_config(ws: Path, outside: Path, form: str) -> None:
    config = ws / ".promptls.toml"
    if form == "zero":
        os.symlink("/dev/zero", config)
    elif form == "fifo":
        os.mkfifo(config)
    elif form == "outside":
        os.symlink(outside, config)
    elif form == "loop":
        os.symlink(".promptls.toml", config)
    elif form == "folder":
        config.mkdir()
    elif form == "huge":
        config.write_text("# " + "x" * MAX_PROJECT_FILE_BYTES + "\n")
    elif form == "latin1":
        config.write_bytes(b"# \xe9\nloadBudget = 1\n")
    elif form == "inside-link":
        (ws / "real.toml").write_text("loadBudget = 7\n")
        os.symlink("real.toml", config)


#: (form of `.promptls.toml`, the problem reported, None when it is read).
CONFIG_FILES: list[tuple[str, str | None]] = [
    ("zero", "a symlink out of the workspace; not read"),
    ("fifo", "not a regular file; not read"),
    ("outside", "a symlink out of the workspace; not read"),
    ("loop", "a symlink loop; not read"),
    ("folder", "a folder; not read"),
    ("huge", "over the 1,048,576 limit"),
    ("latin1", "can't decode byte 0xe9"),
    ("inside-link", None),
]


@pytest.mark.parametrize(("form", "problem"), CONFIG_FILES, ids=[c[0] for c in CONFIG_FILES])
def test_promptls_toml_is_read_like_a_workspace_file(
    tmp_path: Path, form: str, problem: str | None
) -> None:
    """Never blocks, never reads out of the workspace; says why it used the defaults."""
    outside = tmp_path / "outside.toml"
    outside.write_text("loadBudget = 1\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    _make_config(ws, outside, form)
    table, problems = read_project_file(ws)
    if problem is None:
        assert (table, problems) == ({"loadBudget": 7}, [])
    else:
        assert table == {}
        assert len(problems) == 1 and problem in problems[0], problems
        assert problems[0].startswith(".promptls.toml: ")
