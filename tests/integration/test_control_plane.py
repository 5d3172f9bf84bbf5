"""palisade-cp, the control plane's certificate service, with real clients: python3-grpcio
over TLS (health, CreateCertificate with a join token, a reused token, an identity mismatch,
Kubernetes service-account JWTs signed by the test's own RSA key against a JWKS), and sidecars
that get their SVIDs from it (join tokens only, no certificate files): traffic A -> B across
renewals of 1-minute certificates and across a control-plane restart with zero failed requests,
and a sidecar whose join token was already used exiting with the refusal."""

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_A, ID_B, SERVICE_HOST, SERVICE_PORT  # noqa: E402

try:
    import grpc
except ImportError:  # pragma: no cover
    grpc = None

CREATE = "/palisade.v1.CertificateService/CreateCertificate"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SERVING = b"\x08\x01"  # grpc.health.v1.HealthCheckResponse{status: SERVING}
JWT_ISSUER = "https://kubernetes.default.svc.cluster.local"
MIN_DOWN_S = 8  # the least time the control plane stays killed


def openssl(*args, input=None):
    proc = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args),
                                                      proc.stderr.decode("utf-8", "replace")))
    return proc.stdout


def make_csr(directory, name, uri=None):
    """A fresh P-256 key and a CSR for it (openssl req), optionally with a URI SAN. Returns
    (csr PEM text, key path)."""
    key = os.path.join(directory, name + ".key")
    csr = os.path.join(directory, name + ".csr")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    args = ["req", "-new", "-key", key, "-subj", "/O=itest", "-out", csr]
    if uri:
        args += ["-addext", "subjectAltName=URI:" + uri]
    openssl(*args)
    return harness.read_text(csr), key


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class RsaSigner:
    """An RSA key made with openssl genpkey, its JWKS entry, and RS256 JWS compact tokens
    signed with openssl dgst."""

    def __init__(self, directory, name, kid):
        self.kid = kid
        self.key = os.path.join(directory, name + ".pem")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                self.key)
        modulus = openssl("rsa", "-in", self.key, "-noout", "-modulus").decode().strip()
        n = int(modulus.split("=", 1)[1], 16)
        self.jwk = {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                    "n": b64url(n.to_bytes((n.bit_length() + 7) // 8, "big")),
                    "e": b64url((65537).to_bytes(3, "big"))}

    def token(self, claims, kid=None):
        header = {"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode()))
        signature = openssl("dgst", "-sha256", "-sign", self.key,
                            input=signing_input.encode())
        return signing_input + "." + b64url(signature)


def sa_claims(ns, sa, audience="palisade-cp", exp_in=600, now=None):
    """The claims of a projected service-account token for system:serviceaccount:NS:SA."""
    now = int(now or time.time())
    return {"iss": JWT_ISSUER, "aud": [audience], "sub": "system:serviceaccount:%s:%s" % (ns, sa),
            "iat": now, "nbf": now, "exp": now + exp_in,
            "kubernetes.io": {"namespace": ns,
                              "serviceaccount": {"name": sa, "uid": "8e3c9d4a-0000-4000-8000-1"},
                              "pod": {"name": sa + "-7d9f8", "uid": "8e3c9d4a-0000-4000-8000-2"}}}


def leaf_sans(pem_text, directory):
    path = os.path.join(directory, "leaf-%d.pem" % time.monotonic_ns())
    harness.write_file(path, pem_text)
    return openssl("x509", "-in", path, "-noout", "-ext", "subjectAltName").decode()


def uri_sans(pem_text, directory):
    return re.findall(r"URI:(\S+?)(?:,|\s|$)", leaf_sans(pem_text, directory))


class ControlPlaneTest(harness.IntegrationTest):
    """One palisade-cp per test (its own data directory, CA and ports)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if grpc is None:
            raise unittest.SkipTest("python3-grpcio is not installed")
        if not os.access(harness.CP, os.X_OK):
            raise unittest.SkipTest("palisade-cp not built: %s" % harness.CP)
        # Message classes for ca.proto only: health.proto's package `grpc` would shadow grpcio.
        gen = os.path.join(cls.class_dir, "gen")
        os.makedirs(gen)
        proto = os.path.join(harness.REPO, "proto")
        subprocess.run(["protoc", "-I", proto, "--python_out=" + gen,
                        os.path.join(proto, "palisade", "v1", "ca.proto")], check=True,
                       timeout=60)
        sys.path.insert(0, gen)
        from palisade.v1 import ca_pb2
        cls.pb = ca_pb2

    @classmethod
    def tearDownClass(cls):
        gen = os.path.join(cls.class_dir, "gen")
        if gen in sys.path:
            sys.path.remove(gen)
        super().tearDownClass()

    # --- gRPC clients

    def channel(self, cp, cert_chain=None, key=None):
        """A TLS channel to palisade-cp trusting DATA/ca/root.crt, with the serving
        certificate's DNS name (it is reached as 127.0.0.1)."""
        with open(cp.root, "rb") as f:
            root = f.read()
        creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key,
                                             certificate_chain=cert_chain)
        ch = grpc.secure_channel(cp.address, creds, options=[
            ("grpc.ssl_target_name_override", harness.CP_TLS_NAME)])
        self.addCleanup(ch.close)
        return ch

    def create(self, cp, csr, join_token=None, service_account_token=None, ttl=0):
        """CreateCertificate; returns the response or raises grpc.RpcError."""
        call = self.channel(cp).unary_unary(
            CREATE, request_serializer=self.pb.CertificateRequest.SerializeToString,
            response_deserializer=self.pb.CertificateResponse.FromString)
        req = self.pb.CertificateRequest(csr=csr, validity_duration=ttl)
        if join_token is not None:
            req.join_token = join_token
        if service_account_token is not None:
            req.service_account_token = service_account_token
        return call(req, timeout=10)

    def assertRefused(self, cp, code, **kwargs):
        with self.assertRaises(grpc.RpcError) as ctx:
            self.create(cp, **kwargs)
        self.assertEqual(ctx.exception.code(), code,
                         "%s: %s\n%s" % (ctx.exception.code(), ctx.exception.details(),
                                         self.logs()))
        return ctx.exception

    def assertIssuedFor(self, cp, resp, spiffe_id, key):
        """The response's leaf names spiffe_id (its only URI SAN), chains to the CA's root,
        holds the CSR's key, and the response's bundle is that root."""
        self.assertEqual(resp.spiffe_id, spiffe_id)
        self.assertGreaterEqual(len(resp.cert_chain), 1)
        self.assertEqual(uri_sans(resp.cert_chain[0], self.dir), [spiffe_id])
        chain = os.path.join(self.dir, "chain-%d.pem" % time.monotonic_ns())
        harness.write_file(chain, "".join(p if p.endswith("\n") else p + "\n"
                                          for p in resp.cert_chain))
        proc = subprocess.run([harness.PALISADECTL, "svid", "verify", "--bundle", cp.root,
                               chain], capture_output=True, text=True, timeout=30)
        self.assertEqual((proc.returncode, proc.stdout.strip()), (0, spiffe_id), proc.stderr)
        self.assertEqual(openssl("x509", "-in", chain, "-noout", "-pubkey"),
                         openssl("pkey", "-in", key, "-pubout"),
                         "the leaf does not carry the CSR's key")
        with open(cp.root) as f:
            root = f.read()
        self.assertEqual([(b.trust_domain, [r.strip() for r in b.roots])
                          for b in resp.trust_bundles], [("cluster.local", [root.strip()])])
        return chain

    # --- 1. health and a join token over python3-grpcio

    def test_grpc_health_serving_and_join_token_certificate(self):
        cp = harness.ControlPlane(self)
        health = self.channel(cp).unary_unary(HEALTH_CHECK)
        self.assertEqual(health(b"", timeout=10), SERVING)
        spiffe_id = "spiffe://cluster.local/ns/vm/sa/billing"
        token = cp.token(spiffe_id)
        self.assertRegex(token, r"^pjt_[A-Za-z0-9_-]+$")
        csr, key = make_csr(self.dir, "billing", spiffe_id)
        before = time.time()
        resp = self.create(cp, csr, join_token=token)
        self.assertIssuedFor(cp, resp, spiffe_id, key)
        # The default lifetime (1h).
        self.assertAlmostEqual(resp.expires_unix, before + 3600, delta=30)
        self.assertEqual(cp.metric("palisade_cp_certificates_issued_total",
                                   method="join_token"), 1)

    def test_csr_without_uri_san_gets_the_tokens_identity(self):
        # The CSR need not name the identity: the token decides it.
        cp = harness.ControlPlane(self)
        spiffe_id = "spiffe://cluster.local/ns/vm/sa/batch"
        csr, key = make_csr(self.dir, "batch")
        resp = self.create(cp, csr, join_token=cp.token(spiffe_id), ttl=120)
        self.assertIssuedFor(cp, resp, spiffe_id, key)
        self.assertAlmostEqual(resp.expires_unix, time.time() + 120, delta=30)

    # --- 2. a one-time token used twice

    def test_reused_join_token_unauthenticated_and_counted(self):
        cp = harness.ControlPlane(self)
        spiffe_id = "spiffe://cluster.local/ns/vm/sa/once"
        token = cp.token(spiffe_id)
        csr, key = make_csr(self.dir, "once", spiffe_id)
        self.assertIssuedFor(cp, self.create(cp, csr, join_token=token), spiffe_id, key)
        csr2, _ = make_csr(self.dir, "once-again", spiffe_id)
        err = self.assertRefused(cp, grpc.StatusCode.UNAUTHENTICATED, csr=csr2,
                                 join_token=token)
        self.assertIn("join_token", err.details())
        metrics = cp.metrics()
        self.assertEqual(harness.metric_value(metrics, "palisade_cp_attestation_failures_total",
                                              method="join_token", reason="unknown"), 1,
                         metrics)
        self.assertEqual(harness.metric_value(metrics, "palisade_cp_certificate_refusals_total",
                                              method="join_token"), 1, metrics)
        self.assertEqual(harness.metric_value(metrics, "palisade_cp_certificates_issued_total",
                                              method="join_token"), 1, metrics)

    def test_two_use_token_redeemed_twice_then_refused(self):
        cp = harness.ControlPlane(self)
        spiffe_id = "spiffe://cluster.local/ns/vm/sa/twice"
        token = cp.token(spiffe_id, uses=2)
        for i in range(2):
            csr, key = make_csr(self.dir, "twice-%d" % i, spiffe_id)
            self.assertIssuedFor(cp, self.create(cp, csr, join_token=token), spiffe_id, key)
        csr, _ = make_csr(self.dir, "twice-3", spiffe_id)
        self.assertRefused(cp, grpc.StatusCode.UNAUTHENTICATED, csr=csr, join_token=token)
        self.assertEqual(cp.metric("palisade_cp_attestation_failures_total",
                                   method="join_token"), 1)

    # --- 3. a CSR asking for another identity than the token's

    def test_identity_mismatch_permission_denied_and_counted(self):
        cp = harness.ControlPlane(self)
        token = cp.token("spiffe://cluster.local/ns/default/sa/a")
        csr, _ = make_csr(self.dir, "b", "spiffe://cluster.local/ns/default/sa/b")
        err = self.assertRefused(cp, grpc.StatusCode.PERMISSION_DENIED, csr=csr,
                                 join_token=token)
        self.assertIn("spiffe://cluster.local/ns/default/sa/b", err.details())
        metrics = cp.metrics()
        self.assertEqual(harness.metric_value(metrics, "palisade_cp_certificate_refusals_total",
                                              reason="identity_mismatch",
                                              method="join_token"), 1, metrics)
        self.assertEqual(harness.metric_value(metrics, "palisade_cp_certificates_issued_total"),
                         0, metrics)

    # --- 4. Kubernetes service-account tokens against a JWKS

    def test_service_account_tokens(self):
        signer = RsaSigner(self.dir, "sa-signer", "k8s-key-1")
        stranger = RsaSigner(self.dir, "stranger", "k8s-key-1")  # same kid, other key
        jwks = os.path.join(self.dir, "jwks.json")
        harness.write_file(jwks, json.dumps({"keys": [signer.jwk]}))
        cp = harness.ControlPlane(self, extra_args=["--jwks", jwks,
                                                    "--token-audience", "palisade-cp"])
        want = "spiffe://cluster.local/ns/ns1/sa/sa1"

        csr, key = make_csr(self.dir, "sa1", want)
        resp = self.create(cp, csr, service_account_token=signer.token(sa_claims("ns1", "sa1")))
        self.assertIssuedFor(cp, resp, want, key)
        self.assertEqual(cp.metric("palisade_cp_certificates_issued_total", method="k8s_psat"),
                         1)

        # A CSR without SAN: the token's account decides.
        csr, key = make_csr(self.dir, "sa1-nosan")
        resp = self.create(cp, csr, service_account_token=signer.token(sa_claims("ns1", "sa1")))
        self.assertIssuedFor(cp, resp, want, key)

        cases = [
            ("forged", stranger.token(sa_claims("ns1", "sa1")), {"bad_signature"}),
            ("unknown kid", stranger.token(sa_claims("ns1", "sa1"), kid="other-kid"),
             {"unknown_key"}),
            ("expired", signer.token(sa_claims("ns1", "sa1", exp_in=-600)), {"expired"}),
            ("wrong audience", signer.token(sa_claims("ns1", "sa1", audience="kubernetes")),
             {"wrong_audience"}),
            ("tampered claims", _swap_payload(signer.token(sa_claims("ns1", "sa1")),
                                              sa_claims("kube-system", "admin")),
             {"bad_signature"}),
        ]
        for name, token, reasons in cases:
            with self.subTest(name):
                before = cp.metrics()
                csr, _ = make_csr(self.dir, "refused", want)
                err = self.assertRefused(cp, grpc.StatusCode.UNAUTHENTICATED, csr=csr,
                                         service_account_token=token)
                self.assertIn("k8s_psat", err.details())
                after = cp.metrics()
                grew = {r for r in reasons if
                        harness.metric_value(after, "palisade_cp_attestation_failures_total",
                                             method="k8s_psat", reason=r) -
                        harness.metric_value(before, "palisade_cp_attestation_failures_total",
                                             method="k8s_psat", reason=r) == 1}
                self.assertEqual(grew, reasons, "%s: %s\n%s" % (name, err.details(), after))
        # The account a mismatched CSR asks for is refused like a join token's.
        csr, _ = make_csr(self.dir, "sa1-other", "spiffe://cluster.local/ns/ns1/sa/other")
        self.assertRefused(cp, grpc.StatusCode.PERMISSION_DENIED, csr=csr,
                           service_account_token=signer.token(sa_claims("ns1", "sa1")))
        self.assertEqual(cp.metric("palisade_cp_certificates_issued_total", method="k8s_psat"),
                         2)

    # --- sidecars bootstrapped from the control plane

    def cp_mesh(self, cp, app_port, **cp_fields):
        """B (inbound 8000 -> app) and A (outbound listener for SERVICE_HOST:8000 -> B), both
        with join tokens only and 1-minute certificates. A opens one mTLS connection per app
        connection (pooledHttp: false), so each request is a handshake with the current
        certificates of both sides."""
        fields = {"certificateTtl": "1m", "renewFraction": "0.5", "renewJitter": "0.05",
                  "retryInitial": "500ms", "retryMax": "2s"}
        fields.update(cp_fields)
        b = cp.sidecar("b", cp.token(ID_B), control_plane=fields, labels={"app": "httpbin"},
                       inbound_ports=[{"targetPort": app_port, "protocol": "HTTP"}])
        se = harness.service_entry(SERVICE_HOST, b.inbound_port, [ID_B])
        a = cp.sidecar("a", cp.token(ID_A), control_plane=fields, labels={"app": "sleep"},
                       outbound=[(SERVICE_HOST, SERVICE_PORT)], services={"httpbin.yaml": se},
                       outbound_options={"pooledHttp": "false"})
        return a, b

    def traffic(self, a):
        """Requests through A -> B in a thread until stop() (a new app connection each)."""
        results = []
        stop = threading.Event()

        def loop():
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    r = harness.http_request(a.outbound_port(), "/loop/%d" % i, timeout=10)
                    results.append((time.time(), r.status, r.body[:200]))
                except Exception as e:  # noqa: BLE001: every failure counts
                    results.append((time.time(), None, repr(e)))
                time.sleep(0.02)
        t = threading.Thread(target=loop, daemon=True)
        t.start()

        def stop_traffic():
            stop.set()
            t.join(30)
            return results
        self.addCleanup(stop.set)
        return results, stop_traffic

    def assertNoFailures(self, results, at_least):
        bad = [r for r in results if r[1] != 200]
        self.assertWithLogs(len(results) >= at_least and not bad,
                            "%d requests (want >= %d), %d failed: %r" %
                            (len(results), at_least, len(bad), bad[:5]))

    def test_sidecars_from_join_tokens_renew_under_traffic_zero_failures(self):
        cp = harness.ControlPlane(self)
        app = harness.http_app(self)
        a, b = self.cp_mesh(cp, app.port)
        for s, want in ((a, ID_A), (b, ID_B)):
            certs = s.admin("GET", "/certs")[1]
            self.assertIn(want, certs)
        first = {s.name: _serial(s) for s in (a, b)}
        first_expiry = {s.name: s.metric("palisade_certificate_expiry_timestamp_seconds")
                        for s in (a, b)}
        started = time.time()
        for s in (a, b):
            # The 1-minute lifetime the bootstrap asked for (the CA backdates notBefore).
            self.assertAlmostEqual(first_expiry[s.name], started + 60, delta=10)
        self.assertEqual(harness.http_request(a.outbound_port(), "/first").status, 200)
        results, stop = self.traffic(a)
        # Traffic runs until both first certificates have expired: from then on every
        # handshake needs a renewed certificate on both sides.
        end = max(first_expiry.values()) + 3
        renewed_at = {}
        while time.time() < end:
            for s in (a, b):
                if s.name not in renewed_at and _serial(s) not in (None, first[s.name]):
                    renewed_at[s.name] = time.time()
            self.assertWithLogs(all(p.alive() for p in self.procs), "a process died")
            time.sleep(0.5)
        results = stop()
        self.assertNoFailures(results, 100)
        self.assertEqual(set(renewed_at), {"a", "b"},
                         "no renewal seen in /certs: %r" % renewed_at)
        self.assertGreaterEqual(cp.metric("palisade_cp_certificates_issued_total",
                                          method="renewal"), 2)
        for s in (a, b):
            self.assertGreaterEqual(s.metric("palisade_config_reloads_total", kind="identity",
                                             result="ok"), 1)
            self.assertGreater(s.metric("palisade_certificate_expiry_timestamp_seconds"),
                               first_expiry[s.name])
        with self.subTest("renewal at about half the lifetime, not at once"):
            # certificateTtl 1m, renewFraction 0.5, renewJitter 0.05: the first renewal is due
            # 27-33 s after the first certificate was issued, and no more than ~2 per sidecar
            # fit in the ~63 s of traffic.
            renewals = cp.metric("palisade_cp_certificates_issued_total", method="renewal")
            for name, at in renewed_at.items():
                self.assertGreaterEqual(at - started, 20, "%s renewed %.1f s after start; %d "
                                        "renewals in %.0f s for two sidecars; now /certs %s" %
                                        (name, at - started, renewals, time.time() - started,
                                         a.admin("GET", "/certs")[1]))
            self.assertLessEqual(renewals, 6, "%d renewals in %.0f s for two sidecars" %
                                 (renewals, time.time() - started))

    def test_control_plane_restart_under_traffic_zero_failures(self):
        cp = harness.ControlPlane(self)
        app = harness.http_app(self)
        # Renewals are due 12-18 s after issue; retries every 0.5-2 s while the CP is away.
        a, b = self.cp_mesh(cp, app.port, renewFraction="0.25")
        results, stop = self.traffic(a)
        marks = {s.name: s.proc.log_mark() for s in (a, b)}
        cp.kill()
        down_at = time.time()
        for s in (a, b):
            self.wait_for_log(s.proc, r"agent: renewal failed", 40, since=marks[s.name])
        # Down for a while whatever the renewal schedule: handshakes go on with the current
        # certificates while the agents back off.
        time.sleep(max(0.0, down_at + MIN_DOWN_S - time.time()))
        self.assertWithLogs(all(p.alive() for p in (a.proc, b.proc)), "a sidecar died")
        down_results = [r for r in results if r[0] >= down_at]
        marks = {s.name: s.proc.log_mark() for s in (a, b)}
        serials = {s.name: _serial(s) for s in (a, b)}
        cp.start()
        self.wait_for(lambda: cp.metric("palisade_cp_certificates_issued_total",
                                        method="renewal") >= 2, 30,
                      "both renewals counted on the restarted control plane")
        for s in (a, b):
            self.wait_for_log(s.proc, r"identity: new certificate", 10, since=marks[s.name])
            self.wait_for(lambda: _serial(s) not in (None, serials[s.name]), 10,
                          "%s's /certs to show the renewed certificate" % s.name)
        time.sleep(1)
        results = stop()
        self.assertNoFailures(down_results, 50)
        self.assertNoFailures(results, 100)
        self.assertEqual(cp.metric("palisade_cp_certificates_issued_total", method="join_token"),
                         0, "the sidecars attested again instead of renewing")

    # --- 7. a refused join token stops the sidecar

    def test_sidecar_with_used_join_token_exits_with_refusal(self):
        cp = harness.ControlPlane(self)
        token = cp.token(ID_B)
        csr, _ = make_csr(self.dir, "thief", ID_B)
        self.create(cp, csr, join_token=token)  # the one use
        s = cp.sidecar("b", token, start=False)
        proc = self.start_process("proxy-b", s.args)
        rc = proc.wait(30)
        self.assertWithLogs(rc is not None and rc != 0,
                            "the sidecar did not exit non-zero within 30 s: %s" % rc)
        line = proc.find_log(r"refused")
        self.assertWithLogs(line is not None and "UNAUTHENTICATED" in line,
                            "no refusal naming UNAUTHENTICATED in the log: %r" % line)
        self.assertNoLog(proc, r"palisade-proxy: ready")
        self.assertEqual(cp.metric("palisade_cp_attestation_failures_total",
                                   method="join_token", reason="unknown"), 1)


def _swap_payload(token, claims):
    header, _, signature = token.split(".")
    return "%s.%s.%s" % (header, b64url(json.dumps(claims).encode()), signature)


def _serial(sidecar):
    """The serial number of the certificate in the sidecar's admin /certs, or None."""
    try:
        status, body = sidecar.admin("GET", "/certs")
    except OSError:
        return None
    if status != 200:
        return None
    certs = json.loads(body).get("certificates") or [{}]
    return certs[0].get("serialNumber")


if __name__ == "__main__":
    unittest.main(verbosity=2)
