"""`promptls/report` `{format: "html"|"json", baseline?, nonce?}`: the budget dashboard.

The same report as `promptls report`, from the server's index (unsaved buffers included). With
`format: "html"` the answer's `html` is the dashboard for a webview (clicking a command or file
posts `{command: "open", path}`, `path` relative to the first workspace folder); with `"json"`
its `report` is the report model. `baseline` is a path (relative to the first workspace folder)
or `false`; by default `.promptls/baseline.json` is used when it exists. `nonce` allows the
inline style and script by nonce (the webview's Content-Security-Policy) instead of
`'unsafe-inline'`.
"""

from __future__ import annotations

import os
from typing import Any

from promptls.lsp.convert import path_to_uri
from promptls.lsp.server import PromptLanguageServer

REPORT = "promptls/report"


def _param(params: Any, name: str) -> Any:
    if isinstance(params, dict):
        return params.get(name)
    return getattr(params, name, None)


async def report_request(ls: PromptLanguageServer, params: Any) -> dict[str, Any]:
    """Build the report now (after the index is complete)."""
    from promptls.dashboard import render_html
    from promptls.report import (
        DEFAULT_BASELINE,
        Baseline,
        BaselineError,
        build_report,
        loads_baseline,
        report_json,
    )

    fmt = _param(params, "format") or "html"
    if fmt not in ("html", "json"):
        raise ValueError(f"format must be html or json, not {fmt!r}")
    await ls.wait_ready()
    index = ls.index
    if index is None or not index.workspace.folders:
        raise ValueError("no workspace folder is open")
    root = index.workspace.folders[0]
    wanted = _param(params, "baseline")
    baseline: Baseline | None = None
    problem: str | None = None
    if wanted is not False:
        name = wanted if isinstance(wanted, str) and wanted else DEFAULT_BASELINE
        path = os.path.realpath(os.path.join(root, name))
        if not index.workspace.contains(path):
            problem = f"{name}: outside the workspace; not read"
        elif os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as handle:
                    baseline = loads_baseline(handle.read(), name)
            except (OSError, BaselineError) as exc:
                problem = f"{name}: {exc}"
        elif wanted:
            problem = f"{name}: no such file"
    with ls.lock:
        report = build_report(index, baseline=baseline)
    answer: dict[str, Any] = {
        "format": fmt,
        "root": path_to_uri(root),
        "folders": [path_to_uri(f) for f in index.workspace.folders],
        "baseline": baseline.source if baseline is not None else None,
        "problem": problem,
    }
    if fmt == "html":
        nonce = _param(params, "nonce")
        answer["html"] = render_html(
            report, link_base=root, nonce=nonce if isinstance(nonce, str) and nonce else None
        )
    else:
        answer["report"] = report_json(report)
    return answer


def register(server: PromptLanguageServer) -> None:
    """Register `promptls/report`."""
    server.feature(REPORT)(report_request)
