"""The integration suite's own fixtures, without palisade-proxy: the throw-away PKI (mesh CA,
unknown CA, other trust domain, expired leaf) checked with `palisadectl svid verify`, and the
test apps answering as the other tests expect."""

import datetime
import json
import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_A, ID_C  # noqa: E402


class FixturesTest(harness.IntegrationTest):
    needs_proxy = False

    def verify(self, svid, bundle, *extra):
        return subprocess.run([harness.PALISADECTL, "svid", "verify", "--bundle", bundle,
                               *extra, svid.chain], capture_output=True, text=True, timeout=30)

    def test_mesh_svid_verifies_against_mesh_bundle(self):
        svid = self.pki.issue(ID_A)
        proc = self.verify(svid, self.pki.mesh.root)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(ID_A, proc.stdout)
        for f in ("key.pem", "cert.pem", "chain.pem", "bundle.pem"):
            self.assertTrue(os.path.exists(os.path.join(svid.dir, f)), f)
        self.assertEqual(svid.subject(), "O=palisade")
        self.assertEqual(len(svid.leaf_sha256()), 64)

    def test_unknown_ca_svid_fails_against_mesh_bundle(self):
        svid = self.pki.issue(ID_C, ca=self.pki.unknown)
        self.assertEqual(self.verify(svid, self.pki.unknown.root).returncode, 0)
        self.assertNotEqual(self.verify(svid, self.pki.mesh.root).returncode, 0)

    def test_other_trust_domain_svid(self):
        svid = self.pki.issue("spiffe://other.org/ns/foo/sa/x", ca=self.pki.other)
        self.assertEqual(self.verify(svid, self.pki.other.root).returncode, 0)
        self.assertNotEqual(self.verify(svid, self.pki.mesh.root).returncode, 0)

    def test_expired_svid_fails_verification(self):
        svid = self.pki.expired(ID_C)
        proc = self.verify(svid, self.pki.mesh.root)
        self.assertNotEqual(proc.returncode, 0, proc.stdout)
        self.assertIn("expired", proc.stderr)
        # ... only because of time: just after the CA's notBefore it was valid.
        from cryptography import x509
        with open(self.pki.mesh.root, "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        at = (ca.not_valid_before + datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        proc = self.verify(svid, self.pki.mesh.root, "--at", at)
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_http_app_echoes_headers_and_streams_big(self):
        app = harness.http_app(self)
        resp = harness.http_request(app.port, "/hello?x=1", "POST",
                                    {"X-Forwarded-Client-Cert": "By=x"}, body=b"abc")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json()["method"], "POST")
        self.assertEqual(resp.json()["path"], "/hello?x=1")
        self.assertEqual(resp.app_headers("x-forwarded-client-cert"), ["By=x"])
        self.assertEqual(resp.json()["body_len"], 3)
        big = harness.http_request(app.port, "/big?mb=3")
        self.assertEqual(len(big.body), 3 * 1024 * 1024)
        self.assertEqual(len(app.requests()), 2)

    def test_tcp_app_echoes(self):
        app = harness.tcp_app(self)
        with socket.create_connection(("127.0.0.1", app.port), timeout=5) as s:
            s.sendall(b"ping")
            self.assertEqual(s.recv(4), b"ping")
        self.wait_for(lambda: len(app.connections()) == 1, 5, "one connection logged")

    def test_grpc_app_echoes_metadata(self):
        import grpc
        app = harness.grpc_app(self)
        with grpc.insecure_channel("127.0.0.1:%d" % app.port) as channel:
            echo = channel.unary_unary("/palisade.test.Echo/Echo")
            reply = json.loads(echo(b"hi", metadata=[("x-forwarded-client-cert", "By=x")],
                                    timeout=10))
        self.assertEqual(reply["request"], "hi")
        self.assertEqual(reply["metadata"]["x-forwarded-client-cert"], "By=x")


if __name__ == "__main__":
    unittest.main(verbosity=2)
