#!/usr/bin/env bash
# The Windows leg of CI: cross-compile for x86_64-pc-windows-gnu, lint it,
# and run the Windows tests for real under Wine.
#
# Idempotent: packages, the target, the Wine prefix and the ProcessPrng shim
# are set up only when missing. Called by .ci/run; can be run alone from the
# repository root. Environment:
#   CARGO_TARGET_DIR   where to build (default: target); the Wine prefix lives
#                      in $CARGO_TARGET_DIR/wineprefix unless WINEPREFIX is set
#   CORRAL_WINDOWS_SKIP_CLI=1   run only the library tests
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
target=x86_64-pc-windows-gnu
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$CARGO_TARGET_DIR"
export WINEPREFIX="${WINEPREFIX:-$CARGO_TARGET_DIR/wineprefix}"
# Debian's /usr/bin/wine wrapper prints nothing on these machines; the
# loader itself works.
wine=/usr/lib/wine/wine64
export WINEDEBUG=-all
# No Mono or Gecko installer dialogs while the prefix is created.
export WINEDLLOVERRIDES="mscoree,mshtml="

step() { printf '\n== windows: %s (%ds)\n' "$*" "$SECONDS"; }

step "packages"
missing=()
[ -x "$wine" ] || missing+=(wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

step "wine prefix $WINEPREFIX"
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    "$wine" wineboot --init >/dev/null 2>&1 || true
    /usr/lib/wine/wineserver -w
fi
system32="$WINEPREFIX/drive_c/windows/system32"
[ -d "$system32" ] || { echo "windows: wineboot did not create $system32" >&2; exit 1; }

step "ProcessPrng shim"
# Rust's std imports ProcessPrng from bcryptprimitives.dll, which Wine 8
# lacks: without the shim every test binary fails to load (c0000135).
shim_src=.ci/prng-shim/bcryptprimitives.c
shim="$CARGO_TARGET_DIR/prng-shim/bcryptprimitives.dll"
if [ ! -f "$shim" ] || [ "$shim_src" -nt "$shim" ]; then
    mkdir -p "$(dirname "$shim")"
    x86_64-w64-mingw32-gcc -O2 -shared -s -o "$shim" "$shim_src" -ladvapi32
fi
cmp -s "$shim" "$system32/bcryptprimitives.dll" || cp "$shim" "$system32/bcryptprimitives.dll"

step "clippy ($target)"
cargo clippy --workspace --all-targets --target "$target" -- -D warnings

step "tests under Wine"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$wine"
status=0
cargo test --target "$target" -p corral || status=$?
if [ "${CORRAL_WINDOWS_SKIP_CLI:-0}" != 1 ] && [ $status -eq 0 ]; then
    cargo test --target "$target" -p corral-cli || status=$?
fi

# Stop this prefix's wineserver (only ours: it is keyed by WINEPREFIX), so
# the leg leaves no daemon behind.
/usr/lib/wine/wineserver -k 2>/dev/null || true
step "done (status $status)"
exit $status
