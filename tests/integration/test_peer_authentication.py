"""PeerAuthentication on sidecar B's inbound port: PERMISSIVE (the default) accepts plaintext
beside mTLS by sniffing the first bytes, STRICT refuses plaintext, DISABLE takes plaintext.
Plaintext peers have no identity: no XFCC, and ALLOW policies naming principals deny them."""

import http.client
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_A, ID_B, principal  # noqa: E402

ALLOW_SLEEP = harness.authz_policy("allow-sleep", "ALLOW", """\
  - from:
    - source:
        principals: ["%s"]
""" % principal(ID_A))


class PeerAuthenticationTest(harness.IntegrationTest):

    def plaintext(self, b, path):
        """A plaintext request straight to B's inbound port: a Response, or None when the
        connection was closed without an answer."""
        try:
            return harness.http_request(b.inbound_port, path, timeout=10)
        except (http.client.HTTPException, OSError):
            return None

    def test_permissive_default_plaintext_reaches_app_without_xfcc(self):
        app = harness.http_app(self)
        a_svid = self.pki.issue(ID_A)
        a, b = self.mesh(app.port, a_svid=a_svid)
        resp = self.plaintext(b, "/plain")
        self.assertWithLogs(resp is not None and resp.status == 200, repr(resp))
        self.assertEqual(resp.app_headers("x-forwarded-client-cert"), [])
        # ... and mTLS on the same port.
        resp = harness.http_request(a.outbound_port(), "/mtls")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.app_headers("x-forwarded-client-cert"),
                         [harness.xfcc(ID_B, a_svid)])

    def test_permissive_plaintext_forged_xfcc_removed(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        resp = harness.http_request(b.inbound_port, "/plain", headers={
            "X-Forwarded-Client-Cert": "URI=spiffe://cluster.local/ns/foo/sa/sleep"})
        self.assertWithLogs(resp.status == 200, repr(resp))
        self.assertEqual(resp.app_headers("x-forwarded-client-cert"), [])

    def test_permissive_plaintext_denied_by_allow_policy_naming_principals(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_policies={"allow.yaml": ALLOW_SLEEP})
        resp = self.plaintext(b, "/plain")
        self.assertWithLogs(resp is not None and resp.status == 403, repr(resp))
        self.assertEqual(resp.body, harness.DENIED_BODY)
        self.assertEqual(harness.http_request(a.outbound_port(), "/mtls").status, 200)
        self.assertEqual([r["path"] for r in app.requests()], ["/mtls"])

    def test_strict_refuses_plaintext(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_policies={
            "pa.yaml": harness.peer_authentication("STRICT")})
        resp = self.plaintext(b, "/plain")
        self.assertWithLogs(resp is None, "STRICT answered plaintext: %r" % resp)
        self.assertEqual(harness.http_request(a.outbound_port(), "/mtls").status, 200)
        self.assertEqual([r["path"] for r in app.requests()], ["/mtls"])
        self.assertGreaterEqual(
            b.metric("palisade_inbound_connections_total", result="plaintext_refused"), 1)

    def test_disable_accepts_plaintext(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, b_policies={
            "pa.yaml": harness.peer_authentication("DISABLE")}, with_a=False)
        resp = self.plaintext(b, "/plain")
        self.assertWithLogs(resp is not None and resp.status == 200, repr(resp))
        self.assertEqual(resp.app_headers("x-forwarded-client-cert"), [])

    def test_permissive_to_strict_on_reload(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port)
        self.assertEqual(self.plaintext(b, "/before").status, 200)
        b.write_policy("pa.yaml", harness.peer_authentication("STRICT"))
        self.wait_for(lambda: self.plaintext(b, "/poll") is None, 6,
                      "plaintext refused after switching to STRICT")
        self.assertEqual(harness.http_request(a.outbound_port(), "/mtls").status, 200)

    def test_permissive_server_first_plaintext_after_sniff_timeout(self):
        # The client waits for the server to speak: after sniffTimeout without a ClientHello the
        # connection is plaintext and goes to the app, whose banner reaches the client.
        app = harness.tcp_app(self, banner="220 ready\r\n")
        _, b = self.mesh(app.port, protocol="TCP", with_a=False,
                         b_kwargs={"limits": {"sniffTimeout": "500ms"}})
        with socket.create_connection(("127.0.0.1", b.inbound_port), timeout=10) as s:
            s.settimeout(5)
            start = time.monotonic()
            got = s.recv(100)
            took = time.monotonic() - start
        self.assertWithLogs(got == b"220 ready\r\n", "banner: %r after %.1fs" % (got, took))
        self.assertLess(took, 3)

    def test_strict_plaintext_h2c_refused(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, b_policies={
            "pa.yaml": harness.peer_authentication("STRICT")}, with_a=False)
        resp = harness.curl("http://127.0.0.1:%d/h2c" % b.inbound_port, None,
                            "--http2-prior-knowledge", directory=self.dir)
        self.assertWithLogs(resp.status == 0, repr(resp))
        self.assertEqual(app.requests(), [])


def port_level(workload_mode, port_mode, port=harness.SERVICE_PORT):
    return """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: httpbin
  namespace: foo
spec:
  selector:
    matchLabels:
      app: httpbin
  mtls:
    mode: %s
  portLevelMtls:
    %d:
      mode: %s
""" % (workload_mode, port, port_mode)


class PortLevelMtlsTest(harness.IntegrationTest):
    """portLevelMtls keyed by the inbound port as peers dial it (inbound.ports[].port)."""

    def plaintext_status(self, b):
        try:
            return harness.http_request(b.inbound_port, "/plain", timeout=10).status
        except (http.client.HTTPException, OSError):
            return None

    def test_port_level_permissive_overrides_workload_strict(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False, b_policies={
            "pa.yaml": port_level("STRICT", "PERMISSIVE")})
        self.assertWithLogs(self.plaintext_status(b) == 200, "port-level PERMISSIVE ignored")

    def test_port_level_strict_overrides_namespace_permissive(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_policies={
            "ns.yaml": harness.peer_authentication("PERMISSIVE"),
            "pa.yaml": port_level("PERMISSIVE", "STRICT")})
        self.assertWithLogs(self.plaintext_status(b) is None, "port-level STRICT ignored")
        self.assertEqual(harness.http_request(a.outbound_port(), "/mtls").status, 200)

    def test_other_port_level_entry_leaves_workload_mode(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False, b_policies={
            "pa.yaml": port_level("STRICT", "PERMISSIVE", port=9999)})
        self.assertWithLogs(self.plaintext_status(b) is None,
                            "STRICT workload answered plaintext on a port without an override")


if __name__ == "__main__":
    unittest.main(verbosity=2)
