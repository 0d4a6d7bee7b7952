#!/usr/bin/env bash
# A fleet on one machine: a local etcd on loopback, three corral daemons
# (nodes n1 and n2 in zone a, n3 in zone b), desired state applied from
# examples/fleet-services.toml, then scaled. Everything is stopped and
# removed at the end, also on Ctrl-C or an error.
#
#   bash examples/fleet-demo.sh
#
# Needs etcd (Debian: apt-get install etcd-server) and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v etcd >/dev/null || { echo "fleet-demo: etcd is not installed (Debian: apt-get install etcd-server)" >&2; exit 1; }
cargo build -q -p corral-cli --features fleet
corral="$PWD/target/debug/corral"
work="$(mktemp -d)"
etcd_pid=""
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
client_port="$(free_port)"
peer_port="$(free_port)"
url="http://127.0.0.1:$client_port"

cleanup() {
  for n in n1 n2 n3; do
    [ -S "$work/$n/.corral/corral.sock" ] && "$corral" down -c "$work/$n/corral.toml" >/dev/null 2>&1 || true
  done
  if [ -n "$etcd_pid" ]; then kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== etcd on $url (data in $work/etcd)"
etcd --name demo --data-dir "$work/etcd" \
  --listen-client-urls "$url" --advertise-client-urls "$url" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "demo=http://127.0.0.1:$peer_port" \
  --logger zap --log-outputs stderr --log-level error 2>"$work/etcd.log" &
etcd_pid=$!
for _ in $(seq 100); do curl -fs "$url/health" >/dev/null 2>&1 && break; sleep 0.1; done

for n in n1 n2 n3; do
  zone=a; [ "$n" = n3 ] && zone=b
  mkdir -p "$work/$n"
  cat >"$work/$n/corral.toml" <<TOML
[fleet]
endpoints = ["$url"]
cluster = "demo"
node = "$n"
labels = { zone = "$zone" }
ttl = "5s"
TOML
  echo "== daemon $n (zone $zone)"
  "$corral" up -d -c "$work/$n/corral.toml"
done

fleet() { "$corral" fleet "$@" --endpoints "$url" --cluster demo; }
echo "== corral fleet nodes"; fleet nodes
echo "== corral fleet apply -f examples/fleet-services.toml"; fleet apply -f examples/fleet-services.toml
sleep 2
echo "== corral fleet status"; fleet status
echo "== corral fleet scale ticker 2"; fleet scale ticker 2
sleep 2
echo "== corral fleet status"; fleet status
echo "== corral status on n1 (its own view, with the fleet link)"; "$corral" status -c "$work/n1/corral.toml"
echo "== done: stopping the daemons and etcd"
