#!/bin/sh
# Bootstrap: install npm dependencies, the Debian packages Cohort runs (Redis, NATS, Chromium), then build.
# Run by `npm start`, `npm test` and `npm run bench`. Idempotent, and silent when everything is present.
set -eu
cd "$(dirname "$0")/.."

say() { printf 'bootstrap: %s\n' "$*" >&2; }

# 1. npm dependencies, when missing or older than package-lock.json.
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] ||
  [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say 'installing npm dependencies (npm ci); warnings about npm config keys can be ignored'
  # Always the lock file, never a re-resolution: the lock lists every platform's optional packages
  # (esbuild's and msgpackr-extract's), so `npm ci` works on any OS and CPU.
  npm ci --no-audit --no-fund --loglevel=error
fi

# 2. Debian packages for the binaries that are missing. Debian puts nats-server in /usr/sbin.
has() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}
missing=''
has redis-server || missing="$missing redis-server"
has nats-server || missing="$missing nats-server"
has chromium || missing="$missing chromium"
if [ -n "$missing" ]; then
  cmd="apt-get update && apt-get install -y --no-install-recommends$missing"
  if [ "$(id -u)" -eq 0 ]; then
    sudo=''
  elif command -v sudo >/dev/null 2>&1; then
    sudo='sudo'
    [ -t 0 ] || sudo='sudo -n'
  else
    say "missing:$missing. Install them with:"
    say "  sudo sh -c '$cmd'"
    exit 1
  fi
  say "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086 # $missing is a list of package names
  if ! { $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends $missing; }; then
    say "could not install$missing. Install them with:"
    say "  sudo sh -c '$cmd'"
    exit 1
  fi
fi

# 3. Build (TypeScript -> dist/).
npm run -s build
