"""The budget dashboard: one self-contained HTML file drawn from a `report.Report`.

No network: inline CSS, inline SVG, no fonts, no images, a Content-Security-Policy that forbids
any fetch. Every command and file carries `data-path="<relative path>"` on its bar, segment or
row, and links are relative `href`s to the files. A few lines of inline script make those
elements open the file inside a VS Code webview (`acquireVsCodeApi` posts
`{command: "open", path}`); in a browser the plain links work.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

from promptls.report import Change, EntryCost, Report, percent

BAR_WIDTH = 600
BAR_HEIGHT = 22
ROW_HEIGHT = 30

#: Colours of files loaded by several entry files (the same file has the same colour in every
#: bar); files loaded once alternate two greys; the entry file itself is dark.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#86bcb6",
    "#d4a6c8",
    "#a0cbe8",
    "#ffbe7d",
)
SELF_COLOUR = "#3b4a63"
SINGLE_COLOURS = ("#c3ccd6", "#a9b4c2")
BUDGET_COLOUR = "#cf222e"
DECLARED_COLOUR = "#8250df"

_SCRIPT = (
    "(function(){if(typeof acquireVsCodeApi!=='function')return;var vscode=acquireVsCodeApi();"
    "document.addEventListener('click',function(e){var t=e.target;"
    "var el=t&&t.closest?t.closest('[data-path]'):null;if(!el)return;e.preventDefault();"
    "vscode.postMessage({command:'open',path:el.getAttribute('data-path')});});})();"
)

_CSS = """
:root{--fg:var(--vscode-foreground,#1f2328);--bg:var(--vscode-editor-background,#ffffff);
--muted:var(--vscode-descriptionForeground,#59636e);--line:var(--vscode-panel-border,#d1d9e0);
--card:var(--vscode-sideBar-background,#f6f8fa);--link:var(--vscode-textLink-foreground,#0969da);
--bad:#cf222e;--warn:#9a6700;--good:#1a7f37;--over:rgba(207,34,46,.08)}
@media (prefers-color-scheme:dark){:root{--fg:var(--vscode-foreground,#e6edf3);
--bg:var(--vscode-editor-background,#0d1117);--muted:var(--vscode-descriptionForeground,#9198a1);
--line:var(--vscode-panel-border,#30363d);--card:var(--vscode-sideBar-background,#161b22);
--link:var(--vscode-textLink-foreground,#4493f8);--bad:#f85149;--warn:#d29922;--good:#3fb950;
--over:rgba(248,81,73,.12)}}
*{box-sizing:border-box}
body{margin:0;padding:20px 28px;background:var(--bg);color:var(--fg);
font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:20px;margin:0 0 2px}h2{font-size:15px;margin:22px 0 8px}
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.meta{color:var(--muted);margin:0 0 14px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 12px;
min-width:150px}
.card .v{font-size:18px;font-weight:600}.card .l{color:var(--muted);font-size:12px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0 8px;color:var(--muted);
font-size:12px}
.legend svg{vertical-align:-2px;margin-right:4px}
.chart{border-top:1px solid var(--line)}
.row{display:grid;grid-template-columns:280px 600px minmax(0,1fr);gap:12px;align-items:center;
padding:3px 6px;border-bottom:1px solid var(--line);cursor:pointer}
@media (max-width:1240px){.row{grid-template-columns:220px minmax(0,1fr)}
.row .fig{grid-column:2}.row.axis>span{display:none}}
.row:hover{background:var(--card)}
.row.over{background:var(--over)}.row.over .name{color:var(--bad);font-weight:600}
.row.axis{cursor:default;border-bottom:none;padding-bottom:0}.row.axis:hover{background:none}
.row svg{width:100%;height:auto;display:block;overflow:visible}
.name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;direction:rtl;text-align:left}
.name bdi{direction:ltr}
.kind{color:var(--muted);font-size:11px;margin-left:6px}
.fig{color:var(--muted);font-size:12px}.fig .load{color:var(--fg)}
.fig .pct.over{color:var(--bad);font-weight:600}.fig .pct.near{color:var(--warn);font-weight:600}
.badge{display:inline-block;border-radius:8px;padding:0 6px;font-size:11px;font-weight:600;
background:var(--bad);color:#fff;margin-left:4px}
.up{color:var(--bad)}.down{color:var(--good)}.same,.new,.gone{color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:0 28px}
table{border-collapse:collapse;width:100%}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px}
td.num,th.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
tr[data-path]{cursor:pointer}tr[data-path]:hover{background:var(--card)}
td.path{overflow-wrap:normal}
.sev-error{color:var(--bad)}.sev-warning{color:var(--warn)}
details{margin:4px 0}summary{cursor:pointer}
.note{color:var(--muted);font-size:12px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _breakable(path: str) -> str:
    """The escaped path, allowed to wrap only after a `/`."""
    return "/<wbr>".join(_e(part) for part in path.split("/"))


def _href(abspath: str, shown: str, base: str | None) -> str:
    """A relative link from the dashboard's folder (`base`) to a file."""
    if base is not None and abspath:
        try:
            rel = os.path.relpath(abspath, base)
        except ValueError:  # another drive
            rel = shown
    else:
        rel = shown
    return quote(Path(rel).as_posix(), safe="/._-~")


def _change(change: Change | None) -> str:
    if change is None:
        return ""
    title = ""
    if change.before is not None and change.after is not None:
        title = f' title="{change.before:,} → {change.after:,}"'
    return f'<span class="delta {change.direction}"{title}>{_e(change.text())}</span>'


def _colours(report: Report) -> dict[str, str]:
    """A colour for each of the files loaded by the most entry files (two or more); the others
    are grey."""
    shared = [r for r in report.ranked_by_loads() if len(r.loaded_by) >= 2]
    return {r.path: colour for r, colour in zip(shared, PALETTE, strict=False)}


def _scale(report: Report) -> float:
    values = [e.load_tokens for e in report.entries]
    values += [e.declared for e in report.entries if e.declared]
    values += [e.change.before for e in report.entries if e.change and e.change.before]
    if report.load_budget:
        values.append(report.load_budget)
    return max(values or [1]) * 1.04


def _ticks(top: float) -> list[int]:
    raw = top / 6
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [int(i * step) for i in range(int(top // step) + 1)]


def _short(value: int) -> str:
    if value >= 1000:
        text = f"{value / 1000:.1f}".rstrip("0").rstrip(".")
        return f"{text}k"
    return str(value)


def _bar(entry: EntryCost, colours: dict[str, str], scale: float, budget: int | None) -> str:
    def x(v: float) -> float:
        return round(v / scale * BAR_WIDTH, 2)

    parts = [
        f'<svg viewBox="0 0 {BAR_WIDTH} {BAR_HEIGHT}" width="{BAR_WIDTH}" height="{BAR_HEIGHT}" '
        f'role="img" aria-label="{_e(entry.path)}: {entry.load_tokens:,} tokens">'
    ]
    offset = 0
    singles = 0
    for i, seg in enumerate(entry.segments):
        if i == 0:
            fill = SELF_COLOUR
        elif seg.path in colours:
            fill = colours[seg.path]
        else:
            fill = SINGLE_COLOURS[singles % 2]
            singles += 1
        share = seg.tokens / entry.load_tokens if entry.load_tokens else 0
        width = x(offset + seg.tokens) - x(offset)
        parts.append(
            f'<rect class="seg" data-path="{_e(seg.path)}" data-tokens="{seg.tokens}" '
            f'x="{x(offset)}" y="3" width="{max(width, 0)}" height="{BAR_HEIGHT - 6}" '
            f'fill="{fill}" stroke="#ffffff" stroke-width="0.6">'
            f"<title>{_e(seg.path)} ({_e(seg.kind)}): ≈{seg.tokens:,} tokens, "
            f"{share:.0%} of this load</title></rect>"
        )
        offset += seg.tokens
    if entry.over:
        parts.append(
            f'<rect x="0" y="2" width="{x(entry.load_tokens)}" height="{BAR_HEIGHT - 4}" '
            f'fill="none" stroke="{BUDGET_COLOUR}" stroke-width="2"/>'
        )
    if entry.change is not None and entry.change.before:
        parts.append(
            f'<rect class="baseline" x="0" y="1" width="{x(entry.change.before)}" '
            f'height="{BAR_HEIGHT - 2}" fill="none" stroke="#6e7781" stroke-width="1" '
            f'stroke-dasharray="3 2"><title>baseline ≈{entry.change.before:,} tokens</title></rect>'
        )
    if budget:
        bx = x(budget)
        parts.append(
            f'<line class="budget" x1="{bx}" y1="0" x2="{bx}" y2="{BAR_HEIGHT}" '
            f'stroke="{BUDGET_COLOUR}" stroke-width="2" stroke-dasharray="4 2">'
            f"<title>load budget {budget:,}</title></line>"
        )
    if entry.declared:
        dx = x(entry.declared)
        parts.append(
            f'<g class="declared"><title>declared ~{entry.declared:,} tokens</title>'
            f'<line x1="{dx}" y1="1" x2="{dx}" y2="{BAR_HEIGHT - 1}" '
            f'stroke="{DECLARED_COLOUR}" stroke-width="3"/>'
            f'<polygon points="{dx - 5},0 {dx + 5},0 {dx},6" fill="{DECLARED_COLOUR}"/></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _axis(scale: float, budget: int | None) -> str:
    def x(v: float) -> float:
        return round(v / scale * BAR_WIDTH, 2)

    parts = [
        f'<svg viewBox="0 0 {BAR_WIDTH} 30" width="{BAR_WIDTH}" height="30" aria-hidden="true">'
    ]
    for tick in _ticks(scale):
        parts.append(
            f'<line x1="{x(tick)}" y1="22" x2="{x(tick)}" y2="30" stroke="#8c959f"/>'
            f'<text x="{x(tick)}" y="19" font-size="10" fill="#8c959f" '
            f'text-anchor="middle">{_short(tick)}</text>'
        )
    if budget:
        parts.append(
            f'<text x="{x(budget)}" y="8" font-size="10" font-weight="600" '
            f'fill="{BUDGET_COLOUR}" text-anchor="middle">budget {budget:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _swatch(colour: str, kind: str = "box") -> str:
    if kind == "budget":
        shape = (
            f'<line x1="6" y1="0" x2="6" y2="12" stroke="{BUDGET_COLOUR}" stroke-width="2" '
            f'stroke-dasharray="4 2"/>'
        )
    elif kind == "declared":
        shape = (
            f'<line x1="6" y1="2" x2="6" y2="12" stroke="{DECLARED_COLOUR}" stroke-width="3"/>'
            f'<polygon points="1,0 11,0 6,5" fill="{DECLARED_COLOUR}"/>'
        )
    elif kind == "baseline":
        shape = (
            '<rect x="0.5" y="0.5" width="11" height="11" fill="none" stroke="#6e7781" '
            'stroke-dasharray="3 2"/>'
        )
    else:
        shape = f'<rect x="0" y="0" width="12" height="12" rx="2" fill="{colour}"/>'
    return f'<svg viewBox="0 0 12 12" width="12" height="12" aria-hidden="true">{shape}</svg>'


def _entry_figures(entry: EntryCost) -> str:
    bits = [
        f'<b class="load">{entry.load_tokens:,}</b> tok',
        f'<span class="nfiles">{len(entry.segments)}</span> '
        + ("file" if len(entry.segments) == 1 else "files"),
    ]
    share = entry.share
    if share is not None:
        cls = "over" if entry.over else "near" if entry.near else ""
        bits.append(f'<span class="pct {cls}">{share:.0%}</span>')
    if entry.declared:
        off = entry.declared_off
        bits.append(
            f'<span class="declared" title="{percent(off) if off is not None else ""} off">'
            f"declared ~{entry.declared:,}</span>"
        )
    if entry.change is not None:
        bits.append(_change(entry.change))
    out = " · ".join(bits)
    if entry.over:
        out += '<span class="badge">over budget</span>'
    return out


def _rows(
    headers: Sequence[tuple[str, bool]], rows: Iterable[tuple[str, Sequence[str]]], cls: str
) -> str:
    head = "".join(f"<th{' class=num' if num else ''}>{_e(h)}</th>" for h, num in headers)
    body: list[str] = []
    for path, cells in rows:
        tds = "".join(
            f'<td class="{"num" if num else "path" if i == 0 else ""}">{cell}</td>'
            for i, ((_, num), cell) in enumerate(zip(headers, cells, strict=True))
        )
        attr = f' data-path="{_e(path)}"' if path else ""
        body.append(f"<tr{attr}>{tds}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="note">nothing to show</td></tr>')
    return (
        f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def render_html(report: Report, link_base: str | None = None, nonce: str | None = None) -> str:
    """The dashboard. `link_base`: the folder the HTML file will be in (links are relative to
    it); `nonce`: allow the inline style and script by nonce instead of `'unsafe-inline'`."""
    colours = _colours(report)
    scale = _scale(report)
    budget = report.load_budget
    totals = report.totals
    counts = dict(totals.severities)

    def link(abspath: str, path: str, wrap: bool = True) -> str:
        text = _breakable(path) if wrap else _e(path)
        return f'<a href="{_href(abspath, path, link_base)}"><bdi>{text}</bdi></a>'

    allow = f"'nonce-{_e(nonce)}'" if nonce else "'unsafe-inline'"
    nonce_attr = f' nonce="{_e(nonce)}"' if nonce else ""
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        f'style-src {allow}; script-src {allow}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="promptls">',
        "<title>promptls: budget dashboard</title>",
        f"<style{nonce_attr}>{_CSS}</style></head><body>",
        "<h1>Budget dashboard</h1>",
    ]
    meta = [
        f"{totals.files} files",
        f"≈{totals.tokens:,} tokens",
        _e(report.encoding),
        f"load budget {budget:,}" if budget else "no load budget",
        f"promptls {_e(report.tool_version)}",
    ]
    if report.baseline is not None:
        when = report.baseline.created or "undated"
        meta.append(f"compared with the baseline of {_e(when)}")
    out.append(f'<p class="meta">{" · ".join(meta)}</p>')

    cards = [
        (
            f"≈{totals.tokens:,}",
            f"tokens in {totals.files} files {_change(totals.tokens_change)}",
        ),
        (
            f"{totals.entries}",
            f"entry files, {totals.over_budget} over the load budget",
        ),
        (
            f"≈{totals.load_tokens:,}",
            f"tokens loaded across every entry file {_change(totals.load_tokens_change)}",
        ),
        (
            f"−{totals.compressible:,}",
            f"tokens of verified compression {_change(totals.compressible_change)}",
        ),
        (
            f"{counts.get('error', 0)} / {counts.get('warning', 0)}",
            f"errors / warnings ({counts.get('information', 0)} information, "
            f"{counts.get('hint', 0)} hints)",
        ),
    ]
    out.append('<div class="cards">')
    for value, label in cards:
        out.append(
            f'<div class="card"><div class="v">{value}</div><div class="l">{label}</div></div>'
        )
    out.append("</div>")

    # -- the bars ------------------------------------------------------------------------------
    out.append('<section id="loads"><h2>Load cost per command and entry file</h2>')
    legend = [
        f"<span>{_swatch(SELF_COLOUR)}the file itself</span>",
        f"<span>{_swatch(SINGLE_COLOURS[0])}files only it loads</span>",
    ]
    legend += [
        f'<span data-path="{_e(path)}">{_swatch(colour)}<code>{_e(path)}</code></span>'
        for path, colour in colours.items()
    ]
    legend.append(f"<span>{_swatch('', 'budget')}load budget</span>")
    legend.append(f"<span>{_swatch('', 'declared')}declared &lt;context_budget&gt;</span>")
    if report.baseline is not None:
        legend.append(f"<span>{_swatch('', 'baseline')}baseline</span>")
    out.append(f'<div class="legend">{"".join(legend)}</div>')
    out.append('<div class="chart">')
    out.append(f'<div class="row axis"><span></span>{_axis(scale, budget)}<span></span></div>')
    for entry in report.entries:
        cls = "row entry over" if entry.over else "row entry"
        out.append(
            f'<div class="{cls}" data-path="{_e(entry.path)}" data-kind="{_e(entry.kind)}">'
            f'<span class="name">{link(entry.abspath, entry.path, wrap=False)}</span>'
            f"{_bar(entry, colours, scale, budget)}"
            f'<span class="fig"><span class="kind">{_e(entry.kind)}</span> '
            f"{_entry_figures(entry)}</span></div>"
        )
    for path in report.removed_entries:
        out.append(
            f'<div class="row entry gone" data-path="{_e(path)}"><span class="name">'
            f'<bdi>{_e(path)}</bdi></span><span class="note">removed since the baseline</span>'
            "<span></span></div>"
        )
    out.append("</div></section>")

    # -- the tables ----------------------------------------------------------------------------
    total_tokens = totals.tokens or 1
    out.append('<div class="grid"><section id="largest"><h2>Largest files</h2>')
    out.append(
        _rows(
            [
                ("file", False),
                ("kind", False),
                ("tokens", True),
                ("share", True),
                ("loaded by", True),
                ("change", True),
            ],
            (
                (
                    r.path,
                    [
                        link(r.abspath, r.path),
                        _e(r.kind),
                        f"{r.tokens:,}",
                        f"{r.tokens / total_tokens:.1%}",
                        str(len(r.loaded_by)),
                        _change(r.tokens_change),
                    ],
                )
                for r in report.largest()
            ),
            "largest",
        )
    )
    out.append('</section><section id="most-loaded"><h2>Loaded by the most entry files</h2>')
    out.append(
        _rows(
            [
                ("file", False),
                ("loaded by", True),
                ("tokens", True),
                ("tokens × loaded by", True),
                ("change", True),
            ],
            (
                (
                    r.path,
                    [
                        link(r.abspath, r.path),
                        f'<span title="{_e(", ".join(r.loaded_by))}">{len(r.loaded_by)}</span>',
                        f"{r.tokens:,}",
                        f"{r.weighted:,}",
                        _change(r.weighted_change),
                    ],
                )
                for r in report.most_loaded()
            ),
            "most-loaded",
        )
    )
    out.append("</section></div>")

    out.append('<div class="grid"><section id="compression"><h2>Compression available</h2>')
    compression = report.compression()
    out.append(
        _rows(
            [
                ("file", False),
                ("blocks", True),
                ("saving", True),
                ("of the file", True),
                ("× loaded by", True),
                ("change", True),
            ],
            (
                (
                    r.path,
                    [
                        link(r.abspath, r.path),
                        str(r.blocks),
                        f"−{r.compressible:,}",
                        f"{r.compressible / r.tokens:.0%}" if r.tokens else "",
                        f"−{r.weighted_saving:,}",
                        _change(r.compressible_change),
                    ],
                )
                for r in compression[: report.top]
            ),
            "compression",
        )
    )
    if len(compression) > report.top:
        rest = sum(r.compressible for r in compression[report.top :])
        out.append(
            f'<p class="note">and {len(compression) - report.top} more files '
            f"(−{rest:,} tokens); <code>promptls compress --diff</code> shows every block.</p>"
        )
    out.append('</section><section id="codes"><h2>Findings by code</h2>')
    severities = ("error", "warning", "information", "hint")
    out.append(
        _rows(
            [
                ("code", False),
                ("errors", True),
                ("warnings", True),
                ("information", True),
                ("hints", True),
                ("total", True),
                ("change", True),
            ],
            (
                (
                    "",
                    [
                        f'<code title="{_e(c.description)}">{_e(c.code)}</code>',
                        *(str(dict(c.by_severity).get(s, "")) for s in severities),
                        f"<b>{c.count}</b>",
                        _change(c.change),
                    ],
                )
                for c in report.codes
            ),
            "codes",
        )
    )
    out.append("</section></div>")

    out.append('<section id="findings"><h2>Findings</h2>')
    for c in report.codes:
        if not c.count:
            continue
        items = [f for f in report.findings if f.code == c.code]
        out.append(
            f"<details><summary><code>{_e(c.code)}</code> ({c.count}) "
            f'<span class="note">{_e(c.description)}</span></summary>'
        )
        out.append(
            _rows(
                [("where", False), ("severity", False), ("message", False)],
                (
                    (
                        f.path,
                        [
                            f'<a href="{_href(f.abspath, f.path, link_base)}">'
                            f"<bdi>{_e(f.path)}:{f.line + 1}:{f.character + 1}</bdi></a>",
                            f'<span class="sev-{f.severity.label}">{f.severity.label}</span>',
                            _e(f.message),
                        ],
                    )
                    for f in items
                ),
                "findings",
            )
        )
        out.append("</details>")
    if report.errors:
        out.append("<h2>Unreadable files</h2><ul>")
        out.extend(
            f'<li data-path="{_e(p)}"><code>{_e(p)}</code>: {_e(m)}</li>' for p, m in report.errors
        )
        out.append("</ul>")
    out.append("</section>")
    out.append(
        '<p class="note">Counts are tiktoken estimates (≈). A file&#39;s <i>loaded by</i> is the '
        "number of entry files (commands, memory files, agents, skills, output styles) whose load "
        "set holds it: a saving there pays that many times.</p>"
    )
    out.append(f"<script{nonce_attr}>{_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"
