#!/usr/bin/env bash
# The Windows leg of CI: cross-compile for x86_64-pc-windows-gnu, lint it,
# and run the Windows tests for real under Wine.
#
# Idempotent: packages, the target, the Wine prefix and the ProcessPrng shim
# are set up only when missing. Called by .ci/run; can be run alone from the
# repository root. Environment:
#   CARGO_TARGET_DIR   where to build (default: target); the Wine prefix lives
#                      in $CARGO_TARGET_DIR/wineprefix unless WINEPREFIX is set
#   CORRAL_WINDOWS_CLI=1   also run corral-cli's tests under Wine
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
target=x86_64-pc-windows-gnu
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$CARGO_TARGET_DIR"
own_prefix=0
[ -n "${WINEPREFIX:-}" ] || own_prefix=1
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
    # With recommends: that is the set tested here (wine, fonts-wine, ...).
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Read whole first: `cmd | grep -q` under pipefail fails when grep quits early.
installed=$(rustup target list --installed)
grep -qx "$target" <<<"$installed" || rustup target add "$target"

step "wine prefix $WINEPREFIX"
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    "$wine" wineboot --init </dev/null >/dev/null 2>&1 || true
    /usr/lib/wine/wineserver -w
fi
system32="$WINEPREFIX/drive_c/windows/system32"
[ -d "$system32" ] || { echo "windows: wineboot did not create $system32" >&2; exit 1; }

# Wine processes of this prefix that outlived their wineserver. Seen with
# Wine 8.0: a crashed wineserver leaves its clients (services.exe, and
# testkit processes whose creation raced a job kill) behind. Matched by pid:
# the Wine loader running with exactly this WINEPREFIX.
wine_leftovers() {
    local p exe env
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        case "$exe" in /usr/lib/wine/*) ;; *) continue ;; esac
        env=$(tr '\0' '\n' <"$p/environ" 2>/dev/null) || continue
        if grep -qxF "WINEPREFIX=$WINEPREFIX" <<<"$env"; then
            echo "${p#/proc/}"
        fi
    done
    return 0
}

cleanup() {
    [ "$own_prefix" = 1 ] || return 0
    /usr/lib/wine/wineserver -k 2>/dev/null || true
    sleep 1
    local left
    left=$(wine_leftovers)
    if [ -n "$left" ]; then
        echo "windows: killing Wine processes left behind: $left" >&2
        # shellcheck disable=SC2086
        kill -9 $left 2>/dev/null || true
    fi
    # The wineserver that ended leaves its socket directory behind,
    # /tmp/wine-XXXXXX/server-<dev>-<inode> named after this prefix (hex):
    # remove this prefix's, and its parent once empty. Nothing else's.
    local server d
    server=$(printf 'server-%x-%x' "$(stat -c %d "$WINEPREFIX")" "$(stat -c %i "$WINEPREFIX")") || return 0
    for d in /tmp/wine-*/"$server"; do
        [ -d "$d" ] && [ ! -L "$d" ] || continue
        rm -f "$d/lock" "$d/socket"
        rmdir "$d" "$(dirname "$d")" 2>/dev/null || true
    done
}

if [ "$own_prefix" = 1 ]; then
    cleanup
    trap cleanup EXIT
    # One persistent wineserver for the whole leg, and its system processes
    # (services.exe, explorer.exe, ...) started now with null stdio: started
    # by the first test instead, they would inherit and hold open the
    # stdout of whoever runs CI.
    /usr/lib/wine/wineserver -p </dev/null >/dev/null 2>&1
    "$wine" wineboot </dev/null >/dev/null 2>&1 || true
fi

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
cargo clippy --workspace --all-targets --all-features --target "$target" -- -D warnings

step "docs ($target, private items too)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p corral --all-features --target "$target" --document-private-items

step "tests under Wine"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$wine"
# The tests find the testkit next to their own directory; cargo does not
# build another package's binary for `cargo test -p corral`.
cargo build --target "$target" -p corral-testkit
status=0
# The library's unit tests and its Windows integration tests; the other
# integration tests of corral read /proc and are Linux-only.
# A Wine bug must not hang CI: the run is bounded (about 15 s normally).
# --nocapture shows why the tests that need real Windows skip.
timeout -k 10 600 cargo test --target "$target" -p corral --lib --test 'windows_*' -- --nocapture || status=$?
# The supervisor on Windows: its unit tests (the named pipe's DACLs among
# them), `corral up` end to end over the pipe (windows_up.rs), and the
# daemon as a service under Wine's Service Control Manager
# (windows_service.rs: it installs uniquely named services in this prefix
# and uninstalls them, also when a test fails).
if [ $status -eq 0 ]; then
    timeout -k 10 600 cargo test --target "$target" -p corral-supervisor --lib || status=$?
fi
if [ $status -eq 0 ]; then
    timeout -k 10 600 cargo test --target "$target" -p corral-cli --test 'windows_*' -- --nocapture || status=$?
fi
if [ "${CORRAL_WINDOWS_CLI:-0}" = 1 ] && [ $status -eq 0 ]; then
    timeout -k 10 900 cargo test --target "$target" -p corral-cli || status=$?
fi

step "done (status $status)"
exit $status
