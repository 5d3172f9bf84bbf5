"""Inbound mTLS handshake: a client without a certificate, with one from an unknown CA, from
another trust domain, or expired never reaches the app; B logs `tls: inbound handshake` with
the reason and counts it. Clients: curl and openssl s_client straight at B's inbound port."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_A, ID_C  # noqa: E402

STRICT = {"strict.yaml": harness.peer_authentication("STRICT")}


class HandshakeTest(harness.IntegrationTest):

    def refused(self, b, app, svid, reason, *curl_args):
        mark = b.proc.log_mark()
        before = b.metric("palisade_tls_handshake_failures_total", direction="inbound",
                          reason=reason)
        resp = harness.curl("https://127.0.0.1:%d/secret" % b.inbound_port, svid, *curl_args,
                            directory=self.dir)
        self.assertWithLogs(resp.status == 0, "got an HTTP answer: %r" % resp)
        self.assertNotEqual(resp.rc, 0, resp)
        line = self.wait_for_log(b.proc, r"tls: inbound handshake", 5, since=mark)
        self.assertIn(reason, line)
        self.wait_for(lambda: b.metric("palisade_tls_handshake_failures_total",
                                       direction="inbound", reason=reason) >= before + 1,
                      5, "handshake failure counter reason=%s" % reason)
        self.assertEqual(app.requests(), [])
        # The port still serves a good client afterwards.
        good = harness.curl("https://127.0.0.1:%d/good" % b.inbound_port, self.pki.issue(ID_A),
                            directory=self.dir)
        self.assertWithLogs(good.status == 200, repr(good))
        self.assertEqual([r["path"] for r in app.requests()], ["/good"])
        return line

    def test_no_client_certificate_never_reaches_app(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, b_policies=STRICT, with_a=False)
        self.refused(b, app, None, "no_peer_certificate")

    def test_no_client_certificate_h2_never_reaches_app(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, b_policies=STRICT, with_a=False)
        self.refused(b, app, None, "no_peer_certificate", "--http2")

    def test_permissive_tls_without_client_certificate_never_reaches_app(self):
        # PERMISSIVE accepts plaintext, but a TLS client must still present an SVID.
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        self.refused(b, app, None, "no_peer_certificate")

    def test_unknown_ca_never_reaches_app(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, b_policies=STRICT, with_a=False)
        self.refused(b, app, self.pki.issue(ID_C, ca=self.pki.unknown), "untrusted")

    def test_other_trust_domain_never_reaches_app(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, b_policies=STRICT, with_a=False)
        svid = self.pki.issue("spiffe://other.org/ns/foo/sa/sleep", ca=self.pki.other)
        self.refused(b, app, svid, "unknown_trust_domain")

    def test_expired_certificate_never_reaches_app(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, b_policies=STRICT, with_a=False)
        self.refused(b, app, self.pki.expired(ID_C), "untrusted")

    def test_reconnect_after_client_svid_expired_refused(self):
        # A peer verified once, then its SVID expires: the next handshake must verify the
        # chain at that time again, not reuse an earlier verdict.
        import time
        app = harness.http_app(self)
        _, b = self.mesh(app.port, b_policies=STRICT, with_a=False)
        short = self.pki.expired(ID_C, expires_in=5)
        url = "https://127.0.0.1:%d/early" % b.inbound_port
        for _ in range(3):
            self.assertEqual(harness.curl(url, short, directory=self.dir).status, 200)
        time.sleep(6)
        mark = b.proc.log_mark()
        late = harness.curl("https://127.0.0.1:%d/late" % b.inbound_port, short,
                            directory=self.dir)
        self.assertWithLogs(late.status == 0, "expired SVID accepted on reconnect: %r" % late)
        self.wait_for_log(b.proc, r"tls: inbound handshake", 5, since=mark)
        self.assertEqual([r["path"] for r in app.requests()], ["/early"] * 3)

    def test_openssl_s_client_without_certificate_gets_no_response(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, b_policies=STRICT, with_a=False)
        mark = b.proc.log_mark()
        request = b"GET /secret HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
        proc = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" %
                               b.inbound_port, "-alpn", "http/1.1", "-quiet", "-ign_eof"],
                              input=request, capture_output=True, timeout=30)
        self.assertNotIn(b"HTTP/1.1", proc.stdout)
        self.wait_for_log(b.proc, r"tls: inbound handshake.*no_peer_certificate", 5,
                          since=mark)
        self.assertEqual(app.requests(), [])

    def test_openssl_s_client_with_svid_reaches_app(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, b_policies=STRICT, with_a=False)
        svid = self.pki.issue(ID_C)
        request = b"GET /via-s_client HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
        proc = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" %
                               b.inbound_port, "-alpn", "http/1.1", "-cert", svid.chain,
                               "-key", svid.key, "-CAfile", svid.bundle, "-quiet", "-ign_eof"],
                              input=request, capture_output=True, timeout=30)
        self.assertWithLogs(b"HTTP/1.1 200" in proc.stdout,
                            "s_client: %r %r" % (proc.stdout[-500:], proc.stderr[-1000:]))
        # B's SVID verified against the bundle.
        self.assertIn(b"verify return:1", proc.stderr)
        self.assertNotIn(b"verify error", proc.stderr)
        self.assertEqual([r["path"] for r in app.requests()], ["/via-s_client"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
