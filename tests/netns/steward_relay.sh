#!/usr/bin/env bash
# A joiner that reaches the circle's steward only through a relay, while
# the inviter is off. Four network namespaces: LAN 1 holds the inviter and
# the steward, LAN 2 the joiner; a relay sits on both LANs and forwards
# nothing between them, so the joiner's only way to the steward is the
# relay (it reaches the relay at its LAN-1 address by a route through its
# LAN-2 side, which the relay's namespace answers itself).
#
# Usage (as root): steward_relay.sh PATH/TO/roundtable PATH/TO/relay
# Only addresses inside the namespaces this script makes are used.
set -euo pipefail

BIN=$(realpath "$1")
RELAY_BIN=$(realpath "$2")
WORK=$(mktemp -d)
P="rs$$"
NET1="10.213.91"
NET2="10.213.92"
PIDS=()

say() { printf '[netns] %s\n' "$*"; }

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for ns in "${P}a" "${P}s" "${P}j" "${P}r" "${P}w1" "${P}w2"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Two bridges (one namespace each), and the hosts.
for sw in w1 w2; do
  ip netns add "${P}$sw"
  ip -n "${P}$sw" link add br0 type bridge
  ip -n "${P}$sw" link set br0 up
done
link() { # ns, switch, address, index
  local ns=$1 sw=$2 addr=$3 i=$4
  ip link add "${P}e$i" type veth peer name "${P}p$i"
  ip link set "${P}e$i" netns "${P}$ns"
  ip link set "${P}p$i" netns "${P}$sw"
  ip -n "${P}$sw" link set "${P}p$i" master br0 up
  ip -n "${P}$ns" addr add "$addr/24" dev "${P}e$i"
  ip -n "${P}$ns" link set "${P}e$i" up
}
for ns in a s j r; do ip netns add "${P}$ns"; ip -n "${P}$ns" link set lo up; done
link a w1 "$NET1.1" 1
link s w1 "$NET1.2" 2
link r w1 "$NET1.254" 3
link r w2 "$NET2.254" 4
link j w2 "$NET2.3" 5
ip netns exec "${P}r" sysctl -qw net.ipv4.ip_forward=0
# The joiner reaches the relay's LAN-1 address through its LAN-2 side.
ip -n "${P}j" route add "$NET1.254/32" via "$NET2.254"

# The relay.
ip netns exec "${P}r" "$RELAY_BIN" "0.0.0.0:3340" >"$WORK/relay.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q RELAY "$WORK/relay.log" && break; sleep 0.05; done
RELAY="http://$NET1.254:3340"
say "relay at $RELAY"

rt() { local h=$1; shift; "$BIN" --home "$WORK/$h" "$@"; }

# The steward, on LAN 1, with the relay.
ip netns exec "${P}s" "$BIN" --home "$WORK/s" steward run --listen "$NET1.2:7100" --relay "$RELAY" --no-mdns >"$WORK/steward.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [[ -f "$WORK/s/ticket" ]] && break; sleep 0.05; done
STEWARD=$(rt s steward ticket --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ticket"])')
say "steward up"

# The inviter: a circle, the steward, an invite left there; then off.
rt a circle create "Tuesday Supper" --as Maya >/dev/null
rt a steward add "$STEWARD" >/dev/null
ip netns exec "${P}a" "$BIN" --home "$WORK/a" up --listen "$NET1.1:7000" --relay "$RELAY" --no-mdns --no-web >"$WORK/a.log" 2>&1 &
APID=$!
PIDS+=($APID)
for _ in $(seq 400); do
  rt a steward list --json 2>/dev/null | grep -q '"connected": true' && break
  sleep 0.05
done
rt a checkin --mood okay "soup on Tuesday" >/dev/null
TICKET=$(rt a invite --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ticket"])')
for _ in $(seq 400); do
  rt a status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["circles"][0]["stewards"][0]["invites_waiting"]==0 and s["circles"][0]["stewards"][0]["up_to_date"] else 1)' && break
  sleep 0.05
done
kill -TERM "$APID"; wait "$APID" || true
if rt a status --json 2>/dev/null | grep -q '"running": true'; then
  say "the inviter's node is still running"; exit 1
fi
say "the inviter is off"

# The joiner cannot reach the steward directly...
if ip netns exec "${P}j" ping -c1 -W1 "$NET1.2" >/dev/null 2>&1; then
  say "the joiner should not reach the steward directly"; exit 1
fi
# ...and joins through the relay.
ip netns exec "${P}j" "$BIN" --home "$WORK/j" join "$TICKET" --as Joe --relay "$RELAY"
rt j show --json | grep -q "soup on Tuesday" || { say "the joiner did not get the circle"; exit 1; }
say "joined through the relay"

# The joiner's turn hands its joining on; the inviter's next turn sees it.
ip netns exec "${P}j" "$BIN" --home "$WORK/j" up --listen "$NET2.3:7000" --relay "$RELAY" --no-mdns --no-web >"$WORK/j.log" 2>&1 &
JPID=$!
PIDS+=($JPID)
for _ in $(seq 600); do
  rt j status --json 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s.get("running") and s["circles"][0]["stewards"][0]["up_to_date"] else 1)' 2>/dev/null && break
  sleep 0.05
done
kill -TERM "$JPID"; wait "$JPID" || true
ip netns exec "${P}a" "$BIN" --home "$WORK/a" up --listen "$NET1.1:7000" --relay "$RELAY" --no-mdns --no-web >"$WORK/a2.log" 2>&1 &
APID=$!
PIDS+=($APID)
for _ in $(seq 600); do
  rt a members --json 2>/dev/null | grep -q '"Joe"' && { say "the inviter sees Joe in the circle"; break; }
  sleep 0.05
done
rt a members --json | grep -q '"Joe"' || { say "the inviter never saw Joe"; tail -20 "$WORK/a2.log"; exit 1; }
if ! kill -TERM "$APID" 2>/dev/null; then
  say "the inviter's node stopped by itself:"; tail -20 "$WORK/a2.log"; exit 1
fi
wait "$APID" || true
say "done"
