#!/usr/bin/env bash
# End-to-end checks of the `veil` command: the four-step file workflow gives the same
# class as the plaintext model, and bad input fails with a clear message (exit 1, no crash).
set -uo pipefail
# Output is checked through here-strings (grep -q PATTERN <<<"$out"), never `echo | grep -q`:
# grep -q exits at its first match, and a writer still writing then dies of SIGPIPE,
# which pipefail turns into a failed check (it failed a CI rehearsal once).
veil="$1"
root="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# Plans are kept here, not in the user's cache (plan_cache.hpp).
export VEIL_PLAN_CACHE="$tmp/plans"
model="$root/models/mnist-cryptonets.onnx"
img="$root/models/samples/mnist-0-label7.png"

# keygen -> encrypt -> run -> decrypt, through files.
"$veil" keygen --model "$model" --keys "$tmp/k" >/dev/null || fail "keygen"
[ "$(stat -c %a "$tmp/k/secret.key")" = 600 ] || fail "secret.key is not private"
"$veil" encrypt --model "$model" --keys "$tmp/k" --input "$img" --out "$tmp/in.ct" >/dev/null || fail "encrypt"
# The server side runs without the secret key.
mkdir -p "$tmp/server" && cp "$tmp/k/params.bin" "$tmp/k/relin.key" "$tmp/k/galois.key" "$tmp/server/"
"$veil" run --model "$model" --keys "$tmp/server" --in "$tmp/in.ct" --out "$tmp/out.ct" >/dev/null || fail "run"
out="$("$veil" decrypt --model "$model" --keys "$tmp/k" --in "$tmp/out.ct")" || fail "decrypt"
grep -q "^class: 7" <<<"$out" || fail "decrypt gave: $out"

# IDX record input and throughput mode in one process.
out="$("$veil" infer --model "$model" --mode throughput --input "$root/models/samples/mnist-test-first16-images-idx3-ubyte" --index 2)" \
  || fail "infer throughput"
grep -q "^class: 1" <<<"$out" || fail "throughput infer gave: $out"

# No plaintext cache: every diagonal is encoded when used, same answer.
out="$("$veil" --plaintext-cache-gib 0 infer --model "$model" --input "$img")" || fail "infer without cache"
grep -q "^class: 7" <<<"$out" || fail "infer without cache gave: $out"
# The set-up line accounts for the weight budget: nothing kept, and what would keep all.
grep -q "encoded afresh at each use; all ready needs --plaintext-cache-gib 0.1" <<<"$out" \
  || fail "infer without cache reported: $out"
out="$("$veil" --plaintext-cache-gib 1 infer --model "$model" --input "$img")" || fail "infer with cache"
grep -q "server setup .*, all ready (NTT form)" <<<"$out" || fail "infer with all weights kept reported: $out"

# Hybrid mode: plan, and both parties in one process (preprocessing + online stage).
out="$("$veil" plan --model "$model" --mode hybrid)" || fail "plan hybrid"
grep -q "hybrid mode" <<<"$out" || fail "plan hybrid gave: $out"
grep -q "128-bit bound 214: met" <<<"$out" || fail "plan hybrid parameters: $out"
grep -q "^preprocessing per image, linear layers: [0-9]* ciphertexts up, [0-9]* down, [0-9]* ciphertext x plaintext products; the server's kernel blocks: .* ready in NTT form" <<<"$out" ||
  fail "plan hybrid preprocessing cost: $out"
out="$("$veil" infer --model "$model" --mode hybrid --input "$img")" || fail "infer hybrid"
grep -q "^class: 7" <<<"$out" || fail "hybrid infer gave: $out"
grep -q "online .* rounds" <<<"$out" || fail "hybrid infer report: $out"
grep -q "^server setup .*, all ready (NTT form)" <<<"$out" || fail "hybrid infer, every block kept: $out"
# Without a budget for the server's kernel blocks each is made at each use: same answer.
out="$("$veil" --plaintext-cache-gib 0 infer --model "$model" --mode hybrid --input "$img")" ||
  fail "infer hybrid, no block kept"
grep -q "^class: 7" <<<"$out" || fail "hybrid infer with no block kept gave: $out"
grep -q "^server setup .*: [0-9]* kernel blocks beyond the budget made at each use .*; all ready needs --plaintext-cache-gib" <<<"$out" ||
  fail "hybrid infer, no block kept, report: $out"
# Hybrid eval of records 2..4 (--skip splits a long run): the report names the records
# and holds a prediction for each; the plot shows the preprocessing/online split.
samples="$root/models/samples/mnist-test-first16-images-idx3-ubyte"
"$veil" eval --model "$model" --mode hybrid -d "$samples" --skip 2 -n 3 --report "$tmp/h.json" \
  --plot "$tmp/h.png" >/dev/null || fail "eval hybrid"
/usr/bin/python3 - "$tmp/h.json" <<'PY' || fail "eval hybrid report"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["mode"] == "hybrid" and j["records"] == [2, 3, 4] and j["skip"] == 2, j
assert len(j["predictions"]) == 3 and j["labels"] == [1, 0, 4], j
assert j["agreement"] == 1.0 and j["bytes_per_image"]["online_up"] > 0, j
PY
[ -s "$tmp/h.png" ] || fail "eval hybrid plot"
# Latency eval at half the weights' NTT form: the report accounts for the budget.
"$veil" --plaintext-cache-gib 0.013 eval --model "$model" -d "$samples" -n 2 --report "$tmp/l.json" \
  >/dev/null || fail "eval latency"
/usr/bin/python3 - "$tmp/l.json" <<'PY' || fail "eval latency report"
import json, sys
w = json.load(open(sys.argv[1]))["weights"]
kept = w["ntt_bytes"] + w["coefficient_bytes"]
assert 0 < kept <= 0.013 * 2**30 < w["all_ntt_bytes"] and w["coefficient_bytes"] > 0, w
PY

# The plan cache: the second run rebuilds the same plan from the kept choice; a damaged
# entry is reported and planned afresh; a directory that cannot be written is reported
# and the command goes on.
rmodel="$root/models/mnist-delphi.onnx"
export VEIL_PLAN_CACHE="$tmp/plans-delphi"  # this model's entry alone
touch -d "40 days ago" "$VEIL_PLAN_CACHE/stale.plan" 2>/dev/null ||
  { mkdir -p "$VEIL_PLAN_CACHE" && touch -d "40 days ago" "$VEIL_PLAN_CACHE/stale.plan"; }
touch -d "20 days ago" "$VEIL_PLAN_CACHE/recent.plan"
"$veil" plan --model "$rmodel" > "$tmp/plan1.txt" || fail "plan (search)"
[ -e "$VEIL_PLAN_CACHE/stale.plan" ] && fail "an entry unused for 40 days was kept"
[ -e "$VEIL_PLAN_CACHE/recent.plan" ] || fail "an entry used 20 days ago was removed"
rm "$VEIL_PLAN_CACHE/recent.plan"
grep -q "^plan (kept" "$tmp/plan1.txt" && fail "first plan claims to be kept"
"$veil" plan --model "$rmodel" > "$tmp/plan2.txt" || fail "plan (kept)"
grep -q "^plan (kept from an earlier run" "$tmp/plan2.txt" || fail "second plan not kept: $(head -30 "$tmp/plan2.txt")"
diff <(grep -v "^plan" "$tmp/plan1.txt") <(grep -v "^plan" "$tmp/plan2.txt") >/dev/null || fail "kept plan differs"
entry="$(ls "$tmp"/plans-delphi/*.plan)"
[ "$(echo "$entry" | wc -l)" = 1 ] || fail "one plan kept, found: $entry"
printf 'x' | dd of="$entry" bs=1 seek=40 conv=notrunc 2>/dev/null
err="$("$veil" plan --model "$rmodel" 2>&1 >"$tmp/plan3.txt")" || fail "plan with a damaged entry"
grep -q "ignoring the kept plan.*checksum" <<<"$err" || fail "damaged entry not reported: $err"
diff <(grep -v "^plan" "$tmp/plan1.txt") <(grep -v "^plan" "$tmp/plan3.txt") >/dev/null || fail "plan after a damaged entry differs"
grep -q "^plan (kept" <<<"$("$veil" plan --model "$rmodel")" || fail "damaged entry not replaced"
out="$("$veil" --plan-cache /proc/veil-plans infer --model "$rmodel" --input "$img" 2>&1)" || fail "infer, unwritable cache"
grep -q "could not be kept" <<<"$out" || fail "unwritable cache not reported: $out"
grep -q "^class: 7" <<<"$out" || fail "infer with an unwritable cache gave: $out"
# The hybrid program's decisions are kept the same way: the second plan says so and
# prints the same program; a damaged entry is reported and chosen afresh; the kept
# program answers as the chosen one.
export VEIL_PLAN_CACHE="$tmp/plans-hybrid"
"$veil" plan --model "$rmodel" --mode hybrid > "$tmp/hplan1.txt" || fail "hybrid plan (choose)"
grep -q "choice kept" "$tmp/hplan1.txt" && fail "first hybrid plan claims to be kept"
"$veil" plan --model "$rmodel" --mode hybrid > "$tmp/hplan2.txt" || fail "hybrid plan (kept)"
grep -q "^fixed-point scales chosen on: .*(choice kept from an earlier run" "$tmp/hplan2.txt" ||
  fail "second hybrid plan not kept: $(head -5 "$tmp/hplan2.txt")"
same_program() { diff <(grep -v "^fixed-point scales" "$1") <(grep -v "^fixed-point scales" "$2") >/dev/null; }
same_program "$tmp/hplan1.txt" "$tmp/hplan2.txt" || fail "kept hybrid program differs"
entry="$(ls "$VEIL_PLAN_CACHE"/*.plan)"
[ "$(echo "$entry" | wc -l)" = 1 ] || fail "one hybrid program kept, found: $entry"
printf 'x' | dd of="$entry" bs=1 seek=60 conv=notrunc 2>/dev/null
err="$("$veil" plan --model "$rmodel" --mode hybrid 2>&1 >"$tmp/hplan3.txt")" || fail "hybrid plan, damaged entry"
grep -q "ignoring the kept plan.*checksum" <<<"$err" || fail "damaged hybrid entry not reported: $err"
same_program "$tmp/hplan1.txt" "$tmp/hplan3.txt" || fail "hybrid program after a damaged entry differs"
out="$("$veil" infer --model "$rmodel" --mode hybrid --input "$img")" || fail "infer hybrid (kept)"
grep -q "^class: 7" <<<"$out" || fail "hybrid infer with a kept program gave: $out"

# Bad input: clear errors, exit code 1.
expect_error() {  # pattern, command...
  local pattern="$1"; shift
  local err; err="$("$@" 2>&1 >/dev/null)"; local rc=$?
  [ $rc -eq 1 ] || fail "expected exit 1 from: $* (got $rc: $err)"
  grep -qi -- "$pattern" <<<"$err" || fail "expected '$pattern' in: $err"
}
expect_error "VEIL_PLAINTEXT_CACHE_GIB" env VEIL_PLAINTEXT_CACHE_GIB=lots "$veil" infer --model "$model" --input "$img"
head -c 1000 "$model" > "$tmp/trunc.onnx"
expect_error "trunc.onnx" "$veil" plan --model "$tmp/trunc.onnx"
printf 'not an image at all' > "$tmp/bad.png"
expect_error "bad.png" "$veil" infer --model "$model" --input "$tmp/bad.png"
head -c 100 "$tmp/in.ct" > "$tmp/trunc.ct"
expect_error "truncated\|too short" "$veil" run --model "$model" --keys "$tmp/server" --in "$tmp/trunc.ct" --out "$tmp/x.ct"
expect_error "secret.key" "$veil" decrypt --model "$model" --keys "$tmp/server" --in "$tmp/out.ct"
expect_error "drop one of the two" "$veil" eval --model "$model" --mode hybrid --simulate --plot "$tmp/x.png"
expect_error "skipping 16 records leaves none" "$veil" eval --model "$model" -d "$samples" --skip 16
expect_error "out of range" "$veil" infer --model "$model" --input "$root/models/samples/mnist-test-first16-images-idx3-ubyte" --index 99
"$veil" keygen --model "$model" --scale-bits 25 --keys "$tmp/k2" >/dev/null || fail "keygen other parameters"
expect_error "other parameters" "$veil" run --model "$model" --keys "$tmp/k2" --in "$tmp/in.ct" --out "$tmp/x.ct"
# A ciphertext that never went through the model is not decrypted into a class.
expect_error "not a result of this model" "$veil" decrypt --model "$model" --keys "$tmp/k" --in "$tmp/in.ct"
# A weight of 1e38 is refused when the model is loaded, naming the layer.
patch="$root/tests/cli/patch_onnx.py"
/usr/bin/python3 "$patch" "$model" "$tmp/huge.onnx" fc1.weight 0 1e38 || fail "patch_onnx"
expect_error "layer '/fc1/Gemm.*weight of magnitude" "$veil" infer --model "$tmp/huge.onnx" --input "$img"
# A weight that passes the planner but makes the logits wrap around the modulus: infer
# and eval print what they got and exit 1, naming the stage where the answers part.
/usr/bin/python3 "$patch" "$model" "$tmp/wrap.onnx" fc2.weight 5 1e5 || fail "patch_onnx"
expect_error "disagree.*stage 4 '/fc2/Gemm'" "$veil" infer --model "$tmp/wrap.onnx" --input "$img"
expect_error "disagree.*stage 4 '/fc2/Gemm'" "$veil" eval --model "$tmp/wrap.onnx" --count 2 \
  --data "$root/models/samples/mnist-test-first16-images-idx3-ubyte"
# The same through a ring switch (mnist-delphi's last two stages at half the degree):
# the server needs ring-switch.key besides the other keys, and says so when it is missing.
delphi="$root/models/mnist-delphi.onnx"
rs=(--model "$delphi" --ring-switch-after 6)
"$veil" keygen "${rs[@]}" --keys "$tmp/r" >/dev/null || fail "keygen with a ring switch"
[ -f "$tmp/r/ring-switch.key" ] || fail "keygen wrote no ring-switch.key"
"$veil" encrypt "${rs[@]}" --keys "$tmp/r" --input "$img" --out "$tmp/rin.ct" >/dev/null || fail "encrypt (ring switch)"
mkdir -p "$tmp/rserver" && cp "$tmp/r/params.bin" "$tmp/r/relin.key" "$tmp/r/galois.key" "$tmp/rserver/"
expect_error "ring-switch.key" "$veil" run "${rs[@]}" --keys "$tmp/rserver" --in "$tmp/rin.ct" --out "$tmp/rout.ct"
cp "$tmp/r/ring-switch.key" "$tmp/rserver/"
"$veil" run "${rs[@]}" --keys "$tmp/rserver" --in "$tmp/rin.ct" --out "$tmp/rout.ct" >/dev/null || fail "run (ring switch)"
out="$("$veil" decrypt "${rs[@]}" --keys "$tmp/r" --in "$tmp/rout.ct")" || fail "decrypt (ring switch)"
grep -q "^class: 7" <<<"$out" || fail "decrypt after a ring switch gave: $out"

echo "cli tests passed"
