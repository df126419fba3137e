#!/usr/bin/env bash
# Installs the peers for bench/peers.py into bench/peers/node_modules (git-ignored). Idempotent:
# does nothing when the pinned versions are already there and working; prints what it did.
#
#   n8n 1.99.1   npm `overrides: {"xlsx": "0.18.5"}` (n8n's own xlsx dependency points at a CDN
#                tarball outside the npm registry), `npm install --ignore-scripts` (the optional
#                isolated-vm native build fails against this machine's Node headers; n8n 1.99.x
#                does not need it), then `npm rebuild sqlite3` (n8n's database driver).
#   node-red 4.1.8  (Node-RED 5 needs Node.js 22; 4.1.x runs on Node.js 20)
#
# Also installs the load generator `oha` (cargo install oha --locked) if it is missing, as
# bench/run.sh does. Needs Node.js >= 20.19 and npm.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf 'peers/install.sh: %s\n' "$*" >&2; }

command -v node >/dev/null || { say "node not found (need Node.js >= 20.19)"; exit 1; }
command -v npm >/dev/null || { say "npm not found"; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' \
  || { say "Node.js $(node --version) is too old: n8n 1.99 needs >= 20.19"; exit 1; }

want_n8n="$(node -p 'require("./package.json").dependencies.n8n')"
want_nr="$(node -p 'require("./package.json").dependencies["node-red"]')"
have() { node -p "try{require('./node_modules/$1/package.json').version}catch(e){''}" 2>/dev/null; }

installed_ok() {
  [[ "$(have n8n)" == "$want_n8n" && "$(have node-red)" == "$want_nr" ]] || return 1
  # sqlite3's native binding is built by `npm rebuild sqlite3`, not by the install
  node -e 'require("sqlite3")' >/dev/null 2>&1 || return 2
  return 0
}

rc=0; installed_ok || rc=$?
if [[ $rc == 0 ]]; then
  say "n8n $want_n8n and node-red $want_nr already installed in $HERE/node_modules: nothing to do"
else
  if [[ $rc == 1 ]]; then
    say "npm install --ignore-scripts (n8n $want_n8n, node-red $want_nr, override xlsx 0.18.5); takes a few minutes"
    npm install --ignore-scripts --no-audit --no-fund
  fi
  say "npm rebuild sqlite3 (native binding for n8n's SQLite database)"
  npm rebuild sqlite3
  installed_ok || { say "install did not produce working n8n/node-red/sqlite3"; exit 1; }
  say "installed n8n $(have n8n), node-red $(have node-red) in $HERE/node_modules"
fi

if command -v oha >/dev/null 2>&1; then
  say "oha present: $(command -v oha) ($(oha --version))"
else
  say "installing oha (cargo install oha --locked)"
  cargo install oha --locked
fi
