#!/usr/bin/env bash
# Builds the Python plugins in this directory into WebAssembly components with componentize-py.
#
#   plugins/python/build.sh            # every plugin: <dir>/<dir>.wasm
#   plugins/python/build.sh pii-mask   # just one
#
# componentize-py comes from PyPI into a virtualenv next to this script (.venv, gitignored);
# set COMPONENTIZE_PY to use another binary instead. A plugin is rebuilt only when its
# component is older than its Python sources, the WIT files or this script.
#
# Exit status: 0 built (or up to date), 3 componentize-py could not be installed (no python3,
# no venv module, no access to PyPI: the e2e test skips then), anything else a failed build.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

here="$(cd "$(dirname "$0")" && pwd)"
wit="$here/../../wit"
venv="$here/.venv"

componentize_py() {
    if [[ -n "${COMPONENTIZE_PY:-}" ]]; then
        echo "$COMPONENTIZE_PY"
        return
    fi
    local bin="$venv/bin/componentize-py"
    if [[ ! -x "$bin" ]] || [[ "$("$bin" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]]; then
        echo "== installing componentize-py $COMPONENTIZE_PY_VERSION into $venv" >&2
        if ! command -v python3 >/dev/null; then
            echo "componentize-py cannot be installed: python3 is not on PATH" >&2
            return 3
        fi
        if ! python3 -m venv "$venv" >&2; then
            echo "componentize-py cannot be installed: python3 -m venv failed (install python3-venv)" >&2
            return 3
        fi
        if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "componentize-py==$COMPONENTIZE_PY_VERSION" >&2; then
            echo "componentize-py cannot be installed: pip install componentize-py==$COMPONENTIZE_PY_VERSION failed (no access to PyPI?)" >&2
            return 3
        fi
    fi
    echo "$bin"
}

# True when $1 exists and is newer than every other argument (files or directories' files).
up_to_date() {
    local out="$1"
    shift
    [[ -f "$out" ]] || return 1
    [[ -z "$(find "$@" -type f \( -name '*.py' -o -name '*.wit' -o -name 'build.sh' \) -newer "$out" -print -quit)" ]]
}

# One build at a time (tests running in parallel may all ask for the plugin).
if command -v flock >/dev/null; then
    exec 9>"$here/.build.lock"
    flock 9
fi

if [[ $# -gt 0 ]]; then
    plugins=("$@")
else
    plugins=()
    for app in "$here"/*/app.py; do
        plugins+=("$(basename "$(dirname "$app")")")
    done
fi

for name in "${plugins[@]}"; do
    dir="$here/$name"
    out="$dir/$name.wasm"
    [[ -f "$dir/app.py" ]] || { echo "no plugin at $dir (app.py missing)" >&2; exit 2; }
    if up_to_date "$out" "$dir" "$wit" "$here/build.sh"; then
        echo "$name: up to date ($out)"
        continue
    fi
    bin="$(componentize_py)" || exit $?
    echo "== building $name with $("$bin" --version)"
    # The world is hookflow's `plugin` world. componentize-py imports every interface of the
    # world, used or not, so a plugin that ships `wit/` (package `hookflow-python:<name>`,
    # world `<name>`) narrows it to what it uses with `--intersect-world`.
    wit_args=(-d "$wit" -w plugin)
    narrow=()
    if [[ -d "$dir/wit" ]]; then
        world="$(sed -n 's/^package \([^:]*\):\([^@]*\)@\(.*\);/\1:\2\/\2@\3/p' "$wit/plugin.wit")"
        wit_args=(-d "$wit" -d "$dir/wit" -w "$world")
        narrow=(--intersect-world "hookflow-python:$name/$name")
    fi
    # --stub-wasi: CPython links against all of WASI (sockets included), which hookflow does
    # not grant; stubbed, the component imports only hookflow:plugin/* and whatever would
    # reach WASI at run time (print, time, os) traps. Build to a temporary file so an
    # interrupted build never leaves a truncated component that looks up to date.
    (cd "$dir" && "$bin" "${wit_args[@]}" componentize --stub-wasi ${narrow[@]+"${narrow[@]}"} app -o "$out.tmp")
    mv "$out.tmp" "$out"
    echo "$name: $(wc -c <"$out") bytes -> $out"
done
