#!/usr/bin/env bash
# End-to-end test of the VS Code extension in the real editor: install the .vsix into code-server
# 4.100.3 (VS Code 1.100.3), open a copy of examples/ in headless Chromium, and check what a user
# sees (tests/vscode/drive.js). Usage: tests/vscode/run.sh VSIX   (`make vscode-test` builds it).
#
# Environment: PROMPTLS_E2E_ENABLE=quickfix,codelens,inlay (or `all`) also runs the checks of
# features still pending in the server; PROMPTLS_E2E_KEEP=1 keeps the run's temporary folder.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VSIX=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -f "$VSIX" ] || { echo "no such .vsix: $1" >&2; exit 2; }
PROMPTLS=${PROMPTLS:-$REPO/.venv/bin/promptls}
OUT="$REPO/tests/output"
T0=$(date +%s)
lap() { echo "[vscode-e2e] $1 ($(( $(date +%s) - T0 )) s)"; }

"$HERE/setup.sh"
lap "dependencies ready"
CS="$HERE/.cache/code-server/node_modules/.bin/code-server"

# Everything of this run lives in one temporary folder: HOME, XDG_*, code-server's user data and
# extensions, and the copy of examples/ the test edits.
RUN=$(mktemp -d "${TMPDIR:-/tmp}/promptls-vscode.XXXXXX")
export HOME="$RUN/home"
export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share"
export XDG_STATE_HOME="$HOME/.local/state" XDG_CACHE_HOME="$HOME/.cache" XDG_RUNTIME_DIR="$RUN/xdg-run"
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$OUT"
rm -rf "$OUT/vscode-logs" "$OUT"/vscode-fail-*.png   # what an earlier failed run left
chmod 700 "$XDG_RUNTIME_DIR"
WS="$RUN/examples"
cp -r "$REPO/examples" "$WS"
# A folder no default kind takes, made a prompt folder by the workspace's .promptls.toml: the
# client must read its [kinds] to hand those files to the server (check project-kinds).
[ ! -e "$WS/.promptls.toml" ] || { echo "examples/ has a .promptls.toml: merge the [kinds] below into it" >&2; exit 2; }
cat > "$WS/.promptls.toml" <<'EOF'
[kinds]
module = ["**/.claude/**/*.md", "playbooks/**/*.md"]
EOF
mkdir -p "$WS/playbooks"
cat > "$WS/playbooks/release.md" <<'EOF'
# Release

```xml
<playbook name="release">
  <step>Tag the release and write the changelog entry.</step>
  <step>Publish the package.</step>
</playbook>
```
EOF
DATA="$RUN/data"
EXT="$RUN/extensions"
mkdir -p "$DATA/User"
cat > "$DATA/User/settings.json" <<'EOF'
{
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.enableExperiments": false,
  "workbench.editor.enablePreview": false,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "extensions.ignoreRecommendations": true,
  "update.mode": "none",
  "git.enabled": false,
  "files.autoSave": "off",
  "editor.inlayHints.enabled": "on",
  "editor.codeLens": true,
  "chat.commandCenter.enabled": false,
  "promptls.trace.server": "messages"
}
EOF

CS_PID=
cleanup() {
  local status=$?
  if [ -n "$CS_PID" ]; then kill -- -"$CS_PID" 2>/dev/null || true; wait "$CS_PID" 2>/dev/null || true; fi
  if [ $status -ne 0 ] && [ -d "$DATA/logs" ]; then
    rm -rf "$OUT/vscode-logs" && cp -r "$DATA/logs" "$OUT/vscode-logs" 2>/dev/null || true
    cp "$RUN/code-server.log" "$OUT/vscode-logs/" 2>/dev/null || true
    echo "[vscode-e2e] logs of the failed run: tests/output/vscode-logs/"
  fi
  if [ "${PROMPTLS_E2E_KEEP:-}" = 1 ]; then echo "[vscode-e2e] kept $RUN"; else rm -rf "$RUN"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$CS" --extensions-dir "$EXT" --user-data-dir "$DATA" --install-extension "$VSIX" > "$RUN/install.log" 2>&1 \
  || { cat "$RUN/install.log"; exit 1; }
lap "installed $(basename "$VSIX")"

# the CLI's figures for the same files, to compare with what the editor shows
( cd "$WS" && "$PROMPTLS" check . --format json > "$RUN/expected.json" ) || [ $? -eq 1 ]

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid "$CS" --bind-addr "127.0.0.1:$PORT" --auth none --disable-workspace-trust --disable-telemetry \
  --disable-update-check --disable-getting-started-override --ignore-last-opened \
  --user-data-dir "$DATA" --extensions-dir "$EXT" "$WS" > "$RUN/code-server.log" 2>&1 &
CS_PID=$!
for _ in $(seq 1 120); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
  kill -0 "$CS_PID" 2>/dev/null || { cat "$RUN/code-server.log"; exit 1; }
  sleep 0.5
done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" || { echo "code-server did not come up"; cat "$RUN/code-server.log"; exit 1; }
lap "code-server up on port $PORT"

status=0
CS_URL="http://127.0.0.1:$PORT/?folder=$WS" WS="$WS" EXPECTED="$RUN/expected.json" OUT="$OUT" \
  timeout 300 node "$HERE/drive.js" || status=$?
lap "done"
exit $status
