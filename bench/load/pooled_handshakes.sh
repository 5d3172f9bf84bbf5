#!/usr/bin/env bash
# bench/load/pooled_handshakes.sh — full mTLS handshakes under keep-alive load between two
# palisade sidecars (bench/peers/palisade.sh, with ../shared/bench-peers/lib.sh's certificates
# and backend): h2load sends REQUESTS requests over CONNS app connections (h2c, STREAMS each,
# then HTTP/1.1), and the server side's palisade_inbound_connections_total{result="accepted"}
# says how many mTLS connections (each a full handshake) carried them.
#   bench/load/pooled_handshakes.sh                          # pooled (the default)
#   PALISADE_POOLED_HTTP=false bench/load/pooled_handshakes.sh   # one per app connection
# Every run is bounded by its request count; processes are stopped by PID on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/../shared/bench-peers
source "$HERE/lib.sh"
REQUESTS=${REQUESTS:-20000}
CONNS=${CONNS:-32}
STREAMS=${STREAMS:-4}
PROXY_CPUS=${PROXY_CPUS:-1}
BACKEND_CPUS=${BACKEND_CPUS:-0}
METRICS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PALISADE_SERVER_METRICS_PORT=$METRICS_PORT
bench_init
start_backend
source "$ROOT/bench/peers/palisade.sh"
peer_start
accepted() {
  curl -sS "http://127.0.0.1:$METRICS_PORT/stats/prometheus" |
    awk '/^palisade_inbound_connections_total\{result="accepted"\}/ {print $2}'
}
before=$(accepted)
h2load -n "$REQUESTS" -c "$CONNS" -m "$STREAMS" "http://127.0.0.1:$OUT_PORT/" > "$RUN_DIR/h2c.h2load"
h2c=$(( $(accepted) - before ))
before=$(accepted)
h2load --h1 -n "$REQUESTS" -c "$CONNS" "http://127.0.0.1:$OUT_PORT/" > "$RUN_DIR/h1.h2load"
h1=$(( $(accepted) - before ))
ok_h2c=$(awk '/^status codes:/ {print $3}' "$RUN_DIR/h2c.h2load")
ok_h1=$(awk '/^status codes:/ {print $3}' "$RUN_DIR/h1.h2load")
echo "pooledHttp=${PALISADE_POOLED_HTTP:-true} h2c: $ok_h2c x 2xx over $CONNS app connections, $h2c mTLS handshakes at the server side"
echo "pooledHttp=${PALISADE_POOLED_HTTP:-true} http/1.1: $ok_h1 x 2xx over $CONNS app connections, $h1 mTLS handshakes at the server side"
