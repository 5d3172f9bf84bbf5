"""Policy hot reload on sidecar B (it polls its policies directory about once a second): a good
change takes effect within a few seconds, a bad file is reported with file:line:col and the last
good set keeps serving, and open connections whose peer the new policy denies are closed (opaque
TCP: closed; HTTP/2: GOAWAY, the in-flight stream finishing)."""

import http.client
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import DENIED_BODY, ID_A, ID_C, principal  # noqa: E402

RELOAD_S = 6  # "within ~3 s" plus slack for a loaded machine

DENY_ADMIN = harness.authz_policy("deny-admin", "DENY", """\
  - to:
    - operation:
        paths: ["/admin", "/admin/*"]
""")

BROKEN = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: broken
  namespace: foo
spec:
  action: DENY
  rules:
  - to:
    - operation:
        pathz: ["/ok"]
"""  # line 11: an unknown field


def deny_principal(name, spiffe_id):
    return harness.authz_policy(name, "DENY", """\
  - from:
    - source:
        principals: ["%s"]
""" % principal(spiffe_id))


class HotReloadTest(harness.IntegrationTest):

    def status(self, port, path):
        try:
            return harness.http_request(port, path, timeout=5).status
        except (http.client.HTTPException, OSError) as e:
            return repr(e)

    def policy_version(self, b):
        return b.config_dump()["policies"]["version"]

    def test_policy_added_takes_effect_within_seconds(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port)
        port = a.outbound_port()
        self.assertEqual(self.status(port, "/admin"), 200)
        version = self.policy_version(b)
        b.write_policy("deny-admin.yaml", DENY_ADMIN)
        start = time.monotonic()
        self.wait_for(lambda: self.status(port, "/admin") == 403, RELOAD_S,
                      "/admin denied after the DENY policy was written")
        took = time.monotonic() - start
        self.assertEqual(self.status(port, "/ok"), 200)
        self.assertNotEqual(self.policy_version(b), version)
        self.assertGreaterEqual(b.metric("palisade_config_reloads_total", kind="policies",
                                         result="ok"), 1)
        # ... and removing it takes effect too.
        b.remove_policy("deny-admin.yaml")
        self.wait_for(lambda: self.status(port, "/admin") == 200, RELOAD_S,
                      "/admin allowed again after the DENY policy was removed")
        sys.stderr.write("(policy took effect after %.2fs) " % took)

    def test_bad_policy_rejected_with_position_and_last_good_kept(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_policies={"deny-admin.yaml": DENY_ADMIN})
        port = a.outbound_port()
        self.assertEqual(self.status(port, "/admin"), 403)
        version = self.policy_version(b)
        mark = b.proc.log_mark()
        b.write_policy("broken.yaml", BROKEN)
        line = self.wait_for_log(b.proc, r"broken\.yaml:11:\d+", RELOAD_S, since=mark)
        self.assertIn("pathz", line)
        self.wait_for(lambda: b.metric("palisade_config_reloads_total", kind="policies",
                                       result="rejected") >= 1, 5, "a rejected reload counted")
        # The last good set keeps serving: /admin still denied, /ok (which the broken policy
        # would have denied) still allowed.
        for _ in range(3):
            self.assertEqual(self.status(port, "/admin"), 403)
            self.assertEqual(self.status(port, "/ok"), 200)
            time.sleep(0.5)
        self.assertEqual(self.policy_version(b), version)
        # Breaking the good file itself does not lift the DENY either.
        mark = b.proc.log_mark()
        b.write_policy("deny-admin.yaml", DENY_ADMIN.replace("action: DENY", "action: DENNY"))
        self.wait_for_log(b.proc, r"deny-admin\.yaml:\d+:\d+", RELOAD_S, since=mark)
        self.assertEqual(self.status(port, "/admin"), 403)
        # Fixing both files makes the next good set, with broken.yaml's intent, take effect.
        b.write_policy("deny-admin.yaml", DENY_ADMIN)
        b.write_policy("broken.yaml", BROKEN.replace("pathz", "paths"))
        self.wait_for(lambda: self.status(port, "/ok") == 403, RELOAD_S,
                      "the fixed policy denying /ok to take effect")
        self.assertEqual(self.status(port, "/admin"), 403)

    def test_reloads_under_load_fail_no_request(self):
        # Policy snapshots swap while requests flow: none of the allowed ones may fail.
        import threading
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_policies={"deny-admin.yaml": DENY_ADMIN})
        stop = threading.Event()

        def churn():
            i = 0
            while not stop.is_set():
                i += 1
                b.write_policy("churn.yaml", deny_principal("churn", ID_C).replace(
                    "name: churn", "name: churn-%d" % (i % 2)))
                stop.wait(0.3)
        churner = threading.Thread(target=churn)
        churner.start()
        try:
            load = harness.h2load("http://127.0.0.1:%d/ok" % a.outbound_port(), "-c", "4",
                                  "-m", "4", "-D", "6", "-T", "10")
        finally:
            stop.set()
            churner.join(10)
        self.assertWithLogs(load.get("done", 0) > 0 and load.get("failed") == 0 and
                            load.get("errored") == 0 and load.get("timeout") == 0 and
                            load.get("4xx") == 0 and load.get("5xx") == 0,
                            "h2load across reloads: %r" % load)
        self.assertGreaterEqual(b.metric("palisade_config_reloads_total", kind="policies",
                                         result="ok"), 3)

    def test_open_tcp_connection_closed_when_new_policy_denies_peer(self):
        app = harness.tcp_app(self)
        a, b = self.mesh(app.port, protocol="TCP")
        with socket.create_connection(("127.0.0.1", a.outbound_port()), timeout=10) as s:
            s.sendall(b"ping")
            s.settimeout(10)
            self.assertEqual(s.recv(4), b"ping")
            mark = b.proc.log_mark()
            b.write_policy("deny-sleep.yaml", deny_principal("deny-sleep", ID_A))
            data, closed = harness.recv_until_closed(s, RELOAD_S + 2)
            self.assertWithLogs(closed, "open TCP connection not closed after the DENY policy")
        self.wait_for_log(b.proc, r"rbac: denied connection|closed by policy|policy_changed", 5,
                          since=mark)
        self.assertGreaterEqual(b.metric("palisade_connections_closed_total",
                                         reason="policy_changed"), 1)
        # New connections are denied too.
        with socket.create_connection(("127.0.0.1", a.outbound_port()), timeout=10) as s:
            try:
                s.sendall(b"again")
            except OSError:
                pass
            data, closed = harness.recv_until_closed(s, 10)
            self.assertTrue(closed)
            self.assertEqual(data, b"")

    def test_open_tcp_connection_kept_when_new_policy_allows_peer(self):
        app = harness.tcp_app(self)
        a, b = self.mesh(app.port, protocol="TCP")
        with socket.create_connection(("127.0.0.1", a.outbound_port()), timeout=10) as s:
            s.settimeout(10)
            s.sendall(b"ping")
            self.assertEqual(s.recv(4), b"ping")
            version = self.policy_version(b)
            b.write_policy("deny-other.yaml", deny_principal("deny-other", ID_C))
            self.wait_for(lambda: self.policy_version(b) != version, RELOAD_S,
                          "the new policy version")
            time.sleep(1)
            s.sendall(b"still")
            self.assertWithLogs(s.recv(5) == b"still", "connection dropped by an unrelated policy")
        self.assertEqual(b.metric("palisade_connections_closed_total", reason="policy_changed"), 0)

    def test_open_h2_connection_gets_goaway_and_in_flight_stream_finishes(self):
        app = harness.http_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, with_a=False)
        client = self.start_process("nghttp", [
            "nghttp", "-v", "--cert", c_svid.chain, "--key", c_svid.key, "-t", "30",
            "https://127.0.0.1:%d/slow?ms=4000" % b.inbound_port])
        self.wait_for(lambda: any(r["path"].startswith("/slow") for r in app.requests()), 10,
                      "the slow request to reach the app")
        b.write_policy("deny-curl.yaml", deny_principal("deny-curl", ID_C))
        rc = client.wait(RELOAD_S + 10)
        out = client.stdout()
        self.assertWithLogs(re.search(r"recv GOAWAY frame", out) is not None,
                            "no GOAWAY for the denied peer's HTTP/2 connection")
        self.assertRegex(out, r"recv \(stream_id=\d+\) :status: 200")
        self.assertEqual(rc, 0, out[-2000:])
        # A new connection from that peer is denied.
        resp = harness.curl("https://127.0.0.1:%d/again" % b.inbound_port, c_svid, "--http2",
                            directory=self.dir)
        self.assertNotEqual(resp.status, 200, resp)

    def test_h1_keep_alive_connection_rechecked_per_request(self):
        app = harness.http_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, with_a=False)
        ctx = harness.mtls_context(c_svid, ["http/1.1"])
        conn = http.client.HTTPSConnection("127.0.0.1", b.inbound_port, context=ctx, timeout=10)
        self.addCleanup(conn.close)
        conn.request("GET", "/first")
        resp = conn.getresponse()
        resp.read()
        self.assertEqual(resp.status, 200)
        b.write_policy("deny-curl.yaml", deny_principal("deny-curl", ID_C))

        def denied():
            try:
                conn.request("GET", "/poll")
                r = conn.getresponse()
                body = r.read()
                return r.status == 403 and body == DENIED_BODY
            except (http.client.HTTPException, OSError):
                conn.close()  # closed by the sidecar: the next request reconnects
                return False
        self.wait_for(denied, RELOAD_S, "a request on the kept-alive connection to be denied")


if __name__ == "__main__":
    unittest.main(verbosity=2)
