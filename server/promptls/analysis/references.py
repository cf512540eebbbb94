"""References between prompt files: finding them in a parsed document (every form of formats.md
section 4) and resolving them against the file's folder and the search roots, workspace-confined.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from promptls.analysis.document import Document, Span
from promptls.analysis.workspace import Status, Workspace
from promptls.analysis.xml import PackedElements, ShiftedElements, XmlCheck, XmlElement

#: form -> folders (relative to the framework root) tried right after the file's own folder.
FORM_ROOTS: dict[str, tuple[str, ...]] = {
    "import": (),
    "delegation": (".claude",),
    "pattern": (".claude/modules",),
    "module": (".claude/modules", ".claude/system", ".claude"),
    "module-attribute": (".claude/modules", ".claude/system", ".claude"),
    "dependency": (".claude/modules",),
    "provides": (".claude/modules",),
    "component": (),
    "include": (".claude/modules", ".claude/system", ".claude"),
    "attribute": (".claude/modules", ".claude/system", ".claude"),
    "link": (),
    "project-root": (),
}

#: Forms that make the referenced file part of the referencing file's load set. `provides_to`
#: lines name the modules this one serves, not ones it loads; a `{project-root}/...` path
#: (BMAD's) names a file the model is told to read when a step or a menu item asks for it (the
#: menu's items are alternatives): counting every one would overstate what one run costs.
LOADING_FORMS = frozenset(FORM_ROOTS) - {"provides", "project-root"}

#: How BMAD and the frameworks built on it write a path from the project's root (the folder the
#: framework is installed in), in text and in attribute values alike.
PROJECT_ROOT = "{project-root}/"

_EXT = r"(?:md|markdown|xml|txt|ya?ml|json|toml)"
_PATH = rf"(?:\.{{1,2}}/|/)?[\w.@-]+(?:/[\w.@-]+)*\.{_EXT}"
_LEADING_PATH = re.compile(rf"[ \t]*(?:[-*+][ \t]+)?`?({_PATH})(?![\w/])")
# A leading line break is allowed: <module>\n  quality/x.md - why\n</module>
_SPACED_PATH = re.compile(rf"\s*`?({_PATH})(?![\w/])")
_IMPORT = re.compile(r"(?<![\w@/`.\\])@((?:~/|\.{1,2}/|/)?[\w.-]+(?:/[\w.~-]+)*)")
_IMPORT_PATHLIKE = re.compile(rf"(?:.*/.*|.*\.{_EXT})\Z")
# An `@` import with neither an extension nor a `./`, `../` or `/` start may be a mention
# (`@AI/ML-Expert`, `@anthropic-ai/sdk`): an import when the file exists, else nothing.
_MENTION_LIKE = re.compile(r"(?!\.{1,2}/|/)(?:[^/]*/)*[^./]+\Z")
# The link text holds no bracket (a '[' inside starts the link text again), so that every '['
# is scanned only up to the next bracket: linear on lines full of unmatched brackets.
_LINK = re.compile(
    r"(?<!!)\[(?:[^\[\]\\\r\n]|\\.)*+\]\(\s*<?([^)\s>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_COMPONENT_LINE = re.compile(rf"^[ \t]*(?:[-*+][ \t]+)?(components/[\w.@/-]+\.{_EXT})[ \t]*$", re.M)
_PROJECT_ROOT_PATH = re.compile(rf"\{{project-root\}}/([\w.@-]+(?:/[\w.@-]+)*\.{_EXT})(?![\w/])")
_LINE_SPLIT = re.compile(r"[^\r\n]*")


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference as written: its form, the target text and where that text is."""

    form: str
    target: str
    start: int
    end: int

    @property
    def loads(self) -> bool:
        """Whether the target joins the referencing file's load set."""
        return self.form in LOADING_FORMS


class _Opaque:
    """Fast membership test for sorted spans."""

    def __init__(self, spans: Sequence[Span]) -> None:
        merged: list[tuple[int, int]] = []
        for span in sorted(spans, key=lambda s: s.start):
            if merged and span.start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], span.end))
            else:
                merged.append((span.start, span.end))
        self._starts = [s for s, _ in merged]
        self._spans = merged

    def __contains__(self, offset: int) -> bool:
        i = bisect_right(self._starts, offset) - 1
        return i >= 0 and offset < self._spans[i][1]


def extract_references(doc: Document) -> list[Reference]:
    """Every reference in `doc`, in text order, each once per position."""
    refs: list[Reference] = []
    if doc.reduced:
        return refs
    text = doc.text
    opaque = _Opaque(doc.opaque)
    fenced = _Opaque([Span(f.start, f.end) for f in doc.fences if f.language != "xml"])
    illustrations = _Opaque(illustration_spans(doc))

    for region in doc.regions:
        refs.extend(xml_references(text, region.start, region.check))

    if doc.kind not in ("project-config",):
        for m in _matches(_IMPORT, text, "@"):
            target = m.group(1).rstrip(".,:;")
            if m.start() in opaque or not _IMPORT_PATHLIKE.match(target):
                continue
            refs.append(Reference("import", target, m.start(1), m.start(1) + len(target)))
        for m in _matches(_LINK, text, "["):
            target = m.group(1)
            if m.start() in opaque or m.start() in illustrations:
                continue
            if _SCHEME.match(target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0].split("?", 1)[0]
            if path:
                refs.append(Reference("link", _unquote(path), m.start(1), m.start(1) + len(path)))
    for m in _component_lines(text):
        if m.start(1) in fenced or (m.start(1) in opaque and not _in_xml_fence(doc, m.start(1))):
            continue
        refs.append(Reference("component", m.group(1), m.start(1), m.end(1)))
    # (In code spans too: the model reads them, and BMAD often writes these paths there; not in
    # the frontmatter, which holds no reference of any form.)
    body = doc.frontmatter.end if doc.frontmatter is not None else 0
    for m in _matches(_PROJECT_ROOT_PATH, text, PROJECT_ROOT[:-1]):
        at = m.start()
        if at >= body and at not in fenced and at not in illustrations:
            refs.append(Reference("project-root", m.group(1), m.start(1), m.end(1)))

    seen: set[tuple[int, int]] = set()
    unique: list[Reference] = []
    for ref in sorted(refs, key=lambda r: (r.start, r.end)):
        if (ref.start, ref.end) not in seen:
            seen.add((ref.start, ref.end))
            unique.append(ref)
    return unique


#: Elements whose content illustrates (the `<example>` tags prompts are advised to use): a
#: markdown link written there shows what a link looks like, it points nowhere. (An `@` import
#: there is still one: Claude Code expands it wherever it stands.)
EXAMPLE_ELEMENTS = ("example", "examples")


def _component_lines(text: str) -> Iterator[re.Match[str]]:
    """`_COMPONENT_LINE.finditer(text)`, looking only at the lines holding `components/` (the
    pattern tried at every line start was a third of the time spent on references)."""
    pos = 0
    while (at := text.find("components/", pos)) >= 0:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        if end < 0:
            end = len(text)
        m = _COMPONENT_LINE.match(text, start, end)
        if m is not None:
            yield m
        pos = end + 1  # (a match is its whole line)


def illustration_spans(doc: Document) -> list[Span]:
    """The content of every `EXAMPLE_ELEMENTS` element of `doc`'s XML regions."""
    return [
        Span(region.start + el.content_start, region.start + el.content_end)
        for region in doc.regions
        for name in EXAMPLE_ELEMENTS
        for el in region.check.named(name)
    ]


def _matches(pattern: re.Pattern[str], text: str, lead: str) -> Iterator[re.Match[str]]:
    """`pattern.finditer(text)` for a pattern whose matches all start with the character
    `lead` after a look-behind (which keeps `re` from skipping ahead to that character): tried
    only where `lead` is, found by `str.find`. (A look-behind sees the text before `pos`.)"""
    pos = 0
    while (at := text.find(lead, pos)) >= 0:
        m = pattern.match(text, at)
        if m is None:
            pos = at + 1
        else:
            yield m
            pos = max(m.end(), at + 1)


def _in_xml_fence(doc: Document, offset: int) -> bool:
    return any(
        f.content_start <= offset < f.content_end and f.language == "xml" for f in doc.fences
    )


def _unquote(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


#: Elements whose whole text is a path to load: `<include>components/x.md</include>`.
INCLUDE_ELEMENTS = frozenset(
    "include component pattern checkpoint_template required requires dependency reference "
    "import load uses context_file template prerequisite".split()
)
#: Attributes whose value is a path to load: `<include component="..."/>`, `ref="..."`.
PATH_ATTRIBUTES = frozenset("module component ref src include template pattern".split())
#: What `xml_references` reads paths from: these elements' text, these attributes.
_REFERRING_NAMES = INCLUDE_ELEMENTS | {"module", "depends_on", "provides_to"}
_REFERRING_ATTRIBUTES = PATH_ATTRIBUTES | {"target", "from"}
# `<import>@./x.md</import>`: the `@` is the memory-import mark, not part of the path (the
# import read there is this reference, once).
_WHOLE_PATH = re.compile(rf"\s*`?@?({_PATH})(?:#[\w.-]*)?`?\s*")
_ATTR_PATH = re.compile(rf"({_PATH})(?:#[\w.-]*)?")


def _referring(elements: Sequence[XmlElement]) -> Iterator[tuple[int, XmlElement]]:
    """The elements that may hold a reference, with their indices, in order; of
    `ShiftedElements` (a region after an edit) and `PackedElements` (a check made by a worker
    process), only those are made."""
    names, attributes = _REFERRING_NAMES, _REFERRING_ATTRIBUTES
    if isinstance(elements, PackedElements):
        yield from elements.having(names, attributes)
        return
    base = elements.base if isinstance(elements, ShiftedElements) else elements
    for i, el in enumerate(base):
        if el.name in names or any(a.name in attributes for a in el.attributes):
            yield i, (el if base is elements else elements[i])


def xml_references(text: str, base: int, check: XmlCheck) -> Iterator[Reference]:
    """The references read from the elements of one region (`check`, starting at `base`)."""
    elements = check.elements
    for index, el in _referring(elements):
        for attr in el.attributes:
            value = attr.value.strip()
            if not value:
                continue
            lead = len(attr.value) - len(attr.value.lstrip())
            start = base + attr.value_start + lead
            if el.name == "delegation" and attr.name == "target":
                yield Reference("delegation", value, start, start + len(value))
            elif el.name == "uses_pattern" and attr.name == "from":
                yield Reference("pattern", value, start, start + len(value))
            elif attr.name in PATH_ATTRIBUTES and (m := _ATTR_PATH.fullmatch(value)):
                form = "module-attribute" if attr.name == "module" else "attribute"
                yield Reference(form, m.group(1), start, start + len(m.group(1)))
        if not el.closed or el.self_closing:
            continue
        c_start, c_end = base + el.content_start, base + el.content_end
        if el.name == "module":
            m = _LEADING_PATH.match(text, c_start, c_end) or _SPACED_PATH.match(
                text, c_start, c_end
            )
            if m is not None:
                yield Reference("module", m.group(1), m.start(1), m.end(1))
        elif el.name in INCLUDE_ELEMENTS:
            m = _WHOLE_PATH.fullmatch(text, c_start, c_end)
            if m is not None:
                yield Reference("include", m.group(1), m.start(1), m.end(1))
        if el.name in ("depends_on", "provides_to"):
            form = "dependency" if el.name == "depends_on" else "provides"
            children = []  # (its descendants follow it, in document order)
            for k in range(index + 1, len(elements)):
                c = elements[k]
                if c.start >= el.content_end:
                    break
                if c.depth == el.depth + 1 and el.content_start <= c.start:
                    children.append((c.start, c.end))
            for line in _LINE_SPLIT.finditer(text, c_start, c_end):
                if any(s <= line.start() - base < e for s, e in children):
                    continue
                m = _LEADING_PATH.match(text, line.start(), line.end())
                if m is not None:
                    yield Reference(form, m.group(1), m.start(1), m.end(1))


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where a reference leads."""

    ref: Reference
    status: str
    """`resolved`, `unresolved`, `outside`, `loop`, `directory`, `special`, `mention` (an `@`
    import that is more likely a mention, naming no file: not a finding), or `uninstalled` (a
    `{project-root}/` path whose first folder the project does not have: the framework's own
    sources, say, before it is installed; not a finding either)."""
    path: str | None = None
    """The absolute path of the target when resolved (or of the offending path)."""
    tried: tuple[str, ...] = ()
    """The folders tried, relative to the workspace folder, in order."""
    suggestion: str | None = None
    """The closest existing path, as the reference would write it."""
    loads: bool = False
    """Whether the resolved target joins the load set (a loading form and a loadable file)."""

    def moved(self, ref: Reference) -> Resolution:
        """The same resolution for `ref` (the same reference elsewhere in the text); made
        directly, `dataclasses.replace` costing ten times as much at every keystroke."""
        if ref is self.ref:
            return self
        return Resolution(ref, self.status, self.path, self.tried, self.suggestion, self.loads)


def framework_root(path: str, workspace: Workspace) -> str:
    """The folder holding the `.claude` folder that `path` belongs to (else its workspace one)."""
    folder = workspace.folder_of(path) or os.path.dirname(path)
    current = os.path.dirname(path)
    parts = current[len(folder) :].split(os.sep)
    if ".claude" in parts:
        index = len(parts) - 1 - parts[::-1].index(".claude")
        return folder + os.sep.join(parts[:index]) if index else folder
    while _inside_or_equal(current, folder):
        if workspace.status(os.path.join(current, ".claude")) is Status.DIRECTORY:
            return current
        if current == folder:
            break
        current = os.path.dirname(current)
    return folder


def _inside_or_equal(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _component_root(path: str, workspace: Workspace, fallback: str) -> str:
    folder = workspace.folder_of(path) or fallback
    current = os.path.dirname(path)
    while _inside_or_equal(current, folder):
        if workspace.status(os.path.join(current, "components")) is Status.DIRECTORY:
            return current
        if current == folder:
            break
        current = os.path.dirname(current)
    return fallback


class Resolver:
    """Resolves references of files in one workspace, with the configured search roots."""

    def __init__(
        self, workspace: Workspace, search_roots: Sequence[str], loadable: Sequence[str]
    ) -> None:
        self.workspace = workspace
        self.search_roots = tuple(search_roots)
        self.loadable = frozenset(e.lower() for e in loadable)
        self._names_at = -1
        self._by_name: dict[str, list[str]] = {}
        self._stems: dict[str, list[str]] = {}
        self._close: dict[str, list[str]] = {}
        self._bags: list[tuple[str, int, frozenset[str]]] = []
        """`_bag` of every known stem, shortest first."""
        self._bag_lengths: list[int] = []
        self._bases: dict[tuple[str, str, bool], tuple[str, ...]] = {}
        self._bases_at = -1
        self._memo: dict[tuple[str, str, str], Resolution] = {}
        self._memo_at = -1

    def bases(self, path: str, form: str, target: str = "") -> list[str]:
        """Folders tried for a reference of `form` in the file at `path`, in order (the same
        for every file of a folder: remembered while the workspace's view of the disk stays)."""
        generation = self.workspace.generation
        if self._bases_at != generation or len(self._bases) > 10_000:
            self._bases.clear()
            self._bases_at = generation
        component = form == "component" or target.startswith("components/")
        key = (os.path.dirname(path), form, component)
        known = self._bases.get(key)
        if known is None:
            known = self._bases[key] = tuple(self._find_bases(path, form, component))
        return list(known)

    def _find_bases(self, path: str, form: str, component: bool) -> list[str]:
        root = framework_root(path, self.workspace)
        folder = self.workspace.folder_of(path)
        if form == "project-root":  # (from the project's root only)
            return list(dict.fromkeys([root] if folder is None else [root, folder]))
        bases = [os.path.dirname(path)]
        if component:
            bases.insert(0, _component_root(path, self.workspace, root))
        bases.extend(os.path.normpath(os.path.join(root, r)) for r in FORM_ROOTS[form])
        bases.extend(os.path.normpath(os.path.join(root, r)) for r in self.search_roots)
        if folder is not None:
            bases.append(folder)
        return list(dict.fromkeys(bases))

    def resolve(self, path: str, ref: Reference) -> Resolution:
        """Resolve `ref`, written in the file at `path`; never opens anything.

        Remembered while the workspace's view of the disk stays the same, so a file that
        writes the same reference many times resolves it once."""
        generation = self.workspace.generation
        if self._memo_at != generation or len(self._memo) > 50_000:
            self._memo.clear()
            self._memo_at = generation
        key = (path, ref.form, ref.target)
        known = self._memo.get(key)
        if known is not None:
            return known if known.ref == ref else known.moved(ref)
        resolution = self._resolve(path, ref)
        if self.workspace.generation == generation:
            self._memo[key] = resolution
        return resolution

    def _resolve(self, path: str, ref: Reference) -> Resolution:
        target = ref.target
        ws = self.workspace
        if target.startswith("~"):
            return Resolution(ref, "outside", None, ("~ (your home folder)",))
        if os.path.isabs(target):
            candidate = os.path.normpath(target)
            return self._settle(ref, candidate, (candidate,), path)
        bases = self.bases(path, ref.form, target)
        first = os.path.normpath(os.path.join(bases[0], target))
        if not ws.contains(first):
            return Resolution(ref, "outside", first, (self._show(bases[0]),))
        tried: list[str] = []
        for base in bases:
            candidate = os.path.normpath(os.path.join(base, target))
            if not ws.contains(candidate):
                continue
            tried.append(self._show(base))
            status = ws.status(candidate)
            if status is Status.MISSING:
                continue
            return self._settle(ref, candidate, tuple(tried), path)
        if ref.form == "import" and _MENTION_LIKE.match(target):
            return self._mention(ref, bases, tuple(tried))
        if (
            ref.form == "project-root"
            and "/" in target
            and not any(
                ws.status(os.path.join(base, target.split("/", 1)[0])) is Status.DIRECTORY
                for base in bases
            )
        ):
            return Resolution(ref, "uninstalled", None, tuple(tried))
        return Resolution(ref, "unresolved", None, tuple(tried), self._suggest(path, target, bases))

    def _mention(self, ref: Reference, bases: Sequence[str], tried: tuple[str, ...]) -> Resolution:
        """An `@` import written like a mention that names no file: a mention, unless the
        same path with `.md` exists (then the extension was forgotten: unresolved, saying so)."""
        for base in bases:
            candidate = os.path.normpath(os.path.join(base, ref.target + ".md"))
            if (
                self.workspace.contains(candidate)
                and self.workspace.status(candidate) is Status.FILE
            ):
                return Resolution(ref, "unresolved", None, tried, ref.target + ".md")
        return Resolution(ref, "mention", None, tried)

    def _settle(
        self, ref: Reference, candidate: str, tried: tuple[str, ...], path: str
    ) -> Resolution:
        status = self.workspace.status(candidate)
        if status is Status.FILE:
            return Resolution(
                ref, "resolved", candidate, tried, None, ref.loads and self.loadable_file(candidate)
            )
        if status is Status.MISSING:
            return Resolution(ref, "unresolved", None, tried, self._suggest(path, ref.target, []))
        return Resolution(ref, status.value, candidate, tried)

    def loadable_file(self, path: str) -> bool:
        """Whether a file at `path` would be loaded when a loading reference names it (by its
        extension: `loadable_extensions`)."""
        return os.path.splitext(path)[1].lower() in self.loadable

    def _show(self, base: str) -> str:
        rel = self.workspace.relative(base)
        return (rel or ".") + "/"

    def _names(self) -> dict[str, list[str]]:
        """Known files by file name (rebuilt when the workspace's view of the disk changes)."""
        generation = self.workspace.generation
        if self._names_at != generation:
            names: dict[str, list[str]] = {}
            for known in self.workspace.known_files():
                names.setdefault(os.path.basename(known), []).append(known)
            self._by_name = names
            self._stems = {}
            self._close = {}
            for name in names:
                self._stems.setdefault(os.path.splitext(name)[0].lower(), []).append(name)
            self._bag_stems()
            self._names_at = generation
        return self._by_name

    def _close_stems(self, stem: str) -> list[str]:
        """Known file stems close to `stem` (remembered until the known files change: many
        files often ask for the same missing one)."""
        import difflib

        known = self._close.get(stem)
        if known is None:
            if len(self._close) > 10_000:
                self._close.clear()
            known = difflib.get_close_matches(stem, self._could_be_close(stem), n=5, cutoff=0.8)
            self._close[stem] = known
        return known

    def _bag_stems(self) -> None:
        """`_bags` of the known stems (`_stems`), shortest first, and their lengths."""
        self._bags = sorted((self._bag(stem) for stem in self._stems), key=lambda b: b[1])
        self._bag_lengths = [b[1] for b in self._bags]

    @staticmethod
    def _bag(stem: str) -> tuple[str, int, frozenset[str]]:
        """What `_could_be_close` compares of a stem, made once: its characters as a multiset,
        the k-th occurrence of a character written as that character k times (a string, whose
        hash is kept: sets of them intersect fast)."""
        seen: dict[str, int] = {}
        occurrences = []
        for ch in stem:
            k = seen.get(ch, 0) + 1
            seen[ch] = k
            occurrences.append(ch * k)
        return stem, len(stem), frozenset(occurrences)

    def _could_be_close(self, stem: str) -> list[str]:
        """The known stems whose similarity to `stem` may reach 0.8: difflib's own upper bounds
        (`real_quick_ratio`, `quick_ratio`: twice the characters in common, counted as a
        multiset, over both lengths). What `get_close_matches` then finds among them is what it
        finds among all of them. The characters in common are the intersection of the two
        multisets as sets of occurrences (`_bag`): one set operation, made in C. Only
        stems of a length that can reach it are looked at: twice the shorter length is at least
        0.8 of both lengths, so from 2/3 to 3/2 of the length of `stem`."""
        _, n, occurrences = self._bag(stem)
        lengths = self._bag_lengths
        first = bisect_left(lengths, (2 * n + 2) // 3)
        last = bisect_right(lengths, (3 * n) // 2)
        return [
            other
            for other, length, others in self._bags[first:last]
            if 2 * len(occurrences & others) >= (n + length) * 0.8 - 1e-9
        ]

    def _suggest(self, path: str, target: str, bases: Sequence[str]) -> str | None:
        """The existing file closest to what the reference asked for, written as it would be:
        the same file name first (the closest path wins), else a close file name (similarity
        >= 0.8) in a folder named as asked. None rather than a poor guess."""
        import difflib

        names = self._names()
        name = os.path.basename(target)
        stem, ext = os.path.splitext(name)
        wanted_dir = os.path.dirname(target)
        exact = [p for p in names.get(name, []) if p != path]
        close: list[str] = []
        if not exact:
            for similar in self._close_stems(stem.lower()):
                for candidate in self._stems[similar]:
                    if os.path.splitext(candidate)[1] == ext:
                        close.extend(p for p in names[candidate] if p != path)
        best: tuple[float, str] | None = None
        for known in exact or close:
            for base in bases or [os.path.dirname(path)]:
                if not _inside_or_equal(known, base):
                    continue
                rel = os.path.relpath(known, base).replace(os.sep, "/")
                same_dir = os.path.dirname(rel) == wanted_dir
                if not exact and wanted_dir and not same_dir:
                    continue
                score = difflib.SequenceMatcher(None, target, rel).ratio() + (
                    0.5 if same_dir else 0
                )
                if best is None or score > best[0]:
                    best = (score, rel)
        return best[1] if best else None
