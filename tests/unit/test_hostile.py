"""Hostile XML: DOCTYPEs, internal and external entities, billion laughs, XInclude, processing
instructions and schema locations, in ```xml fences, raw regions and `PROJECT_CONFIG.xml`.

None of it is ever resolved or fetched: a local TCP listener stands in for the network and must
see no connection, a secret file outside the workspace must never be opened (strace, when
installed) nor its content appear anywhere; every count is tiktoken's count of the literal text;
the DOCTYPE is an information, an entity reference an `xml-syntax` warning; `promptls compress`
copies all of it verbatim. Time and memory stay bounded (billion laughs included).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptls.analysis.compress import apply_edits, compress_document
from promptls.analysis.document import parse_document
from promptls.analysis.findings import Severity
from promptls.analysis.graph import WorkspaceIndex
from promptls.analysis.rules import xml_findings
from promptls.analysis.tokens import TokenCounter
from promptls.analysis.workspace import Workspace
from promptls.config import Settings

COUNTER = TokenCounter()
SECRET = "PROMPTLS-SECRET-7f3a9c"
EXPANDED = "EXPANDED-ENTITY-TEXT"


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file outside every workspace that nothing may read."""
    path = tmp_path_factory.mktemp("outside") / "secret.txt"
    path.write_text(SECRET + "\n")
    return path.resolve()


@pytest.fixture(scope="module")
def listener() -> Iterator[socket.socket]:
    """A local port standing in for the network: nothing may connect to it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


def assert_no_connection(sock: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        conn, _ = sock.accept()
        conn.close()


def payloads(secret: Path, port: int) -> dict[str, str]:
    """Hostile XML documents, by name (each a whole fragment with its root element `r`)."""
    url = f"http://127.0.0.1:{port}"
    lol = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    return {
        "internal-entity": f'<!DOCTYPE r [<!ENTITY e "{EXPANDED}">]>\n<r>&e; and &e;</r>',
        "external-entity-file": (
            f'<!DOCTYPE r [<!ENTITY e SYSTEM "file://{secret}">]>\n<r>&e;</r>'
        ),
        "external-entity-http": f'<!DOCTYPE r [<!ENTITY e SYSTEM "{url}/e">]>\n<r>&e;</r>',
        "parameter-entity": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]>\n<r>x</r>',
        "external-dtd": f'<!DOCTYPE r SYSTEM "{url}/r.dtd">\n<r>&nbsp;</r>',
        "public-dtd": f'<!DOCTYPE r PUBLIC "-//X//DTD X//EN" "file://{secret}">\n<r/>',
        "billion-laughs": "<!DOCTYPE r [\n" + "\n".join(lol) + "\n]>\n<r>&lol9;</r>",
        "quadratic-blowup": (
            f'<!DOCTYPE r [<!ENTITY a "{"x" * 20_000}">]>\n<r>{"&a;" * 2_000}</r>'
        ),
        "xinclude": (
            '<r xmlns:xi="http://www.w3.org/2001/XInclude">\n'
            f'  <xi:include href="{secret}" parse="text"/>\n'
            f'  <xi:include href="file://{secret}"/>\n'
            f'  <xi:include href="{url}/x.xml"/>\n'
            "</r>"
        ),
        "stylesheet-pi": f'<?xml-stylesheet type="text/xsl" href="{url}/s.xsl"?>\n<r>x</r>',
        "schema-location": (
            '<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
            f'   xsi:noNamespaceSchemaLocation="{url}/s.xsd">x</r>'
        ),
        "declaration-encoding": '<?xml version="1.0" encoding="UTF-16"?>\n<r>é</r>',
    }


PLACEMENTS = ("fence", "raw", "document")


def placed(xml: str, placement: str) -> tuple[str, str, str]:
    """(file text, kind, path relative to the workspace) of `xml` in one placement."""
    if placement == "fence":
        return f"# Hostile\n\n```xml\n{xml}\n```\n", "module", ".claude/modules/{name}.md"
    if placement == "raw":
        return f"# Hostile\n\n{xml}\n\nAfter.\n", "module", ".claude/system/{name}.md"
    return xml + "\n", "project-config", "configs/{name}/PROJECT_CONFIG.xml"


NAMES = list(payloads(Path("/x"), 1))


# ---------------------------------------------------------------------------------------------
# The core
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("name", NAMES)
def test_never_resolved_in_the_core(
    name: str, placement: str, secret: Path, listener: socket.socket
) -> None:
    xml = payloads(secret, listener.getsockname()[1])[name]
    text, kind, _ = placed(xml, placement)
    tracemalloc.start()
    started = time.perf_counter()
    doc = parse_document(text, kind)
    found = list(xml_findings(doc))
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 30_000_000, f"{peak:,} bytes"
    assert doc.regions, "the XML is a region"
    for f in found:
        assert f.code == "xml-syntax"
        assert SECRET not in f.message and EXPANDED not in f.message
        assert 0 <= f.start <= f.end <= len(text)
    kinds = {dict(f.data).get("kind") for f in found}
    region_text = "".join(text[r.start : r.end] for r in doc.regions)
    if "<!DOCTYPE" in region_text:
        doctype = [f for f in found if dict(f.data).get("kind") == "doctype"]
        assert doctype and all(f.severity == Severity.INFORMATION for f in doctype)
    if re.search(r"&(e|a|lol9);", region_text) and "doctype" in kinds:
        undefined = [f for f in found if dict(f.data).get("kind") == "undefined-entity"]
        assert undefined and all(f.severity == Severity.WARNING for f in undefined)
    if "<?xml-stylesheet" in region_text:
        assert "processing-instruction" in kinds
    # Nothing was expanded: every element's content is the literal text between its tags.
    for region in doc.regions:
        for el in region.check.elements:
            assert el.end <= region.end - region.start


@pytest.mark.parametrize("name", NAMES)
def test_counts_are_of_the_literal_text(
    name: str, secret: Path, listener: socket.socket, tmp_path: Path
) -> None:
    xml = payloads(secret, listener.getsockname()[1])[name]
    files: dict[str, str] = {}
    for placement in PLACEMENTS:
        text, _, rel = placed(xml, placement)
        files[rel.format(name=name)] = text
    (tmp_path / ".claude").mkdir()
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    settings = Settings()
    index = WorkspaceIndex(
        Workspace([tmp_path], settings.kinds, settings.exclude), settings, COUNTER
    )
    index.index(threads=1)
    for rel, text in files.items():
        fa = index.get(str((tmp_path / rel).resolve()))
        assert fa is not None, rel
        assert fa.raw_tokens == COUNTER.count_exact(text), rel
        assert fa.tokens == COUNTER.count_exact(text), rel
        for f in index.findings(fa.path):
            assert SECRET not in f.message and EXPANDED not in f.message
    assert_no_connection(listener)


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("name", NAMES)
def test_compression_copies_it_verbatim(
    name: str, placement: str, secret: Path, listener: socket.socket
) -> None:
    xml = payloads(secret, listener.getsockname()[1])[name]
    text, kind, _ = placed(xml.replace("<r>", "<r>\n    <pad>  a  </pad>\n    ", 1), placement)
    for remove_comments in (False, True):
        doc = parse_document(text, kind)
        edits = compress_document(doc, COUNTER, remove_comments=remove_comments)
        out = apply_edits(text, edits)
        assert SECRET not in out
        assert out.count(EXPANDED) == text.count(EXPANDED)
        for literal in ("<!DOCTYPE", "<!ENTITY", "&e;", "&a;", "&lol9;", "xi:include", "<?xml"):
            assert out.count(literal) == text.count(literal), literal
        assert len(out) <= len(text)
    assert_no_connection(listener)


def test_yaml_alias_bomb_in_frontmatter() -> None:
    """The YAML counterpart of billion laughs: aliases are shared, never expanded."""
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 9)}]" for i in range(1, 10)]
    text = "---\nname: bomb\n" + "\n".join(levels) + "\ndescription: *a9\n---\n# Body\n"
    tracemalloc.start()
    started = time.perf_counter()
    doc = parse_document(text, "agent")
    from promptls.analysis.outline import describe
    from promptls.analysis.rules import frontmatter_findings

    found = list(frontmatter_findings(doc, "/ws/.claude/agents/bomb.md"))
    describe(doc)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 30_000_000
    assert any("`description` must be text" in f.message for f in found)


# ---------------------------------------------------------------------------------------------
# The command line, watched from outside
# ---------------------------------------------------------------------------------------------


def _limits() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def _run(args: list[str], cwd: Path, trace: Path | None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "promptls", *args]
    if trace is not None:
        command = ["strace", "-f", "-qq", "-e", "trace=%file,connect", "-o", str(trace), *command]
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_limits,
    )


def _strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(
        ["strace", "-qq", "-o", os.devnull, "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


def test_check_and_compress_never_fetch_or_expand(
    secret: Path, listener: socket.socket, tmp_path: Path
) -> None:
    """Under strace when it is installed (else the listener and the outputs are the proof)."""
    traced = _strace_works()
    port = listener.getsockname()[1]
    root = tmp_path / "ws"
    (root / ".claude" / "commands").mkdir(parents=True)
    files: dict[Path, str] = {}
    loads = []
    for name, xml in payloads(secret, port).items():
        for placement in PLACEMENTS:
            text, _, rel = placed(
                xml.replace("<r>", "<r>\n    <pad>  a  </pad>\n    ", 1), placement
            )
            path = root / rel.format(name=name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            files[path] = text
            if placement != "document":
                loads.append(f"@{path.relative_to(root).as_posix()}")
    (root / ".claude" / "commands" / "all.md").write_text("# All\n\n" + "\n".join(loads) + "\n")
    trace = tmp_path / "strace.log" if traced else None

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    checked = _run(["check", ".", "--format", "json"], root, trace)
    assert checked.returncode in (0, 1), checked.stderr
    report = json.loads(checked.stdout)
    assert SECRET not in checked.stdout
    assert EXPANDED not in checked.stdout
    by_path = {f["path"]: f for f in report["files"]}
    for path, text in files.items():
        entry = by_path[path.relative_to(root).as_posix()]
        assert entry["rawTokens"] == COUNTER.count_exact(text), path
    if trace is not None:
        _assert_trace_clean(trace, secret, port)

    compressed = _run(["compress", ".", "--write"], root, None)
    assert compressed.returncode in (0, 1), compressed.stderr
    assert SECRET not in compressed.stdout
    for path, text in files.items():
        out = path.read_text(encoding="utf-8")
        assert SECRET not in out
        assert out.count(EXPANDED) == text.count(EXPANDED)
        for literal in ("<!DOCTYPE", "<!ENTITY", "&e;", "&a;", "&lol9;", "xi:include", "<?xml"):
            assert out.count(literal) == text.count(literal), (path, literal)
    elapsed = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert elapsed < 60
    assert max(peak_kb, before) < 1_000_000, f"a child used {peak_kb:,} KB"
    assert_no_connection(listener)


def _assert_trace_clean(trace: Path, secret: Path, port: int) -> None:
    log = trace.read_text(errors="replace")
    assert str(secret) not in log, "the secret file was touched"
    assert f"sin_port=htons({port})" not in log, "something connected to the network"
    assert not re.search(r"connect\(.*AF_INET6?", log), "a network connection was attempted"
