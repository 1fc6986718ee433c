#!/usr/bin/env bash
# Prepares a Debian 12 machine to build and test Coffer. Safe to run again: packages that
# are already installed are not touched, and node_modules is reinstalled only when the
# lockfile changed (always in CI, which starts from a clean clone).
#
#   bash scripts/setup.sh            # as root, or as a user who may sudo
#   COFFER_SETUP_FORCE=1 bash scripts/setup.sh   # reinstall node_modules regardless
#
# Exit status: 0 ready; 1 something is missing that this script could not install.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# The Debian packages the tests use as real peers and oracles (see ARCHITECTURE.md);
# chromium renders the HTML trust report and the console in headless browser tests
# (playwright-core); docker-registry is the real OCI registry the workload tests pull from.
PACKAGES=(
  swtpm swtpm-tools tpm2-tools softhsm2 cryptsetup-bin efitools sbsigntool
  ovmf systemd-boot-efi openssl chromium docker-registry curl
)

# PostgreSQL: the tests use the server on 127.0.0.1:5432 when one answers (CI has one); otherwise
# scripts/run-tests.mjs starts a private one from Debian's binaries, so those are needed then.
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  PACKAGES+=(postgresql)
fi

# --- Node and npm -------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node is not installed: install Node.js 20 (e.g. from https://nodejs.org or NodeSource) and run again"
command -v npm >/dev/null 2>&1 || die "npm is not installed: install npm (bundled with Node.js 20) and run again"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js $(node -v) is too old: Coffer needs Node.js 20 or later"

# --- Debian packages ----------------------------------------------------------------------
installed() {
  # `dpkg -s` also succeeds for a removed package whose config files remain, so read the status.
  dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

command -v dpkg >/dev/null 2>&1 || die "this script expects Debian 12 (dpkg not found); install by hand: ${PACKAGES[*]}"

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  say "Debian packages: all ${#PACKAGES[@]} present"
else
  say "Debian packages to install: ${missing[*]}"
  # The sudo path passes the environment through `env`, because sudo's env_reset would drop it.
  if [ "$(id -u)" -eq 0 ]; then
    as_root=(env)
  elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
    as_root=(sudo env)
  else
    {
      printf 'setup: error: these Debian packages are missing and this user cannot install them\n'
      printf '       (not root, and sudo is unavailable or needs a password without a terminal).\n'
      printf '       Ask an administrator to run:\n\n'
      printf '  apt-get update && apt-get install -y --no-install-recommends %s\n\n' "${missing[*]}"
    } >&2
    exit 1
  fi
  apt=("${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q)
  "${apt[@]}" update
  "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
  for p in "${missing[@]}"; do
    installed "$p" || die "apt-get finished but $p is still not installed"
  done
fi

# --- npm dependencies and dist/ -----------------------------------------------------------
# npm ci deletes node_modules and reinstalls from package-lock.json; its `prepare` script
# builds dist/. Outside CI, skip the reinstall when nothing it depends on has changed, and
# just rebuild dist/ so that bin/coffer runs the current sources.
stamp=node_modules/.coffer-setup-stamp
want=$( { cat package.json package-lock.json; node -v; npm -v; } | sha256sum | cut -d' ' -f1)

if [ "${CI:-}" != "true" ] && [ -z "${COFFER_SETUP_FORCE:-}" ] && [ -f "$stamp" ] \
   && [ "$(cat "$stamp")" = "$want" ]; then
  say "node_modules: up to date with package-lock.json; rebuilding dist/"
  npm run --silent build
else
  say "node_modules: npm ci (also builds dist/)"
  npm ci --no-audit --no-fund
  printf '%s\n' "$want" > "$stamp"
fi

say "ready"
