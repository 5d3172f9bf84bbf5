#!/usr/bin/env bash
# The main job, for now: install, build palisadectl, validate the example policies in
# deploy/examples/ and ask palisadectl what the sidecar would decide for a handful of
# requests and connections, allowed and denied. Each answer is checked against what the
# policies say, so a wrong decision stops the demo with an error.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target palisadectl -j "$(nproc)" >/dev/null

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

bold "demo: every decision came out as the policies say, and the CA's certificates verify"
