"""Opaque TCP: client -> sidecar A (outbound listener, service port protocol TCP) -> mTLS ->
sidecar B (inbound port protocol TCP) -> TCP echo app. L4 authorization on accept: a denied
connection is closed without data and never reaches the app; server-first protocols pass."""

import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_A, ID_C, principal  # noqa: E402

DENY_SLEEP = harness.authz_policy("deny-sleep", "DENY", """\
  - from:
    - source:
        principals: ["%s"]
""" % principal(ID_A))

ALLOW_SLEEP = harness.authz_policy("allow-sleep", "ALLOW", """\
  - from:
    - source:
        principals: ["%s"]
""" % principal(ID_A))


class InboundTcpTest(harness.IntegrationTest):

    def connect(self, port):
        return socket.create_connection(("127.0.0.1", port), timeout=10)

    def test_tcp_allowed_through_sidecars_echoes(self):
        app = harness.tcp_app(self)
        a, b = self.mesh(app.port, protocol="TCP", b_policies={"allow.yaml": ALLOW_SLEEP})
        with self.connect(a.outbound_port()) as s:
            payload = os.urandom(200000)
            s.sendall(payload)
            got = b""
            s.settimeout(10)
            while len(got) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            self.assertWithLogs(got == payload, "echo: %d of %d bytes" % (len(got), len(payload)))
        self.assertEqual(len(app.connections()), 1)
        self.assertGreaterEqual(
            b.metric("palisade_inbound_connections_total", result="accepted"), 1)

    def test_tcp_denied_connection_closed_without_data(self):
        app = harness.tcp_app(self)
        a, b = self.mesh(app.port, protocol="TCP", b_policies={"deny.yaml": DENY_SLEEP})
        mark = b.proc.log_mark()
        with self.connect(a.outbound_port()) as s:
            try:
                s.sendall(b"hello")
            except OSError:
                pass
            data, closed = harness.recv_until_closed(s, 10)
        self.assertWithLogs(closed, "connection still open 10 s after a denied connection")
        self.assertEqual(data, b"")
        line = self.wait_for_log(b.proc, r"rbac: denied connection", 5, since=mark)
        self.assertIn(ID_A, line)
        self.assertIn("foo/deny-sleep", line)
        self.assertEqual(app.connections(), [])
        self.assertGreaterEqual(
            b.metric("palisade_inbound_connections_total", result="denied"), 1)

    def test_tcp_direct_mtls_denied_by_default_deny(self):
        # ALLOW policies present and none matching: deny. The client has a valid SVID.
        app = harness.tcp_app(self)
        _, b = self.mesh(app.port, protocol="TCP", b_policies={"allow.yaml": ALLOW_SLEEP},
                         with_a=False)
        mark = b.proc.log_mark()
        try:
            conn = harness.mtls_connect(b.inbound_port, self.pki.issue(ID_C))
        except OSError:
            conn = None  # a TLS 1.2 server could refuse before the handshake ends; fine
        if conn is not None:
            with conn:
                try:
                    conn.sendall(b"hello")
                except OSError:
                    pass
                data, closed = harness.recv_until_closed(conn, 10)
            self.assertWithLogs(closed, "connection still open after a denied connection")
            self.assertEqual(data, b"")
        line = self.wait_for_log(b.proc, r"rbac: denied connection", 5, since=mark)
        self.assertIn(ID_C, line)
        self.assertIn("no ALLOW policy matched", line)
        self.assertEqual(app.connections(), [])

    def test_tcp_connection_closed_when_peer_certificate_expires(self):
        app = harness.tcp_app(self)
        _, b = self.mesh(app.port, protocol="TCP", with_a=False)
        svid = self.pki.expired(ID_C, expires_in=6)
        conn = harness.mtls_connect(b.inbound_port, svid)
        with conn:
            conn.sendall(b"ping")
            conn.settimeout(10)
            self.assertEqual(conn.recv(4), b"ping")
            data, closed = harness.recv_until_closed(conn, 20)
            self.assertWithLogs(closed, "connection open 20 s after the peer's SVID expired")
        self.assertGreaterEqual(b.metric("palisade_connections_closed_total",
                                         reason="peer_certificate_expired"), 1)

    def test_tcp_server_first_protocol_through_sidecars(self):
        app = harness.tcp_app(self, banner="220 hello from the server\r\n")
        a, b = self.mesh(app.port, protocol="TCP")
        with self.connect(a.outbound_port()) as s:
            s.settimeout(10)
            got = b""
            while not got.endswith(b"\r\n"):
                chunk = s.recv(1024)
                if not chunk:
                    break
                got += chunk
            self.assertWithLogs(got == b"220 hello from the server\r\n", repr(got))
            s.sendall(b"QUIT\r\n")
            self.assertEqual(s.recv(1024), b"QUIT\r\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
