#!/usr/bin/env bash
# Regenerates link/hot-code.txt: the functions the daemon runs, for
# build.rs to link next to each other
# (see build.rs, `hot_code_order`). Run it from the workspace root after
# a change that moves the daemon's code much (a new dependency, a new
# toolchain); a stale list only makes the daemon's code less compact.
#
# Needs valgrind (callgrind) and perf. Takes about ten minutes.
# The workload is the daemon's common life: 100 services started, a status,
# an idle half-minute, a restart, a log read, a stop.
set -euo pipefail
cd "$(dirname "$0")/../../.."
command -v valgrind >/dev/null && command -v perf >/dev/null || {
  echo "profile.sh: needs valgrind and perf (apt-get install valgrind linux-perf)" >&2
  exit 2
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Services as corral-bench declares them (its footprint is what is
# measured), a few with what a config commonly adds: limits, logs, probes,
# a dependency, a backoff.
{
  printf '[daemon]\nstate_dir = "%s/state"\nlog_dir = "%s/logs"\n' "$work" "$work"
  for i in $(seq 1 100); do
    printf '\n[services.s%s]\ncommand = ["sh", "-c", "exec sleep 300"]\nrestart = "always"\n' "$i"
    printf 'stop = { signal = "TERM", grace = "5s" }\nstart_limit = { burst = 10000, interval = "1s" }\n'
  done
  printf '\n[services.limited]\ncommand = "echo tick; exec sleep 300"\nshell = true\ninstances = 2\n'
  printf 'limits = { memory = "256MiB", max_procs = 32 }\nlogs = { max_size = "1MiB", keep = 3 }\n'
  printf 'backoff = { initial = "200ms", max = "10s", factor = 2.0, reset_after = "30s" }\n'
  printf 'health.liveness = { exec = ["true"], period = "5s" }\n'
  printf 'alerts = [{ memory = "200MiB", for = "10s", action = "dump" }]\n'
  printf '\n[services.after]\ncommand = ["sleep", "300"]\ndepends_on = { limited = "started" }\n'
} > "$work/corral.toml"
bin=$PWD/target/release/corral

# Runs the daemon under "$@" and the workload against it, then stops it
# and waits for it (and so for every service) to end.
run() {
  rm -rf "$work/state" "$work/logs"
  "$@" "$bin" up -c "$work/corral.toml" -q > "$work/out.log" 2>&1 &
  local runner=$!
  # Ready as the bench sees it: `status --json` answers.
  for _ in $(seq 1 600); do
    "$bin" status -c "$work/corral.toml" --json > /dev/null 2>&1 && break
    sleep 0.1
  done
  "$bin" status -c "$work/corral.toml" > /dev/null
  # The bench's idle window: the config watcher's poll, the probes.
  sleep 35
  "$bin" restart -c "$work/corral.toml" s1 > /dev/null
  "$bin" logs -c "$work/corral.toml" s2 > /dev/null 2>&1 || true
  "$bin" status -c "$work/corral.toml" > /dev/null
  "$bin" down -c "$work/corral.toml" > /dev/null 2>&1 || kill -TERM "$runner"
  wait "$runner" || true
}

# A symbol's hash depends on the features cargo unified for each crate,
# so the same code has other names in another build. Both builds that
# matter are profiled: what `cargo install --path crates/corral-cli`
# gives, and what `corral-bench` builds and measures (corral-cli with
# corral-testkit, and the `fleet` feature where protoc is). Each build is
# linked without the ordering: the names are the same, the layout is not
# what is measured.
builds=("-p corral-cli")
command -v protoc > /dev/null && builds+=("-p corral-cli -p corral-testkit --features corral-cli/fleet")
n=0
for b in "${builds[@]}"; do
  n=$((n + 1))
  # shellcheck disable=SC2086 # one build's arguments, split on purpose
  CORRAL_LINK_ORDER=off cargo build -q --release $b
  # Every function the daemon ran, exactly (valgrind refuses clone3 and
  # pidfd_open, so the daemon takes its fallback paths there).
  run valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/cg$n.out"
  # What a native run spends time in, sampled: the clone3 and pidfd
  # paths, and the vfork-like child, whose pages are the daemon's own.
  for r in 1 2; do
    run perf record -q -F 30000 -o "$work/perf.data" --
    # Read now: perf resolves names against the binary as it is.
    perf report -i "$work/perf.data" --no-demangle --dsos corral --sort sym -F sym --stdio 2> /dev/null \
      | sed -n 's/^ *\[\.\] \([^ ]*\).*/\1/p' >> "$work/perf.syms"
  done
done

python3 - "$work" "$bin" > crates/corral-cli/link/hot-code.txt <<'PY'
import glob, re, sys
work, binary = sys.argv[1], sys.argv[2]
names, seen = [], set()
def add(name):
    name = re.sub(r"'\d+$", "", name.strip())
    if name and name not in seen:
        seen.add(name)
        names.append(name)
# callgrind: `ob=`/`fn=` lines, names compressed as "(id) name" once.
line_re = re.compile(r"(c?)(ob|fn)=\((\d+)\)(?: (.*))?$")
for out in sorted(glob.glob(f"{work}/cg*.out")):
    tables, ob = {"ob": {}, "fn": {}}, None
    for line in open(out):
        m = line_re.match(line.rstrip("\n"))
        if not m:
            continue
        callee, kind, ident, name = m.groups()
        if name:
            tables[kind][ident] = name
        if callee:
            continue
        if kind == "ob":
            ob = tables["ob"][ident]
        elif ob == binary:
            add(tables["fn"][ident])
for line in open(f"{work}/perf.syms"):
    add(line)
print("# The functions the daemon ran, as named in each build profiled: generated")
print("# by link/profile.sh, read by build.rs. Mangled names, one per line.")
for n in names:
    print(n)
PY
wc -l crates/corral-cli/link/hot-code.txt
