#!/usr/bin/env bash
# Put the promptls server and its dependencies into vscode-client/bundled/, for CPython 3.11+ on
# Linux x86-64: `pip install --target` with the given Python, then the compiled modules of the other
# CPython versions (manylinux wheels of the very same releases; their file names carry the ABI, so
# they sit side by side and each interpreter imports its own).
#
#   bundle-server.sh PYTHON REPO_ROOT [PYTHON_VERSIONS...]      (default versions: 3.11 3.12 3.13 3.14)
set -euo pipefail
PY=$1
ROOT=$(cd "$2" && pwd)
shift 2
VERSIONS=("$@")
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(3.11 3.12 3.13 3.14)
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT="$HERE/bundled"
WORK="$HERE/build/bundle"
PIP=("$PY" -m pip --disable-pip-version-check --no-input --quiet)

rm -rf "$OUT" "$WORK"
mkdir -p "$WORK/wheel"
"${PIP[@]}" wheel --no-deps --wheel-dir "$WORK/wheel" "$ROOT"
"${PIP[@]}" install --target "$OUT" --no-compile "$WORK"/wheel/promptls-*.whl

# the exact releases installed, for the other interpreters
"$PY" - "$OUT" > "$WORK/requirements.txt" <<'EOF'
import pathlib, sys
from importlib.metadata import PathDistribution
for info in sorted(pathlib.Path(sys.argv[1]).glob("*.dist-info")):
    dist = PathDistribution(info)
    if dist.metadata["Name"].lower() != "promptls":
        print(f"{dist.metadata['Name']}=={dist.version}")
EOF

HOST=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
other_python() {   # the compiled modules of CPython $1, from manylinux wheels of the same releases
  local version=$1 tag=cp${1/./}
  "${PIP[@]}" install --target "$WORK/$tag" --no-deps --no-compile --only-binary=:all: \
    --implementation cp --python-version "$version" --abi "$tag" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
    -r "$WORK/requirements.txt"
}
pids=()
for version in "${VERSIONS[@]}"; do
  [ "$version" = "$HOST" ] || { other_python "$version" & pids+=($!); }
done
for pid in "${pids[@]}"; do wait "$pid"; done
for version in "${VERSIONS[@]}"; do
  [ "$version" = "$HOST" ] && continue
  # only the compiled modules are new (their names carry the ABI); the rest is the same files
  (cd "$WORK/cp${version/./}" && find . -name "*.cpython-${version/./}-*.so" -print0 |
    while IFS= read -r -d '' so; do mkdir -p "$OUT/$(dirname "$so")" && cp "$so" "$OUT/$so"; done)
done

# what never runs: console scripts, caches, C sources and headers, and the parts of lxml promptls
# does not import (it uses lxml.etree only)
count=$(wc -l < "$WORK/requirements.txt")
rm -rf "$OUT/bin" "$WORK" "$OUT/lxml/includes" "$OUT/lxml/html" "$OUT/lxml/isoschematron" "$OUT"/lxml/objectify.*
find "$OUT" -name __pycache__ -prune -exec rm -rf {} +
find "$OUT" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.c' \) -delete
echo "bundled: $(du -sh "$OUT" | cut -f1) for CPython ${VERSIONS[*]} (promptls and $count dependencies)"
