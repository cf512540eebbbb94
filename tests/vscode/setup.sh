#!/usr/bin/env bash
# Install what the VS Code end-to-end test needs, each step only when missing (reruns take ~1 s):
#   apt: chromium, ripgrep, and the headers/compilers code-server's native modules build with;
#   code-server 4.100.3 (VS Code 1.100.3, the last line that runs on Node 20), cached under
#   tests/vscode/.cache/code-server; playwright-core (tests/vscode/node_modules).
# code-server's own install script refuses root and downloads from GitHub, so it is installed
# with --ignore-scripts and its post-install steps are redone here (Debian's rg replaces the
# downloaded one; native modules build against /usr/include/node).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE="$HERE/.cache"
CS_VERSION=4.100.3
CS_DIR="$CACHE/code-server"
CS_STAMP="$CS_DIR/.installed-$CS_VERSION"

export HOME="$CACHE/home"                      # npm's cache and logs stay inside the test's folder
export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share"
export XDG_STATE_HOME="$HOME/.local/state" XDG_CACHE_HOME="$HOME/.cache"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
mkdir -p "$HOME"

log() { echo "[vscode-e2e setup] $*"; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_deps() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v rg >/dev/null 2>&1 || missing+=(ripgrep)
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  command -v make >/dev/null 2>&1 || missing+=(make)
  dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

code_server() {
  [ -f "$CS_STAMP" ] && return 0
  log "installing code-server $CS_VERSION into $CS_DIR (first run only, a few minutes)"
  rm -rf "$CS_DIR" && mkdir -p "$CS_DIR"
  (
    cd "$CS_DIR"
    export npm_config_nodedir=/usr    # node-gyp: build against /usr/include/node, never download headers
    export npm_config_yes=true        # node-pty's install runs `npx node-gyp`, which needs a yes without a TTY
    echo '{"name":"cs-host","private":true}' > package.json
    npm install --no-audit --no-fund --ignore-scripts --loglevel=error "code-server@$CS_VERSION"
    npm rebuild argon2 --loglevel=error    # its prebuilt download fails here: falls back to node-gyp
    cd node_modules/code-server/lib/vscode
    npm install --no-audit --no-fund --omit=dev --ignore-scripts --loglevel=error
    # @vscode/ripgrep's install downloads rg from GitHub unless bin/ exists: use Debian's
    mkdir -p node_modules/@vscode/ripgrep/bin
    ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
    npm rebuild --no-audit --no-fund --loglevel=error   # node-pty, spdlog, kerberos, watchers...
    # the rest of code-server's postinstall.sh
    rm -rf node_modules.asar && ln -s node_modules node_modules.asar
    (cd bin/remote-cli && rm -rf code-server && ln -s code-linux.sh code-server)
    (cd bin/helpers && rm -rf browser.sh && ln -s browser-linux.sh browser.sh)
    (cd extensions && npm install --no-audit --no-fund --omit=dev --loglevel=error)
  ) > "$CACHE/code-server-install.log" 2>&1 || {
    log "code-server install failed; last lines of $CACHE/code-server-install.log:"
    tail -40 "$CACHE/code-server-install.log"
    return 1
  }
  touch "$CS_STAMP"
}

playwright() {
  [ -f "$HERE/node_modules/playwright-core/package.json" ] && return 0
  log "npm ci (playwright-core)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
}

apt_deps
code_server
playwright
