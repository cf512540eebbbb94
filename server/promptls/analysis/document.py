"""A parsed prompt file: frontmatter, headings, code fences, inline code, XML regions, comments.

`parse_document(text, kind)` is pure and works on any text: whatever is malformed is recorded in the
model (and becomes a finding later), never raised. Offsets are code-point indices into `text`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from promptls.analysis.xml import (
    PackedCheck,
    RawElementEnds,
    XmlCheck,
    check_region,
    pack_check,
    recheck_region,
    unpack_check,
)

#: Kinds whose frontmatter Claude Code reads and strips: it never reaches the model.
STRIPPED_FRONTMATTER = frozenset({"command", "agent", "skill", "output-style", "rule"})
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")
_LINE_BREAK = re.compile(r"[\r\n]")
# CommonMark fences: at most three spaces of indentation; a closing fence has no info string.
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*([^\r\n]*)")
_HEADING_START = re.compile(r" {0,3}(#+)")
_RAW_START = re.compile(r"[ \t]*<([A-Za-z_][\w.:-]*)")
_BLOCK_COMMENT = re.compile(r" {0,3}<!--")
# Code spans: runs of backticks, and where a span cannot continue (a lone CR, or a line break
# followed by a blank line).
# (Each written to start with a literal character, which `re` then finds at C speed before it
# tries the pattern: `` `+ `` took 15 times as long as `` ``*+ ``, which matches the same.)
_BACKTICKS = re.compile("``*+")
_SPAN_BREAK = re.compile(r"\r(?!\n)|\n(?=[ \t]*+\r?\n)")
_BLANK_LINE_BREAK = re.compile(r"\n(?=[ \t]*+\r?\n)")
"""`_SPAN_BREAK` where there is no CR: five times as fast."""
_NUMBER = re.compile(r"(\d[\d,_]*(?:\.\d+)?)\s*([kK]\b)?")

#: libyaml's loader when PyYAML has it (same marks, much faster), else the pure one.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: HTML tags that appear in markdown without being XML; ignored unless properly closed.
HTML_TAGS = frozenset(
    "a abbr b br center code dd details div dl dt em h1 h2 h3 h4 h5 h6 hr i img input kbd li "
    "ol p picture pre q s small source span strong sub summary sup table tbody td th thead tr "
    "u ul video wbr".split()
)


@dataclass(frozen=True, slots=True)
class FrontmatterKey:
    """One top-level key of the YAML frontmatter and where it and its value are."""

    name: str
    value: Any
    start: int
    end: int
    value_start: int
    value_end: int


@dataclass(frozen=True, slots=True)
class Frontmatter:
    """The `---` block at the top of a file."""

    start: int
    end: int
    """Offset just after the closing delimiter line (the body starts here)."""
    content_start: int
    content_end: int
    keys: tuple[FrontmatterKey, ...]
    error: tuple[str, int, int] | None
    """(message, start, end) when the YAML does not parse, is not a mapping, or is never closed."""

    def get(self, name: str) -> FrontmatterKey | None:
        """The key called `name`, if present."""
        for key in self.keys:
            if key.name == name:
                return key
        return None


@dataclass(frozen=True, slots=True)
class Heading:
    """A markdown ATX heading."""

    level: int
    title: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Fence:
    """A fenced code block; `content_*` is the text between the fence lines."""

    start: int
    end: int
    info: str
    content_start: int
    content_end: int
    closed: bool

    @property
    def language(self) -> str:
        """The first word of the info string, lower-cased (`xml`, `bash`, or empty)."""
        return self.info.split(maxsplit=1)[0].lower() if self.info.strip() else ""


@dataclass(frozen=True, slots=True)
class XmlRegion:
    """XML inside a file: a ```xml fence body, raw elements in markdown, or a whole .xml file."""

    form: str
    """`fence`, `raw` or `document`."""
    start: int
    end: int
    check: XmlCheck
    """The scan and check of `text[start:end]`; its offsets are relative to `start`."""


@dataclass(frozen=True, slots=True)
class Span:
    """A plain span of text."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Document:
    """Everything the analysis knows about one file's text."""

    text: str
    kind: str
    frontmatter: Frontmatter | None = None
    headings: tuple[Heading, ...] = ()
    fences: tuple[Fence, ...] = ()
    code_spans: tuple[Span, ...] = ()
    comments: tuple[Span, ...] = ()
    """Block-level HTML comments outside fences (Claude Code strips them from memory files)."""
    unclosed_comment: Span | None = None
    regions: tuple[XmlRegion, ...] = ()
    reduced: bool = False
    """True when the file was too large to parse: only counted."""
    opaque: tuple[Span, ...] = field(default=())
    """Spans where markdown references are not looked for (fences, inline code, frontmatter)."""
    xml_file: bool = False
    """The file is named `*.xml` (see `is_xml_document`)."""

    def unloaded(self) -> tuple[Span, ...]:
        """What of the text does not reach the model when the file is loaded, by the rules of
        its kind: the frontmatter of a command, agent, skill...; a memory file's block comments.
        Sorted, disjoint."""
        if self.frontmatter and self.kind in STRIPPED_FRONTMATTER:
            return (Span(0, self.frontmatter.end),)
        if self.kind == "memory":
            return self.comments
        return ()

    def loaded_text(self) -> str:
        """What reaches the model when this file is loaded (the text without `unloaded`)."""
        spans = self.unloaded()
        if not spans:
            return self.text
        parts: list[str] = []
        pos = 0
        for span in spans:
            parts.append(self.text[pos : span.start])
            pos = span.end
        parts.append(self.text[pos:])
        return "".join(parts)

    def context_budget(self) -> tuple[int, int, int] | None:
        """A declared `<context_budget>` estimate: (tokens, start, end of the number)."""
        text = self.text
        for region in self.regions:
            # (where no such start tag is written, the elements need not be looked at)
            if text.find("<context_budget", region.start, region.end) < 0:
                continue
            for element in region.check.named("context_budget"):
                base = region.start + element.content_start
                content = self.text[base : region.start + element.content_end]
                match = _NUMBER.search(content)
                if not match:
                    continue
                try:
                    value = float(match.group(1).replace(",", "").replace("_", ""))
                except ValueError:
                    continue
                if match.group(2):
                    value *= 1000
                return int(value), base + match.start(), base + match.end()
        return None


def _lines(text: str) -> list[tuple[int, int, int]]:
    """(start, end without line ending, end with it) of each line."""
    out: list[tuple[int, int, int]] = []
    if "\r" not in text:  # the common case: split at `\n` (C speed), then add up
        pos = 0
        parts = text.split("\n")
        for part in parts[:-1]:
            end = pos + len(part)
            out.append((pos, end, end + 1))
            pos = end + 1
        if parts[-1] or not out:
            out.append((pos, len(text), len(text)))
        return out
    for match in _LINE.finditer(text):
        start, full = match.start(), match.end()
        if start == full and start == len(text) and out:
            break
        body = match.group(0).rstrip("\r\n")
        out.append((start, start + len(body), full))
        if full == len(text):
            break
    return out


_FRONTMATTER = re.compile(
    r"\A\ufeff?---[ \t]*(?:\r\n|\r|\n)"
    r"((?>[^\r\n]*(?:\r\n|\r|\n))*?)"
    r"(?:---|\.\.\.)[ \t]*(?:\r\n|\r|\n|\Z)"
)
_FRONTMATTER_OPEN = re.compile(r"\A\ufeff?---[ \t]*(?:\r\n|\r|\n)[A-Za-z_][\w-]*[ \t]*:")


def frontmatter_end(text: str) -> int:
    """Offset just after the closing `---` line of the frontmatter (0 when there is none)."""
    match = _FRONTMATTER.match(text)
    return match.end() if match else 0


def parse_frontmatter(text: str) -> Frontmatter | None:
    """The frontmatter at the top of `text`, if any (with its keys, or its error)."""
    match = _FRONTMATTER.match(text)
    if match:
        return _frontmatter_keys(text, 0, match.end(), match.start(1), match.end(1))
    opened = _FRONTMATTER_OPEN.match(text)
    if opened:
        # Never closed: it is frontmatter only when the next line looks like a YAML key.
        first_end = text.index("-") + 3
        return Frontmatter(
            0,
            first_end,
            first_end,
            first_end,
            (),
            ("frontmatter is never closed: add a `---` line after it", 0, first_end),
        )
    return None


def _frontmatter_keys(text: str, start: int, end: int, c_start: int, c_end: int) -> Frontmatter:
    source = text[c_start:c_end]
    keys: list[FrontmatterKey] = []
    error: tuple[str, int, int] | None = None
    try:
        node = yaml.compose(source, Loader=_YAML_LOADER)
        values = (
            yaml.load(source, Loader=_YAML_LOADER) if isinstance(node, yaml.MappingNode) else None
        )
        if node is None:
            pass
        elif not isinstance(node, yaml.MappingNode) or not isinstance(values, dict):
            error = ("frontmatter must be a mapping of `key: value` lines", c_start, c_end)
        else:
            for key_node, value_node in node.value:
                name = str(key_node.value)
                keys.append(
                    FrontmatterKey(
                        name,
                        values.get(key_node.value, values.get(name)),
                        c_start + key_node.start_mark.index,
                        c_start + key_node.end_mark.index,
                        c_start + value_node.start_mark.index,
                        c_start + value_node.end_mark.index,
                    )
                )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = c_start + (mark.index if mark is not None else 0)
        at = min(max(at, c_start), c_end)
        brk = _LINE_BREAK.search(text, at, c_end)
        line_end = brk.start() if brk is not None else c_end
        if line_end <= at:
            line_end = at if brk is not None else min(at + 1, c_end)
        problem = exc.problem or exc.context or "parse error"
        closed = text[max(c_start, text.rfind("\n", 0, at) + 1) : at].rstrip(" \t")[-1:]
        if problem.startswith("mapping values are not allowed"):
            # (`description: Do this: then that`: the commonest way frontmatter breaks)
            problem += "; a value holding `: ` needs quotes around it"
        elif closed and closed in "]}\"'" and at < line_end:
            # (`- [PROJECT]-api-patterns`: a list, then more text on its line)
            problem += f"; the value ended at its closing `{closed}`: put quotes around all of it"
        error = (f"frontmatter is not valid YAML: {problem}", at, line_end)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        error = (f"frontmatter is not valid YAML: {exc}", c_start, c_end)
    return Frontmatter(start, end, c_start, c_end, tuple(keys), error)


RegionCache = MutableMapping[tuple[str, tuple[tuple[int, int], ...]], XmlCheck]
"""Checks of XML regions by their text (and masks): an edit re-checks only the region it touched."""


def checked_region(
    text: str,
    masks: Sequence[tuple[int, int]] = (),
    cache: RegionCache | None = None,
    edited: tuple[XmlCheck, str, int, int, int] | None = None,
    *,
    packed: bool = False,
) -> XmlCheck:
    """The check of the XML region `text` (from `cache` when it holds it). `edited` = (the
    check of an earlier version, its text, and where the edit lies: start, old end, new end)
    lets the scan resume near the edit (`recheck_region`). `packed`: see `check_region`."""
    key = (text, tuple(masks))
    found = cache.get(key) if cache is not None else None
    if found is None:
        if edited is not None:
            found = recheck_region(edited[0], edited[1], text, *edited[2:], masks)
        if found is None:
            found = check_region(text, masks, packed=packed)
        if cache is not None:
            cache[key] = found
    return found


_XML_DECLARATION = re.compile(r"[\ufeff \t\r\n]*<\?xml[ \t\r\n]")


def is_xml_path(path: str) -> bool:
    """Whether the file at `path` is named as XML (`*.xml`)."""
    return path[-4:].lower() == ".xml"


def is_xml_document(text: str, kind: str, xml_file: bool = False) -> bool:
    """Whether a file of `kind` holding `text` is one XML document, not markdown:
    `PROJECT_CONFIG.xml`, a file named `*.xml` (`xml_file`: a framework's `.xml` tasks and
    workflows, which no one renders as markdown), and whatever opens with an XML declaration."""
    return kind == "project-config" or xml_file or _XML_DECLARATION.match(text) is not None


def parse_document(
    text: str,
    kind: str,
    *,
    reduced: bool = False,
    regions: RegionCache | None = None,
    packed: bool = False,
    xml_file: bool = False,
) -> Document:
    """Parse `text` (a file of `kind`; `xml_file`: named `*.xml`) into a `Document`; never
    raises on malformed input. `regions` remembers XML checks by region text across versions of
    the file. `packed`: the document is to be packed (`parse_packed`), its region checks made
    for that."""
    if reduced:
        return Document(text=text, kind=kind, reduced=True, xml_file=xml_file)
    if is_xml_document(text, kind, xml_file):
        region = XmlRegion(
            "document", 0, len(text), checked_region(text, (), regions, packed=packed)
        )
        return Document(text=text, kind=kind, regions=(region,), xml_file=xml_file)
    if regions is None:
        regions = {}  # identical regions in one file (a pattern repeated) are checked once

    lines = _lines(text)
    frontmatter = parse_frontmatter(text)
    body_from = frontmatter.end if frontmatter else 0

    fences: list[Fence] = []
    headings: list[Heading] = []
    comments: list[Span] = []
    unclosed_comment: Span | None = None
    raw_starts: list[tuple[int, str]] = []
    i = 0
    n = len(lines)
    while i < n:
        start, end, full = lines[i]
        if start < body_from:
            i += 1
            continue
        line = text[start:end]
        fence = _FENCE_OPEN.fullmatch(line)
        if fence and not (fence.group(1)[0] == "`" and "`" in fence.group(2)):
            marker = fence.group(1)
            close = re.compile(rf" {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*")
            j = i + 1
            while j < n and not close.fullmatch(text[lines[j][0] : lines[j][1]]):
                j += 1
            closed = j < n
            content_end = lines[j][0] if closed else len(text)
            fence_end = lines[j][2] if closed else len(text)
            fences.append(
                Fence(start, fence_end, fence.group(2).strip(), full, content_end, closed)
            )
            i = j + 1
            continue
        if _BLOCK_COMMENT.match(line):
            opened = start + line.index("<!--")
            close_at = text.find("-->", opened + 4)
            if close_at < 0:
                unclosed_comment = Span(opened, len(text))
                comments.append(Span(start, len(text)))
                break
            # A block comment ends with the whole line that holds its `-->`.
            while i < n and lines[i][2] <= close_at + 2:
                i += 1
            comment_end = lines[i][2] if i < n else len(text)
            comments.append(Span(start, comment_end))
            i += 1
            continue
        heading = atx_heading(line)
        if heading:
            headings.append(Heading(heading[0], heading[1], start, end))
        else:
            raw = _RAW_START.match(line)
            if raw:
                raw_starts.append((start + raw.end() - len(raw.group(1)) - 1, raw.group(1)))
        i += 1

    fence_spans = [(f.start, f.end) for f in fences]
    code_spans = _code_spans(text, body_from, fence_spans, comments)
    found: list[XmlRegion] = []
    for f in fences:
        if f.language == "xml":
            body = text[f.content_start : f.content_end]
            found.append(
                XmlRegion(
                    "fence",
                    f.content_start,
                    f.content_end,
                    checked_region(body, (), regions, packed=packed),
                )
            )
    found.extend(
        _raw_regions(text, raw_starts, lines, fence_spans, code_spans, regions, packed=packed)
    )
    found.sort(key=lambda r: r.start)

    opaque = sorted(
        [Span(s, e) for s, e in fence_spans]
        + list(code_spans)
        + ([Span(frontmatter.start, frontmatter.end)] if frontmatter else [])
        + comments,
        key=lambda s: s.start,
    )
    return Document(
        text=text,
        kind=kind,
        frontmatter=frontmatter,
        headings=tuple(headings),
        fences=tuple(fences),
        code_spans=tuple(code_spans),
        comments=tuple(comments),
        unclosed_comment=unclosed_comment,
        regions=tuple(found),
        opaque=tuple(opaque),
    )


_Masks = tuple[tuple[int, int], ...]
PackedDocument = tuple[
    Frontmatter | None,
    tuple[tuple[int, str, int, int], ...],  # headings
    tuple[tuple[int, int, str, int, int, bool], ...],  # fences
    tuple[tuple[int, int], ...],  # code spans
    tuple[tuple[int, int], ...],  # comments
    tuple[int, int] | None,  # the unclosed comment
    tuple[tuple[str, int, int, int], ...],  # regions: form, start, end, index in the checks
    tuple[tuple[int, int, _Masks, PackedCheck], ...],  # checks: where first, masks, packed
    tuple[tuple[int, int], ...],  # opaque spans
]
"""A `Document` as tuples (its text and kind apart): what a worker process sends back, made
into the document again by `unpack_document` in a few microseconds per element."""


def parse_packed(text: str, kind: str, xml_file: bool = False) -> tuple[Document, PackedDocument]:
    """`text` (a file of `kind`, not reduced) parsed, and packed (identical regions checked and
    sent once, with the masks that key them in a `RegionCache`)."""
    checked: dict[tuple[str, _Masks], XmlCheck] = {}
    doc = parse_document(text, kind, regions=checked, packed=True, xml_file=xml_file)
    masks_of = {id(check): masks for (_, masks), check in checked.items()}
    order: dict[int, int] = {}
    checks: list[tuple[int, int, _Masks, PackedCheck]] = []
    regions: list[tuple[str, int, int, int]] = []
    for region in doc.regions:
        check = region.check
        at = order.get(id(check))
        if at is None:
            at = order[id(check)] = len(checks)
            checks.append((region.start, region.end, masks_of[id(check)], pack_check(check)))
        regions.append((region.form, region.start, region.end, at))
    unclosed = doc.unclosed_comment
    return doc, (
        doc.frontmatter,
        tuple((h.level, h.title, h.start, h.end) for h in doc.headings),
        tuple(
            (f.start, f.end, f.info, f.content_start, f.content_end, f.closed) for f in doc.fences
        ),
        tuple((c.start, c.end) for c in doc.code_spans),
        tuple((c.start, c.end) for c in doc.comments),
        (unclosed.start, unclosed.end) if unclosed is not None else None,
        tuple(regions),
        tuple(checks),
        tuple((o.start, o.end) for o in doc.opaque),
    )


def unpack_document(
    text: str,
    kind: str,
    packed: PackedDocument,
    cache: RegionCache | None = None,
    xml_file: bool = False,
) -> Document:
    """The document `parse_packed` packed (`text`, `kind` and `xml_file` as given to it). The
    checks of its regions go into `cache` as `parse_document` would put them (one it already
    holds is used)."""
    frontmatter, headings, fences, code_spans, comments, unclosed, regions, checks, opaque = packed
    made: list[XmlCheck] = []
    for start, end, masks, check in checks:
        key = (text[start:end], masks)
        known = cache.get(key) if cache is not None else None
        if known is None:
            known = unpack_check(check)
            if cache is not None:
                cache[key] = known
        made.append(known)
    return Document(
        text=text,
        kind=kind,
        frontmatter=frontmatter,
        headings=tuple(Heading(*h) for h in headings),
        fences=tuple(Fence(*f) for f in fences),
        code_spans=tuple(Span(*c) for c in code_spans),
        comments=tuple(Span(*c) for c in comments),
        unclosed_comment=Span(*unclosed) if unclosed is not None else None,
        regions=tuple(XmlRegion(form, s, e, made[at]) for form, s, e, at in regions),
        opaque=tuple(Span(*o) for o in opaque),
        xml_file=xml_file,
    )


def atx_heading(line: str) -> tuple[int, str] | None:
    """(level, title) of an ATX heading line (no line ending), or None.

    One to six `#` after at most three spaces, then a space or tab (or nothing); the title is the
    rest without its closing `#`s and spaces. A run of more than six `#` followed only by spaces
    and `#`s counts as a level-6 heading with no title. Linear in the line's length.
    """
    m = _HEADING_START.match(line)
    if m is None:
        return None
    hashes = len(m.group(1))
    rest = line[m.end() :]
    if hashes > 6:
        return (6, "") if not rest.strip(" \t#") else None
    if not rest:
        return hashes, ""
    if rest[0] not in " \t":
        return None
    return hashes, rest.lstrip(" \t").rstrip(" \t#").strip()


def _code_spans(
    text: str, body_from: int, fences: list[tuple[int, int]], comments: list[Span]
) -> list[Span]:
    blocked = sorted(fences + [(c.start, c.end) for c in comments])
    spans: list[Span] = []
    pos = body_from
    for b_start, b_end in [*blocked, (len(text), len(text))]:
        if b_start > pos:
            spans.extend(_segment_code_spans(text, pos, b_start))
        pos = max(pos, b_end)
    return spans


def _segment_code_spans(text: str, start: int, end: int) -> list[Span]:
    """The inline code spans of `text[start:end]`, in linear time.

    A maximal run of backticks opens a span that the next run of the same length closes, unless
    a blank line (or a lone CR) comes first; an opener that is never closed is literal text, and
    the runs after it are tried in turn. A run touching a backtick before `start` opens nothing.
    """
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(text, start, end)]
    if len(runs) < 2:
        return []
    if runs[0][0] == start and start > 0 and text[start - 1] == "`":
        runs.pop(0)
    span_break = _SPAN_BREAK if text.find("\r", start, end) >= 0 else _BLANK_LINE_BREAK
    breaks = [m.start() for m in span_break.finditer(text, start, end)]
    # The paragraph of each run (runs never pair across a break), then, for each run, the next
    # run of the same length in the same paragraph.
    paragraph: list[int] = []
    b = 0
    for run_start, _ in runs:
        while b < len(breaks) and breaks[b] < run_start:
            b += 1
        paragraph.append(b)
    partner = [-1] * len(runs)
    last: dict[tuple[int, int], int] = {}
    for i in range(len(runs) - 1, -1, -1):
        key = (paragraph[i], runs[i][1] - runs[i][0])
        partner[i] = last.get(key, -1)
        last[key] = i
    spans: list[Span] = []
    i = 0
    while i < len(runs):
        j = partner[i]
        if j < 0:
            i += 1
            continue
        spans.append(Span(runs[i][0], runs[j][1]))
        i = j + 1
    return spans


def _raw_regions(
    text: str,
    starts: list[tuple[int, str]],
    lines: list[tuple[int, int, int]],
    fences: list[tuple[int, int]],
    code_spans: list[Span],
    cache: RegionCache | None = None,
    *,
    packed: bool = False,
) -> list[XmlRegion]:
    if not starts:
        return []
    skip = raw_skips(fences, code_spans)
    skip_starts = [s for s, _ in skip]
    skip_ends = [e for _, e in skip]
    ends = RawElementEnds(text, skip)
    fence_starts = sorted(s for s, _ in fences)
    regions: list[XmlRegion] = []
    covered = 0
    for at, name in starts:
        k = bisect.bisect_right(skip_starts, at) - 1
        if at < covered or (k >= 0 and at < skip_ends[k]):
            continue
        end = ends.end(at)
        if end is None:
            if name.lower() in HTML_TAGS:
                continue
            end = _paragraph_end(text, at, fence_starts)
        masks = raw_masks(skip, skip_starts, skip_ends, at, end)
        check = checked_region(text[at:end], masks, cache, packed=packed)
        regions.append(XmlRegion("raw", at, end, check))
        covered = end
    return regions


def raw_skips(
    fences: Sequence[tuple[int, int]], code_spans: Sequence[Span]
) -> list[tuple[int, int]]:
    """What XML written straight into the markdown never holds: fences and code spans (sorted,
    merged)."""
    return _disjoint([*fences, *((s.start, s.end) for s in code_spans)])


def raw_masks(
    skip: Sequence[tuple[int, int]],
    skip_starts: Sequence[int],
    skip_ends: Sequence[int],
    at: int,
    end: int,
) -> list[tuple[int, int]]:
    """The spans of `skip` (see `raw_skips`, with their starts and ends) inside the raw region
    `[at, end)`, in the region's offsets: masked from its check."""
    first = bisect.bisect_right(skip_ends, at)
    last = bisect.bisect_left(skip_starts, end)
    return [(max(s, at) - at, min(e, end) - at) for s, e in skip[first:last]]


def _disjoint(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans sorted, with overlapping ones merged (non-empty ones only)."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _paragraph_end(text: str, at: int, fence_starts: Sequence[int] = ()) -> int:
    """End of the paragraph holding `at`: the line ending before the next blank line, or before
    the next code fence (a fence interrupts a paragraph; an unclosed element's region must not
    end inside one)."""
    blank = re.compile(r"(?:\r\n|\r|\n)[ \t]*(?:\r\n|\r|\n|$)")
    match = blank.search(text, at)
    end = match.start() if match else len(text)
    k = bisect.bisect_right(fence_starts, at)
    if k < len(fence_starts) and fence_starts[k] < end:
        fence = fence_starts[k]
        brk = 2 if text.startswith("\r\n", fence - 2) else 1 if fence > 0 else 0
        end = max(at, fence - brk)
    return end
