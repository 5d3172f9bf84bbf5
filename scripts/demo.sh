#!/usr/bin/env bash
# The main job, for now: install, build, validate the example policies in deploy/examples/
# and ask palisadectl what the sidecar would decide for a handful of requests and
# connections; make a CA; then run the real thing on this host: an httpbin-like app behind
# its sidecar enforcing those policies, and two clients (sleep, and an intruder) each behind
# its own sidecar, sending traffic over mutual TLS that is allowed and denied, with the
# sidecar's deny log and metrics shown. Every answer is checked against what the policies
# say, so a wrong decision stops the demo with an error. Everything it starts is stopped by
# PID when it ends, also on Ctrl-C. (The control plane arrives with a later issue.)
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target palisadectl palisade-proxy -j "$(nproc)" >/dev/null

ctl=build/bin/palisadectl
examples=deploy/examples
td=cluster.local

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }

bold "\$ palisadectl authz validate $examples"
$ctl authz validate "$examples"

# expect WANT DESCRIPTION -- palisadectl authz check flags...
expect() {
  local want=$1 what=$2
  shift 3
  bold "# $what"
  echo "\$ palisadectl authz check $*"
  set +e
  $ctl authz check --policies "$examples" "$@"
  local code=$?
  set -e
  local got=ALLOW
  [ $code -eq 1 ] && got=DENY
  if [ $code -gt 1 ] || [ "$got" != "$want" ]; then
    echo "demo: expected $want, palisadectl exited $code" >&2
    exit 1
  fi
}

expect ALLOW "sleep reads /headers on httpbin: ALLOW policy foo/httpbin, rule 0" -- \
  --workload-namespace foo --workload-labels app=httpbin \
  --source spiffe://$td/ns/foo/sa/sleep --method GET --path /headers --port 8000

expect ALLOW "sleep reads /ip: allowed, and the dry-run DENY policy reports it would deny" -- \
  --workload-namespace foo --workload-labels app=httpbin \
  --source spiffe://$td/ns/foo/sa/sleep --method GET --path '/ip?format=json' --port 8000

expect DENY "sleep posts to /post: no ALLOW rule gives sleep POST" -- \
  --workload-namespace foo --workload-labels app=httpbin \
  --source spiffe://$td/ns/foo/sa/sleep --method POST --path /post --port 8000

expect ALLOW "the ingress gateway posts with x-api-version v2.1: allowed, and audited" -- \
  --workload-namespace foo --workload-labels app=httpbin \
  --source spiffe://$td/ns/istio-system/sa/ingress-gateway --method POST --path /post \
  --header 'x-api-version: v2.1' --port 8000

expect DENY "a workload of namespace bar deletes: DENY policy wins over any ALLOW" -- \
  --workload-namespace foo --workload-labels app=httpbin \
  --source spiffe://$td/ns/bar/sa/cleaner --method DELETE --path /anything --port 8000

expect DENY "anyone reads /debug/vars: the mesh-wide DENY in istio-system applies" -- \
  --workload-namespace foo --workload-labels app=httpbin \
  --source spiffe://$td/ns/foo/sa/sleep --method GET --path /debug/vars --port 8000

expect DENY "a plaintext client: mesh-wide mTLS STRICT refuses it before authorization" -- \
  --workload-namespace foo --workload-labels app=httpbin --method GET --path /headers \
  --port 8000

expect ALLOW "web/api opens a TCP connection to postgres from the pod network" -- \
  --workload-namespace db --workload-labels app=postgres --tcp \
  --source spiffe://$td/ns/web/sa/api --source-ip 10.244.3.7 --port 5432

expect DENY "web/api from outside the pod network: ipBlocks does not match" -- \
  --workload-namespace db --workload-labels app=postgres --tcp \
  --source spiffe://$td/ns/web/sa/api --source-ip 192.168.1.20 --port 5432

expect DENY "web/worker: another service account of the same namespace" -- \
  --workload-namespace db --workload-labels app=postgres --tcp \
  --source spiffe://$td/ns/web/sa/worker --source-ip 10.244.3.8 --port 5432 --output json

# The mesh's identity: a CA, a workload certificate, verified as the sidecars will.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/httpbin" "$work/sleep" "$work/intruder"
bold "\$ palisadectl ca init --trust-domain $td --out CA --intermediate"
$ctl ca init --trust-domain "$td" --out "$work/ca" --intermediate
bold "\$ palisadectl cert issue --ca CA --spiffe-id spiffe://$td/ns/foo/sa/sleep --ttl 2m --out SLEEP"
$ctl cert issue --ca "$work/ca" --spiffe-id "spiffe://$td/ns/foo/sa/sleep" --ttl 2m \
  --out "$work/sleep"
bold "\$ palisadectl svid verify --bundle CA/root.crt SLEEP/chain.pem"
got=$($ctl svid verify --bundle "$work/ca/root.crt" "$work/sleep/chain.pem")
echo "$got"
if [ "$got" != "spiffe://$td/ns/foo/sa/sleep" ]; then
  echo "demo: svid verify printed '$got'" >&2
  exit 1
fi
bold "\$ openssl verify -x509_strict -CAfile CA/root.crt -untrusted CA/ca.crt SLEEP/cert.pem"
openssl verify -x509_strict -CAfile "$work/ca/root.crt" -untrusted "$work/ca/ca.crt" \
  "$work/sleep/cert.pem"

# --- Live: sidecars on this host --------------------------------------------------------
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_log() { # FILE PATTERN
  for _ in $(seq 100); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: no '$2' in $1:" >&2
  cat "$1" >&2
  exit 1
}
for who in foo/httpbin foo/sleep bar/intruder; do
  $ctl cert issue --ca "$work/ca" --spiffe-id "spiffe://$td/ns/${who%/*}/sa/${who#*/}" \
    --ttl 1h --out "$work/${who#*/}" >/dev/null
done
app_port=$(free_port)
in_port=$(free_port)
/usr/bin/python3 tests/integration/apps/http_app.py --port "$app_port" --log "$work/app.log" \
  >"$work/app.out" 2>&1 &
pids+=($!)
wait_log "$work/app.out" READY

# sidecar NAME NAMESPACE EXTRA_YAML: writes its bootstrap, checks it, starts it.
sidecar() {
  local name=$1 ns=$2 extra=$3 d=$work/$1
  cat >"$d/bootstrap.yaml" <<YAML
identity:
  certificateChain: chain.pem
  privateKey: key.pem
  trustBundles: [{file: bundle.pem}]
workload: {namespace: $ns, labels: {app: $name}}
admin: 127.0.0.1:$(free_port)
readiness: 127.0.0.1:$(free_port)
metrics: 127.0.0.1:$(free_port)
concurrency: 1
$extra
YAML
  build/bin/palisade-proxy --validate --bootstrap "$d/bootstrap.yaml" >/dev/null
  build/bin/palisade-proxy --bootstrap "$d/bootstrap.yaml" 2>"$d/proxy.log" &
  pids+=($!)
  wait_log "$d/proxy.log" "palisade-proxy: ready"
}
mkdir -p "$work/services"
cat >"$work/services/httpbin.yaml" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: foo}
spec:
  hosts: [httpbin.foo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: $in_port}, serviceAccount: httpbin}]
YAML
bold "# live: httpbin's sidecar enforces $examples; sleep and intruder reach it through theirs"
sidecar httpbin foo "policies: $PWD/$examples
explainDenials: true
inbound:
  address: 127.0.0.1:$in_port
  ports: [{port: 8000, targetPort: $app_port, protocol: HTTP}]"
sleep_port=$(free_port)
intruder_port=$(free_port)
for client in "sleep foo $sleep_port" "intruder bar $intruder_port"; do
  read -r name ns port <<<"$client"
  sidecar "$name" "$ns" "services: $work/services
inbound: {address: 127.0.0.1:$(free_port)}
outbound:
  listeners: [{address: 127.0.0.1:$port, service: httpbin.foo.svc.cluster.local, port: 8000}]"
done
echo "sidecars: httpbin (inbound :$in_port -> app :$app_port), sleep (:$sleep_port), intruder (:$intruder_port)"

# live WANT CLIENT_PORT METHOD PATH [CURL_ARGS...]: one request from an app to its sidecar.
live() {
  local want=$1 port=$2 method=$3 path=$4
  shift 4
  echo "\$ curl -X $method http://127.0.0.1:$port$path $*"
  local got
  got=$(curl -s -o "$work/body" -D "$work/headers" -w '%{http_code}' -X "$method" "$@" \
    "http://127.0.0.1:$port$path")
  echo "HTTP $got $(grep -i '^x-palisade-denied-reason' "$work/headers" | tr -d '\r' || true)"
  if [ "$got" != "$want" ]; then
    echo "demo: expected HTTP $want" >&2
    exit 1
  fi
}
bold "# sleep GETs /headers: allowed; the app sees sleep's identity in X-Forwarded-Client-Cert"
live 200 "$sleep_port" GET /headers
/usr/bin/python3 -c 'import json, sys
headers = {k.lower(): v for k, v in json.load(open(sys.argv[1]))["headers"]}
print("the app saw x-forwarded-client-cert:", headers["x-forwarded-client-cert"])' "$work/body"
bold "# sleep POSTs /post: denied (no ALLOW rule gives sleep POST); the 403 says why"
live 403 "$sleep_port" POST /post
bold "# sleep GETs /debug/vars: the mesh-wide DENY in istio-system"
live 403 "$sleep_port" GET /debug/vars
bold "# sleep tries /x/../debug/vars: normalized to /debug/vars before the check, still denied"
live 403 "$sleep_port" GET /x/../debug/vars --path-as-is
bold "# intruder (namespace bar) GETs /headers: no ALLOW policy matches it"
live 403 "$intruder_port" GET /headers
bold "# a plaintext client straight at httpbin's sidecar: mesh-wide STRICT mTLS refuses it"
if curl -s -m 5 -o /dev/null "http://127.0.0.1:$in_port/headers"; then
  echo "demo: plaintext reached the app" >&2
  exit 1
fi
echo "connection closed"
if grep -q '"path": "/debug' "$work/app.log" || grep -q '"path": "/post' "$work/app.log"; then
  echo "demo: a denied request reached the app" >&2
  exit 1
fi
bold "# why: httpbin's sidecar log"
grep -E "rbac: denied|refused plaintext" "$work/httpbin/proxy.log" | sed 's/^/  /'
metrics=$(sed -n 's/^metrics: //p' "$work/httpbin/bootstrap.yaml")
bold "# how many: curl http://$metrics/stats/prometheus (httpbin's sidecar)"
curl -s "http://$metrics/stats/prometheus" |
  grep -E '^palisade_(http_requests_total|inbound_connections_total)' | grep -v ' 0$' |
  sed 's/^/  /'

bold "demo: every decision came out as the policies say, offline and live"
