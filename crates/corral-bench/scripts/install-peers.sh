#!/bin/sh
# Installs the supervisor peers that corral-bench compares against, when they
# are missing, into a private prefix (nothing global, no service started):
#   supervisord  from PyPI (`supervisor`) into a venv: PREFIX/venv
#   pm2          from npm into PREFIX/npm
# Only the package registries are used. Prints, on its last two lines,
#   supervisord=<path or empty>
#   pm2=<path or empty>
# Usage: install-peers.sh PREFIX
set -u
prefix=${1:?usage: install-peers.sh PREFIX}
mkdir -p "$prefix"
log="$prefix/install.log"
: >"$log"

supervisord=""
if [ -x "$prefix/venv/bin/supervisord" ]; then
    supervisord="$prefix/venv/bin/supervisord"
elif command -v supervisord >/dev/null 2>&1 && command -v supervisorctl >/dev/null 2>&1; then
    supervisord=$(command -v supervisord)
else
    echo "corral-bench: installing supervisor from PyPI into $prefix/venv" >&2
    py=$(command -v python3 || true)
    if [ -n "$py" ] && "$py" -m venv "$prefix/venv" >>"$log" 2>&1 \
        && "$prefix/venv/bin/pip" install --disable-pip-version-check -q supervisor >>"$log" 2>&1; then
        supervisord="$prefix/venv/bin/supervisord"
    elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        # Debian's package; its own service is stopped right away so that only
        # the benchmark's private supervisord runs.
        echo "corral-bench: PyPI failed; trying apt-get install supervisor" >&2
        if (apt-get install -y -q supervisor || (apt-get update -q && apt-get install -y -q supervisor)) >>"$log" 2>&1; then
            (service supervisor stop || /etc/init.d/supervisor stop) >>"$log" 2>&1 || true
            supervisord=$(command -v supervisord || true)
        fi
    fi
fi

pm2=""
if [ -x "$prefix/npm/node_modules/.bin/pm2" ]; then
    pm2="$prefix/npm/node_modules/.bin/pm2"
elif command -v pm2 >/dev/null 2>&1; then
    pm2=$(command -v pm2)
elif command -v npm >/dev/null 2>&1; then
    echo "corral-bench: installing pm2 from npm into $prefix/npm" >&2
    mkdir -p "$prefix/npm"
    if npm install --prefix "$prefix/npm" --no-audit --no-fund --loglevel=error pm2 >>"$log" 2>&1; then
        pm2="$prefix/npm/node_modules/.bin/pm2"
    fi
fi

[ -n "$supervisord" ] || echo "corral-bench: supervisord could not be installed (see $log)" >&2
[ -n "$pm2" ] || echo "corral-bench: pm2 could not be installed (see $log)" >&2
echo "supervisord=$supervisord"
echo "pm2=$pm2"
