# bench/peers/palisade.sh — palisade-proxy as both sidecars, for ../shared/bench-peers/run.sh:
#   ../shared/bench-peers/run.sh "$PWD/bench/peers/palisade.sh"
# client side: an explicit outbound listener on OUT_PORT (HTTP/1.1 and h2c from the load
#   generator; the first bytes choose ALPN h2 or http/1.1 toward the server side), mTLS with
#   the client SVID, secure naming: the server must be spiffe://cluster.local/ns/default/sa/server.
# server side: inbound on IN_PORT, mTLS required (PeerAuthentication STRICT), an ALLOW policy
#   for the client's principal (authorization on), HTTP/1.1 to the backend on APP_PORT, XFCC added.
# PALISADE_POOLED_HTTP=false: per connection (the data-plane path) instead of the default:
# the client side sends requests as streams over its pooled
# HTTP/2-over-mTLS connections (outbound.pooledHttp, issue 6) instead of one mTLS connection
# per app connection.
# PALISADE_SERVER_METRICS_PORT: where the server side serves /stats/prometheus (default: none).
# One worker each (concurrency: 1). PALISADE_PROXY names the binary (default: the Release
# build in build-bench/, made by bench/README.md's command).
PEER_H2C_PORT=$OUT_PORT
PEER_L7=1
PALISADE_ROOT=${PALISADE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PALISADE_PROXY=${PALISADE_PROXY:-$PALISADE_ROOT/build-bench/bin/palisade-proxy}

peer_version() { echo "palisade-proxy $("$PALISADE_PROXY" --version | awk '{print $2}')"; }

peer_start() {
  local d=$RUN_DIR/palisade
  mkdir -p "$d/server-policies" "$d/client-services"
  cat > "$d/server-policies/authz.yaml" <<X
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-client, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]
    to: [{operation: {methods: ["GET", "POST"]}}]
X
  cat > "$d/client-services/server.yaml" <<X
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: server, namespace: default}
spec:
  hosts: [server.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: $IN_PORT}}]
  subjectAltNames: [spiffe://cluster.local/ns/default/sa/server]
X
  cat > "$d/server.yaml" <<X
identity:
  certificateChain: $CERTS/server.pem
  privateKey: $CERTS/server.key
  trustBundles: [{file: $CERTS/ca.pem, trustDomain: cluster.local}]
workload: {namespace: default, labels: {app: server}}
policies: $d/server-policies
inbound:
  address: 127.0.0.1:$IN_PORT
  ports: [{port: 80, targetPort: $APP_PORT, protocol: HTTP}]
admin: 127.0.0.1:0
readiness: 127.0.0.1:0
metrics: 127.0.0.1:${PALISADE_SERVER_METRICS_PORT:-0}
concurrency: 1
X
  cat > "$d/client.yaml" <<X
identity:
  certificateChain: $CERTS/client.pem
  privateKey: $CERTS/client.key
  trustBundles: [{file: $CERTS/ca.pem, trustDomain: cluster.local}]
workload: {namespace: default, labels: {app: client}}
services: $d/client-services
inbound:
  address: 127.0.0.1:0
outbound:
  listeners: [{address: 127.0.0.1:$OUT_PORT, service: server.default.svc.cluster.local, port: 80}]
  pooledHttp: ${PALISADE_POOLED_HTTP:-true}
admin: 127.0.0.1:0
readiness: 127.0.0.1:0
metrics: 127.0.0.1:0
concurrency: 1
X
  "$PALISADE_PROXY" --validate --bootstrap "$d/server.yaml" >/dev/null || return 1
  "$PALISADE_PROXY" --validate --bootstrap "$d/client.yaml" >/dev/null || return 1
  start_bg server "$PROXY_CPUS" "$PALISADE_PROXY" --bootstrap "$d/server.yaml" --log-level warning
  start_bg client "$PROXY_CPUS" "$PALISADE_PROXY" --bootstrap "$d/client.yaml" --log-level warning
  wait_port "$IN_PORT" && wait_port "$OUT_PORT" || {
    cat "$RUN_DIR"/server.out "$RUN_DIR"/client.out >&2; return 1; }
}
