#!/usr/bin/env bash
# `veil serve` and `veil client` as real processes on 127.0.0.1: correct answers (latency,
# key reuse with no second upload, a throughput batch), misbehaving clients (each followed
# by a good client that must still get the right class), memory back to its baseline,
# the session and key-cache caps, and graceful shutdown with a request in flight.
set -uo pipefail
# Output is checked through here-strings (grep -q PATTERN <<<"$out"), never `echo | grep -q`:
# grep -q exits at its first match, and a writer still writing then dies of SIGPIPE,
# which pipefail turns into a failed check (it failed a CI rehearsal once).
veil="$1"
root="$2"
bad="$root/tests/net/bad_client.py"
py=/usr/bin/python3
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
model="$root/models/mnist-cryptonets.onnx"
export VEIL_PLAN_CACHE="$tmp/plans"  # not the user's cache (plan_cache.hpp)
s="$root/models/samples"
img="$s/mnist-0-label7.png"

# start_server LOG ARGS...: sets $pid and $addr (the server picks a free port).
start_server() {
  local log="$1"; shift
  "$veil" --threads 2 serve --model "$model" --port 0 "$@" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do
    grep -q "^listening on" "$log" && break
    kill -0 "$pid" 2>/dev/null || fail "server did not start: $(cat "$log")"
    sleep 0.1
  done
  addr="$(sed -n 's/^listening on //p' "$log")"
  [ -n "$addr" ] || fail "server did not print its address"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

good_client() {  # the server still answers a well-behaved client correctly
  local out
  out="$("$veil" client --server "$addr" --input "$img" --keys "$tmp/keys" 2>&1)" || fail "good client after $1: $out"
  grep -q "^class: 7" <<<"$out" || fail "good client after $1 got: $out"
}

start_server "$tmp/server.log" --modes latency,throughput,hybrid --timeout-s 2 --max-sessions 4 --workers 2
server=$pid
# The server re-executed itself with glibc's huge-page tunable (common/memory.hpp), same pid.
if grep -qi glibc <<<"$(ldd --version 2>&1)"; then
  grep -q 'glibc.malloc.hugetlb=1' <<<"$(tr '\0' '\n' <"/proc/$server/environ")" ||
    fail "server runs without the huge-page tunable"
fi

# 1. End to end: class 7, keys generated and uploaded once.
out="$("$veil" client --server "$addr" --input "$img" "$s/mnist-1-label2.png" --keys "$tmp/keys" 2>&1)" || fail "client: $out"
grep -q "^class: 7" <<<"$out" || fail "expected class 7: $out"
grep -q "^class: 2" <<<"$out" || fail "expected class 2: $out"
grep -q "^keys: uploaded" <<<"$out" || fail "keys were not uploaded: $out"
echo "$out" | grep "^session:"

# 2. A second session with the same key directory sends no keys (only their hash).
out="$("$veil" client --server "$addr" --input "$img" --keys "$tmp/keys" 2>&1)" || fail "repeat client: $out"
grep -q "nothing uploaded" <<<"$out" || fail "keys were uploaded again: $out"
grep -q "^session: keys up 48 B" <<<"$out" || fail "the repeat session sent key bytes: $out"
echo "$out" | grep "^session:"

# 3. Throughput mode: three images in one batch request.
out="$("$veil" client --server "$addr" --mode throughput --input "$img" "$s/mnist-1-label2.png" "$s/mnist-2-label1.png" 2>&1)" \
  || fail "throughput client: $out"
[ "$(echo "$out" | grep -c '^request: 3 image')" = 1 ] || fail "not one batch request: $out"
[ "$(echo "$out" | grep '^class:' | cut -c8 | tr -d '\n')" = 721 ] || fail "throughput classes: $out"
echo "throughput batch: ok"

# 3b. Hybrid mode: preprocessing and the online stage per image; the client gets the
# classes without the weights.
out="$("$veil" client --server "$addr" --mode hybrid --input "$img" "$s/mnist-1-label2.png" 2>&1)" \
  || fail "hybrid client: $out"
[ "$(echo "$out" | grep '^class:' | cut -c8 | tr -d '\n')" = 72 ] || fail "hybrid classes: $out"
grep -q "^bytes: preprocessing up" <<<"$out" || fail "hybrid report: $out"
echo "hybrid: ok"

# Inputs for the bad clients: ciphertexts for the server's parameters, keys and
# ciphertexts for other parameters.
"$veil" encrypt --model "$model" --keys "$tmp/keys" --input "$img" --out "$tmp/good.ct" >/dev/null || fail "encrypt"
"$veil" keygen --model "$model" --scale-bits 25 --keys "$tmp/other" >/dev/null || fail "keygen other"
"$veil" encrypt --model "$model" --scale-bits 25 --keys "$tmp/other" --input "$img" --out "$tmp/other.ct" >/dev/null \
  || fail "encrypt other"

# 4. Misbehaving clients, each followed by a good one; memory must come back.
good_client "warm-up"
base="$(rss_kib "$server")"
for scenario in oversized version hello garbage truncated bad-messages "mismatched-keys $tmp/other" \
                "bad-ciphertexts $tmp/keys $tmp/good.ct $tmp/other.ct" "stall 3" "disconnect $tmp/keys $tmp/good.ct"; do
  # shellcheck disable=SC2086
  $py "$bad" ${scenario%% *} "$addr" $(echo "$scenario" | cut -s -d' ' -f2-) || fail "scenario $scenario"
  kill -0 "$server" 2>/dev/null || fail "server died after $scenario"
  good_client "$scenario"
done
after="$(rss_kib "$server")"
echo "server RSS: $((base / 1024)) MiB before the bad clients, $((after / 1024)) MiB after"
[ $((after - base)) -lt $((96 * 1024)) ] || fail "server memory grew by $(((after - base) / 1024)) MiB"

# 5. Session cap: with 4 sessions open, a fifth connection and veil client are told "busy".
$py "$bad" cap "$addr" 4 "$veil" client --server "$addr" --input "$img" || fail "session cap"
good_client "the session cap"

# 6. Key-cache cap: a server whose cache cannot hold one key set says it is busy.
start_server "$tmp/small.log" --modes latency --max-key-cache-bytes 1000000
# The first server's latency plan was kept: this start packs its stages without a search.
grep -q "planned in .* (kept from an earlier start)" "$tmp/small.log" || fail "plan not kept between starts"
small=$pid
out="$("$veil" client --server "$addr" --input "$img" --keys "$tmp/keys" 2>&1)" && fail "key cache cap ignored: $out"
grep -q "^veil: error: server busy: the key cache is full" <<<"$out" || fail "key cache cap: $out"
kill -TERM "$small"; wait "$small" || fail "small server exit status $?"

# 7. SIGTERM with a request in flight: it completes, later ones are refused, exit 0.
addr="$(sed -n 's/^listening on //p' "$tmp/server.log")"
"$veil" client --server "$addr" --input "$img" --keys "$tmp/keys" --repeat 3 >"$tmp/inflight.log" 2>&1 &
client=$!
for _ in $(seq 200); do grep -q "^request:" "$tmp/inflight.log" && break; sleep 0.05; done
kill -TERM "$server"
wait "$server"; rc=$?
[ $rc = 0 ] || fail "server exit status $rc after SIGTERM"
wait "$client"
answered="$(grep -c '^class: 7' "$tmp/inflight.log")"
evaluated="$(grep -c 'infer 1 image' "$tmp/server.log")"
[ "$answered" -ge 1 ] || fail "the request in flight was not answered: $(cat "$tmp/inflight.log")"
grep -q "SIGTERM" "$tmp/server.log" || fail "server did not log the signal"
if [ "$answered" != 3 ]; then
  grep -q "^veil: error: shutting down" "$tmp/inflight.log" \
    || fail "later requests were neither answered nor refused: $(cat "$tmp/inflight.log")"
fi
echo "SIGTERM: $answered request(s) of the last session answered, server evaluated $evaluated in all, exit 0"

# 8. The load generator backs off when the server goes away: a bounded number of attempts
# (exponential back-off, capped at 2 s), not a busy loop of reconnections.
start_server "$tmp/load.log" --modes latency
load_server=$pid
"$veil" client --server "$addr" --input "$img" --keys "$tmp/keys" --concurrency 2 --duration 8 \
  >"$tmp/load-client.log" 2>&1 &
load=$!
for _ in $(seq 400); do [ "$(grep -c 'infer 1 image' "$tmp/load.log")" -ge 3 ] && break; sleep 0.05; done
kill -TERM "$load_server"
wait "$load_server" || fail "load server exit status $?"
wait "$load" && fail "the load generator reported no errors after the server went away"
attempts="$(sed -n 's/.* errors in \([0-9]*\) attempts.*/\1/p' "$tmp/load-client.log")"
[ -n "$attempts" ] || fail "no load summary: $(cat "$tmp/load-client.log")"
[ "$attempts" -lt 100 ] || fail "the load generator made $attempts attempts in 8 s: no back-off"
echo "load generator after the server left: $(grep '^load:' "$tmp/load-client.log" | sed 's/.*; //')"
echo "net tests passed"
