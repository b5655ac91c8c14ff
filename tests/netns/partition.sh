#!/usr/bin/env bash
# Three hosts in network namespaces of their own, joined by veth links to a
# bridge in a fourth: each runs the real `roundtable up`. Invite -> join ->
# one host is cut off -> every host edits -> the link comes back -> all three
# print identical `show --json`.
#
# Usage (as root): partition.sh PATH/TO/roundtable
# Only addresses inside the namespaces this script makes are used.
set -euo pipefail

BIN=$(realpath "$1")
WORK=$(mktemp -d)
P="rt$$"                     # a prefix unique to this run
NET="10.213.77"
PIDS=()

say() { printf '[netns] %s\n' "$*"; }

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for ns in "${P}h1" "${P}h2" "${P}h3" "${P}sw"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "${P}sw"
ip -n "${P}sw" link add br0 type bridge
ip -n "${P}sw" link set br0 up
for i in 1 2 3; do
  ns="${P}h$i"
  ip netns add "$ns"
  ip link add "${P}e$i" type veth peer name "${P}p$i"
  ip link set "${P}e$i" netns "$ns"
  ip link set "${P}p$i" netns "${P}sw"
  ip -n "${P}sw" link set "${P}p$i" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$NET.$i/24" dev "${P}e$i"
  ip -n "$ns" link set "${P}e$i" up
done

rt() { local h=$1; shift; "$BIN" --home "$WORK/h$h" "$@"; }

up() {
  local h=$1
  ip netns exec "${P}h$h" "$BIN" --home "$WORK/h$h" up --listen "$NET.$h:7000" --relay none --no-mdns \
    >"$WORK/up$h.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do
    rt "$h" status --json 2>/dev/null | grep -q '"running": true' && return 0
    sleep 0.05
  done
  say "host $h did not start:"; cat "$WORK/up$h.log"; exit 1
}

identical() {
  # Waits until all three print the same circle holding $1 check-ins.
  local want=$1 start=$SECONDS
  while (( SECONDS - start < 90 )); do
    local a b c
    a=$(rt 1 show --json) && b=$(rt 2 show --json) && c=$(rt 3 show --json) || true
    if [[ "$a" == "$b" && "$b" == "$c" ]] \
      && [[ $(printf '%s' "$a" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["checkins"]))') == "$want" ]]; then
      say "identical on all three hosts after $(( SECONDS - start )) s"
      return 0
    fi
    sleep 0.5
  done
  say "the hosts did not converge"; for h in 1 2 3; do rt "$h" status || true; tail -5 "$WORK/up$h.log"; done
  exit 1
}

rt 1 circle create "Tuesday Supper" --as Maya >/dev/null
for h in 1 2 3; do up "$h"; done
rt 2 join "$(rt 1 invite)" --as Sam
rt 3 join "$(rt 1 invite)" --as Ada
rt 1 checkin --mood okay "all here" >/dev/null
identical 1

say "cutting host 3 off"
ip -n "${P}sw" link set "${P}p3" down
rt 1 checkin --mood heavy "written on host 1 while apart" >/dev/null
rt 2 checkin --mood okay "written on host 2 while apart" >/dev/null
rt 3 checkin --mood struggling "written on host 3 while apart" >/dev/null
sleep "${CUT_SECONDS:-2}"
if [[ "$(rt 3 show --json)" == "$(rt 1 show --json)" ]]; then
  say "host 3 should not have heard from the others while cut off"; exit 1
fi

say "link back up"
ip -n "${P}sw" link set "${P}p3" up
identical 4

for pid in "${PIDS[@]}"; do kill -TERM "$pid"; done
for pid in "${PIDS[@]}"; do wait "$pid"; done
PIDS=()
say "all nodes stopped cleanly"
