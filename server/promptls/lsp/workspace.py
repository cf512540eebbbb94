"""Workspace features: settings (`workspace/configuration`), background indexing with progress,
and watched files keeping the index current when files change outside the editor."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from typing import Any

from lsprotocol import types

from promptls.lsp.convert import uri_to_path
from promptls.lsp.server import PromptLanguageServer

log = logging.getLogger("promptls")

WATCH_GLOBS = ("**/*.md", "**/*.xml", "**/*.txt", "**/.promptls.toml")


def _supports(value: Any) -> bool:
    return bool(value)


async def _pull_configuration(ls: PromptLanguageServer) -> dict[str, Any] | None:
    caps = ls.client_capabilities.workspace
    if not (caps and caps.configuration):
        return None
    folders = list(ls.workspace.folders.values())
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(
                items=[
                    types.ConfigurationItem(
                        section="promptls", scope_uri=folders[0].uri if folders else None
                    )
                ]
            )
        )
    except Exception as exc:  # a client that fails the request keeps the project settings
        log.warning("workspace/configuration failed: %s", exc)
        return None
    value = result[0] if result else None
    return value if isinstance(value, dict) else {}


def _show_problems(ls: PromptLanguageServer, problems: list[str]) -> None:
    for problem in problems:
        ls.window_log_message(
            types.LogMessageParams(type=types.MessageType.Warning, message=f"settings: {problem}")
        )
    if problems:
        ls.window_show_message(
            types.ShowMessageParams(
                type=types.MessageType.Warning,
                message=f"promptls: {len(problems)} invalid setting(s), defaults used: "
                + "; ".join(problems[:3]),
            )
        )


async def reindex(ls: PromptLanguageServer) -> None:
    """Build a fresh index and fill it in a worker thread, reporting work-done progress. On the
    first build, files already open get what they show on their own first (on a rebuild they
    keep what they showed until the new index is ready)."""
    from promptls.lsp.diagnostics import publish_early, refresh_all

    ls.set_ready(False)
    gc.unfreeze()  # the previous index may be garbage now
    first = ls.index is None
    index = ls.build_index()
    generation = ls.generation
    for uri in ls.open_uris() if first else ():
        publish_early(ls, uri)
    loop = asyncio.get_running_loop()
    reporting: list[str] = []  # the progress token, once the client has made it
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if not reporting or (now - last[0] < 0.1 and done < total):
            return
        last[0] = now
        percentage = int(done * 100 / total) if total else 100
        loop.call_soon_threadsafe(
            ls.work_done_progress.report,
            reporting[0],
            types.WorkDoneProgressReport(message=f"{done}/{total} files", percentage=percentage),
        )

    started = time.perf_counter()
    # Indexing starts at once; the progress bar is set up with the client meanwhile.
    job = loop.run_in_executor(None, lambda: index.index(progress=progress))
    window = ls.client_capabilities.window
    if window and window.work_done_progress:
        token = f"promptls-index-{uuid.uuid4().hex[:8]}"
        try:
            await ls.work_done_progress.create_async(token)
            ls.work_done_progress.begin(
                token,
                types.WorkDoneProgressBegin(
                    title="promptls: indexing", percentage=0, cancellable=False
                ),
            )
            reporting.append(token)
        except Exception as exc:
            log.warning("progress unavailable: %s", exc)
    try:
        await job
    except Exception as exc:
        log.exception("indexing failed")
        ls.window_show_message(
            types.ShowMessageParams(
                type=types.MessageType.Error, message=f"promptls: indexing failed: {exc}"
            )
        )
    ls.stats.indexing_seconds = time.perf_counter() - started
    if reporting:
        ls.work_done_progress.end(
            reporting[0], types.WorkDoneProgressEnd(message=f"{len(index.files)} files indexed")
        )
    if generation != ls.generation:
        return  # a newer rebuild took over
    ls.set_ready(True)
    ls.early = None
    from promptls.lsp.sync import resume_edits_later

    for uri in ls.open_uris():
        ls.reanalyse(uri, notify=False)
        resume_edits_later(ls, uri)
    refresh_all(ls)
    # The index is long-lived: keep the cyclic garbage collector from walking it again and
    # again (a full collection over it is a pause of a keystroke's latency many times over).
    gc.freeze()


def initialize(ls: PromptLanguageServer, params: types.InitializeParams) -> None:
    """Watch the client process: when it dies, the server ends too (no orphan servers). (The
    default encoding is already loading: `serve` started it with the process.)"""
    if params.process_id:
        watch_parent(params.process_id)


def watch_parent(pid: int, interval: float = 0.5) -> None:
    """End this process soon after process `pid` is gone."""
    import os
    import threading

    def watch() -> None:
        while True:
            time.sleep(interval)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                log.warning("client process %d is gone: exiting", pid)
                os._exit(0)
            except PermissionError:
                pass  # it exists, owned by someone else

    threading.Thread(target=watch, name="promptls-parent-watch", daemon=True).start()


async def initialized(ls: PromptLanguageServer, params: types.InitializedParams) -> None:
    """Pull settings, register file watching, index the workspace in the background."""
    editor = await _pull_configuration(ls)
    _show_problems(ls, ls.load_settings(editor))
    registering = _watch_files(ls)
    if registering is not None:
        ls.tasks.add(registering)
        registering.add_done_callback(ls.tasks.discard)
    await reindex(ls)


def _watch_files(ls: PromptLanguageServer) -> asyncio.Future[None] | None:
    """Ask the client to report changes to prompt files; the request goes out at once, and the
    index starts without waiting for the answer."""
    caps = ls.client_capabilities.workspace
    watch = caps.did_change_watched_files if caps else None
    if not (watch and watch.dynamic_registration):
        return None

    async def register() -> None:
        try:
            await ls.client_register_capability_async(
                types.RegistrationParams(
                    registrations=[
                        types.Registration(
                            id="promptls-watch",
                            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                            register_options=types.DidChangeWatchedFilesRegistrationOptions(
                                watchers=[
                                    types.FileSystemWatcher(glob_pattern=g) for g in WATCH_GLOBS
                                ]
                            ),
                        )
                    ]
                )
            )
        except Exception as exc:
            log.warning("could not register file watching: %s", exc)

    return asyncio.ensure_future(register())


async def did_change_configuration(
    ls: PromptLanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    """Settings changed: pull them again and re-analyse everything, without a restart."""
    editor = await _pull_configuration(ls)
    if editor is None and isinstance(params.settings, dict):
        value = params.settings.get("promptls", params.settings)
        editor = value if isinstance(value, dict) else None
    _show_problems(ls, ls.load_settings(editor))
    await reindex(ls)


async def did_change_watched_files(
    ls: PromptLanguageServer, params: types.DidChangeWatchedFilesParams
) -> None:
    """Files created, changed or deleted outside the editor."""
    index = ls.index
    if index is None:
        return
    affected: set[str] = set()
    config_changed = False
    with index.changes() as settled:  # (references resolved again once, at the end)
        for change in params.changes:
            path = uri_to_path(change.uri)
            if path is None or not index.workspace.contains(path):
                continue
            if path.endswith(".promptls.toml"):
                config_changed = True
                continue
            if change.uri in ls.workspace.text_documents:
                continue  # the editor's buffer wins over the disk
            if change.type == types.FileChangeType.Deleted:
                affected |= index.remove(path)
            else:
                with ls.lock:
                    if index.workspace.kind(path) != "other" or index.get(path) is not None:
                        affected |= index.update(path)
                    else:
                        affected |= index.appeared(path)
    affected |= settled
    if config_changed:
        _show_problems(ls, ls.load_settings(None))
        await reindex(ls)
        return
    from promptls.lsp.diagnostics import publish_affected

    publish_affected(ls, affected)


async def did_change_workspace_folders(
    ls: PromptLanguageServer, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    """Folders added or removed: index again."""
    await reindex(ls)


def exit_now(ls: PromptLanguageServer, params: Any = None) -> None:
    """`exit`: end the process at once (0 after `shutdown`, else 1), even while a worker thread
    is busy; pygls would close stdout and wait for the threads."""
    from promptls.lsp.server import end_process

    end_process(0 if getattr(ls.protocol, "_shutdown", False) else 1)


def register(server: PromptLanguageServer) -> None:
    """Register the workspace features."""
    server.feature(types.EXIT)(exit_now)
    server.feature(types.INITIALIZE)(initialize)
    server.feature(types.INITIALIZED)(initialized)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(did_change_configuration)
    server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(did_change_watched_files)
    server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(did_change_workspace_folders)
