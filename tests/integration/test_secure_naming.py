"""Secure naming on the outbound side: sidecar A accepts only a server SVID the ServiceEntry's
subjectAltNames allow. An impostor B (a valid mesh SVID, the wrong identity) is refused: A logs
`secure_naming`, the client gets 503 or a closed connection, the app sees nothing."""

import http.client
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_B  # noqa: E402

IMPOSTOR = "spiffe://cluster.local/ns/foo/sa/impostor"


class SecureNamingTest(harness.IntegrationTest):

    def test_http_impostor_server_refused(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_svid=self.pki.issue(IMPOSTOR), sans=[ID_B])
        try:
            resp = harness.http_request(a.outbound_port(), "/secret")
            self.assertWithLogs(resp.status == 503, "impostor answered: %r" % resp)
        except (http.client.HTTPException, OSError):
            pass  # a closed connection is the other accepted outcome
        line = self.wait_for_log(a.proc, r"secure_naming", 5)
        self.assertIn(IMPOSTOR, line)
        self.assertEqual(app.requests(), [])
        self.assertGreaterEqual(a.metric("palisade_tls_handshake_failures_total",
                                         direction="outbound", reason="secure_naming"), 1)

    def test_tcp_impostor_server_refused(self):
        app = harness.tcp_app(self)
        a, b = self.mesh(app.port, protocol="TCP", b_svid=self.pki.issue(IMPOSTOR), sans=[ID_B])
        with socket.create_connection(("127.0.0.1", a.outbound_port()), timeout=10) as s:
            try:
                s.sendall(b"secret")
            except OSError:
                pass
            data, closed = harness.recv_until_closed(s, 10)
        self.assertWithLogs(closed and data == b"", "impostor path: closed=%s data=%r" %
                            (closed, data))
        self.wait_for_log(a.proc, r"secure_naming", 5)
        self.assertEqual([r for r in app.records() if "received" in r], [])

    def test_server_from_unknown_ca_refused(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_svid=self.pki.issue(ID_B, ca=self.pki.unknown))
        try:
            resp = harness.http_request(a.outbound_port(), "/secret")
            self.assertWithLogs(resp.status == 503, "untrusted server answered: %r" % resp)
        except (http.client.HTTPException, OSError):
            pass
        self.assertEqual(app.requests(), [])
        self.wait_for(lambda: a.metric("palisade_tls_handshake_failures_total",
                                       direction="outbound", reason="untrusted") >= 1, 5,
                      "an outbound untrusted handshake failure counted")

    def test_server_with_expired_svid_refused(self):
        import time
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_svid=self.pki.expired(ID_B, expires_in=4))
        time.sleep(5)  # B's SVID has expired; A has not connected to B yet
        try:
            resp = harness.http_request(a.outbound_port(), "/late")
            self.assertWithLogs(resp.status == 503, "expired server answered: %r" % resp)
        except (http.client.HTTPException, OSError):
            pass
        self.assertEqual(app.requests(), [])

    def test_any_of_several_allowed_identities_accepted(self):
        # subjectAltNames is a set: B's identity being the second one is fine.
        app = harness.http_app(self)
        a, b = self.mesh(app.port, sans=["spiffe://cluster.local/ns/foo/sa/other", ID_B])
        resp = harness.http_request(a.outbound_port(), "/ok")
        self.assertWithLogs(resp.status == 200, repr(resp))
        self.assertEqual(a.metric("palisade_tls_handshake_failures_total",
                                  direction="outbound", reason="secure_naming"), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
