#!/usr/bin/env bash
# Hot swaps under load: the petstore example with `--watch` on a copy of
# examples/petstore.yaml (the full profile's key: API key, throttles, quota,
# access log on), wrk with --latency, alternating a still run and a run
# during which the definition changes every 100 ms (a route added or
# removed, then SIGHUP: each is a deployment the prod stage is pointed at,
# its gateways built and the table swapped). Issue 17's bench: p99 latency
# unchanged within noise, no failed request.
#
#   benches/swap.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Prints, per run, requests per second, p99 latency and non-2xx responses;
# then the median of each mode and the ratio swapping/still for p99. Traffic
# goes only to 127.0.0.1; every run is bounded by SECONDS; the server and
# the swapping loop are stopped at the end.
set -euo pipefail

ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-10}
CONNECTIONS=${3:-32}
PATH_UNDER_TEST=${PATH_UNDER_TEST:-/prod/pets/1}
API_KEY=${API_KEY:-load-key-0123456789abcdef0}
PORT=${PORT:-18093}

cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk is missing; installing it with apt-get" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq wrk >/dev/null
fi

cargo build --release --example petstore >&2
BIN=target/release/examples/petstore

work=$(mktemp -d)
config="$work/petstore.yaml"
cp examples/petstore.yaml "$config"
# The two definitions swapped between: the config, and the config with one
# more route. Each is moved into place whole (a rename), never edited.
cp examples/petstore.yaml "$work/a.yaml"
sed 's|^routes:$|routes:\n  /swapped: [GET]|' examples/petstore.yaml >"$work/b.yaml"
server=""; swapper=""
cleanup() {
    [ -n "$swapper" ] && kill "$swapper" 2>/dev/null || true
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    wait 2>/dev/null || true
    echo "log: $(wc -l <"$work/log") lines, reloads: $(grep -c ': reloaded' "$work/log" || true), refused: $(grep -c 'not reloaded' "$work/err" || true)" >&2
    # A refused reload says why (each problem with its path).
    grep -A3 'not reloaded' "$work/err" | head -12 >&2 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$BIN" --watch --config "$config" --listen "127.0.0.1:$PORT" >"$work/log" 2>"$work/err" &
server=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/log" && break; sleep 0.1; done
grep -q "listening on" "$work/log" || { echo "the server did not start:" >&2; cat "$work/err" >&2; exit 1; }
code=$(curl -s -o /dev/null -w "%{http_code}" -H "x-api-key: $API_KEY" "http://127.0.0.1:$PORT$PATH_UNDER_TEST")
[ "$code" = 200 ] || { echo "GET $PATH_UNDER_TEST answered $code" >&2; exit 1; }

# Every 100 ms for `seconds`: the definition with or without a route
# `/swapped`, then SIGHUP. Ends by itself.
swap_for() { # seconds
    local end=$((SECONDS + $1)) i=0
    while [ "$SECONDS" -lt "$end" ]; do
        if [ $((i % 2)) -eq 0 ]; then next="$work/b.yaml"; else next="$work/a.yaml"; fi
        cp "$next" "$work/next.yaml" && mv "$work/next.yaml" "$config"
        kill -HUP "$server"
        i=$((i + 1))
        sleep 0.1
    done
}

run() { # -> "req/s p99_ms non2xx"
    wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -H "x-api-key: $API_KEY" "http://127.0.0.1:$PORT$PATH_UNDER_TEST" \
        | awk '
            /Requests\/sec/ { rps = $2 }
            $1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                          p99 = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }
            /Non-2xx/ { bad = $NF }
            END { printf "%s %.3f %d\n", rps, p99, bad + 0 }'
}

still_p99=(); swap_p99=(); still_rps=(); swap_rps=()
echo "GET $PATH_UNDER_TEST through a lifecycle (--watch), wrk -t1 -c$CONNECTIONS -d${SECONDS_PER_RUN}s --latency, $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
    read -r rps p99 bad < <(run)
    still_rps+=("$rps"); still_p99+=("$p99")
    echo "round $r still     $rps req/s  p99 ${p99} ms  non-2xx $bad"
    swap_for "$SECONDS_PER_RUN" & swapper=$!
    read -r rps p99 bad < <(run)
    wait "$swapper" 2>/dev/null || true; swapper=""
    swap_rps+=("$rps"); swap_p99+=("$p99")
    echo "round $r swapping  $rps req/s  p99 ${p99} ms  non-2xx $bad"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ms=$(median "${still_p99[@]}"); mw=$(median "${swap_p99[@]}")
echo "median still     $(median "${still_rps[@]}") req/s  p99 $ms ms"
echo "median swapping  $(median "${swap_rps[@]}") req/s  p99 $mw ms"
echo "p99 swapping/still $(awk -v a="$mw" -v b="$ms" 'BEGIN { printf "%.3f", a / b }')"
