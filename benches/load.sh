#!/usr/bin/env bash
# End-to-end throughput: the petstore example bare (no gateway) against the
# same pet store behind the gateway, with wrk on loopback, alternating
# A B A B so that drift on a shared machine hits both alike.
#
#   benches/load.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#   PROFILE=quiet benches/load.sh      # the older, lighter profile
#   PROFILE=edge benches/load.sh       # full, with CORS and compression configured
#   MANAGEMENT_CALLS=10 benches/load.sh
#                                      # the gateway also serves --admin-listen, and
#                                      # benches/management_calls.py makes 10 signed
#                                      # management calls a second for the whole run
#   WRK_HEADER='origin: https://app.example.test' GATEWAY_FLAGS='--config my.yaml' benches/load.sh
#                                      # one more request header, another config
#
# Profiles (PROFILE, default `full`):
# - full: what production runs. The `load` key of examples/petstore.yaml (an
#   API key, the prod stage's per-method throttle and the gateway-wide one,
#   the `production` plan's throttle and daily quota, all generous so nothing
#   is rejected), usage reporting with the access log on, written to a file.
# - quiet: the `bench` key (a plan throttle, no quota) and `--quiet` (no
#   access log): the profile measured before the full one existed.
# - edge: full, on examples/petstore.yaml with API-wide `cors` (one allowed
#   origin) and `minimum_compression_size: 1024`, every request from that
#   origin with `Accept-Encoding: gzip` (the answer stays below the size):
#   issue 16's budget, the front door configured costs no more than 0.95.
#
# MANAGEMENT_CALLS=N (default 0, off): issue 20's budget, a management call
# does not slow the data plane. The script runs through bare and gateway
# rounds alike (its CPU is the same for both); the gateway's admin listener
# answers it. Needs boto3 (pip install boto3).
#
# Prints requests per second for each run, the median of each mode, and the
# ratio gateway/bare (budget: at least 0.95 for the full profile). Traffic
# goes only to 127.0.0.1; every run is bounded by SECONDS and the servers are
# stopped at the end.
set -euo pipefail

ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-10}
CONNECTIONS=${3:-32}
# An uncached method: /prod/pets is cached, and a hit would skip the backend the bare run pays for.
PATH_UNDER_TEST=${PATH_UNDER_TEST:-/prod/pets/1}
PROFILE=${PROFILE:-full}
case "$PROFILE" in
    full|edge) DEFAULT_KEY=load-key-0123456789abcdef0; QUIET= ;;
    quiet) DEFAULT_KEY=bench-key-0123456789abcdef; QUIET=--quiet ;;
    *) echo "PROFILE is full, quiet or edge, not $PROFILE" >&2; exit 2 ;;
esac
EDGE_ORIGIN=https://app.example.test
EDGE_ARGS=()
API_KEY=${API_KEY:-$DEFAULT_KEY}
BARE_PORT=${BARE_PORT:-18090}
GATEWAY_PORT=${GATEWAY_PORT:-18091}
ADMIN_PORT=${ADMIN_PORT:-18092}
MANAGEMENT_CALLS=${MANAGEMENT_CALLS:-0}
ADMIN_ARGS=()
if [ "$MANAGEMENT_CALLS" != 0 ]; then
    python3 -c 'import boto3' 2>/dev/null || { echo "MANAGEMENT_CALLS needs boto3: pip install boto3" >&2; exit 2; }
    ADMIN_ARGS=(--admin-listen "127.0.0.1:$ADMIN_PORT")
fi

cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk is missing; installing it with apt-get" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq wrk >/dev/null
fi

cargo build --release --example petstore >&2
BIN=target/release/examples/petstore

pids=(); logs=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
    # The access log of a full run is hundreds of megabytes: say how much, then drop it.
    for l in "${logs[@]}"; do [ -f "$l" ] && echo "log $(basename "$l"): $(wc -l <"$l") lines" >&2; rm -f "$l"; done
}
trap cleanup EXIT

start() { # mode port
    local log; log=$(mktemp); logs+=("$log")
    if [ "$1" = bare ]; then "$BIN" --bare --listen "127.0.0.1:$2" >"$log" 2>&1 &
    # The access log goes to the log file, as a production server's would;
    # the quiet profile turns it off. GATEWAY_FLAGS adds flags.
    else "$BIN" $QUIET ${GATEWAY_FLAGS:-} "${ADMIN_ARGS[@]}" --listen "127.0.0.1:$2" >"$log" 2>&1 & fi
    pids+=($!)
    for _ in $(seq 1 100); do grep -q "listening on" "$log" && return 0; sleep 0.1; done
    echo "the $1 server did not start:" >&2; cat "$log" >&2; exit 1
}
if [ "$PROFILE" = edge ]; then
    edge_config=$(mktemp --suffix=.yaml); logs+=("$edge_config")
    { cat examples/petstore.yaml
      printf '\nsettings: { cors: { allow_origins: ["%s"] }, minimum_compression_size: 1024 }\n' "$EDGE_ORIGIN"
    } >"$edge_config"
    GATEWAY_FLAGS="--config $edge_config ${GATEWAY_FLAGS:-}"
    EDGE_ARGS=(-H "origin: $EDGE_ORIGIN" -H "accept-encoding: gzip")
fi
start bare "$BARE_PORT"
start gateway "$GATEWAY_PORT"

# Both answer the same request the same way before we measure.
for port in "$BARE_PORT" "$GATEWAY_PORT"; do
    code=$(curl -s -o /dev/null -w "%{http_code}" -H "x-api-key: $API_KEY" "http://127.0.0.1:$port$PATH_UNDER_TEST")
    [ "$code" = 200 ] || { echo "GET $PATH_UNDER_TEST on port $port answered $code" >&2; exit 1; }
done

run() { # port -> requests/sec
    wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" -H "x-api-key: $API_KEY" ${WRK_HEADER:+-H "$WRK_HEADER"} "${EDGE_ARGS[@]}" "http://127.0.0.1:$1$PATH_UNDER_TEST" \
        | awk '/Requests\/sec/ { print $2 }'
}

if [ "$MANAGEMENT_CALLS" != 0 ]; then
    # Bounded: it stops by itself a little after the last round would end.
    budget=$(( ROUNDS * 2 * (SECONDS_PER_RUN + 2) + 10 ))
    python3 benches/management_calls.py "http://127.0.0.1:$ADMIN_PORT" "$MANAGEMENT_CALLS" "$budget" &
    pids=("$!" "${pids[@]}")
    sleep 1
fi

bare=(); gw=()
with=""; [ "$MANAGEMENT_CALLS" = 0 ] || with=", $MANAGEMENT_CALLS management calls/s"
echo "profile $PROFILE$with: GET $PATH_UNDER_TEST, wrk -t1 -c$CONNECTIONS -d${SECONDS_PER_RUN}s, $ROUNDS rounds (A B A B)"
for r in $(seq 1 "$ROUNDS"); do
    b=$(run "$BARE_PORT"); bare+=("$b"); echo "round $r bare     $b req/s"
    g=$(run "$GATEWAY_PORT"); gw+=("$g"); echo "round $r gateway  $g req/s"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mb=$(median "${bare[@]}"); mg=$(median "${gw[@]}")
ratio=$(awk -v g="$mg" -v b="$mb" 'BEGIN { printf "%.3f", g / b }')
echo "median bare     $mb req/s"
echo "median gateway  $mg req/s"
echo "ratio gateway/bare $ratio (budget >= 0.95)"
