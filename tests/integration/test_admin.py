"""The admin, readiness and metrics endpoints of a running sidecar: /config_dump, /certs,
/logging, /healthz/ready and /stats/prometheus counters after real traffic."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_B, SERVICE_HOST  # noqa: E402

DENY_ADMIN = harness.authz_policy("deny-admin", "DENY", """\
  - to:
    - operation:
        paths: ["/admin"]
""")


class AdminTest(harness.IntegrationTest):

    def test_config_dump_names_listeners_services_policies_certificates(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_policies={"deny-admin.yaml": DENY_ADMIN})
        dump = b.config_dump()
        for key in ("listeners", "services", "policies", "certificates"):
            self.assertIn(key, dump, sorted(dump))
        self.assertIn("version", dump["policies"])
        self.assertIn("deny-admin", json.dumps(dump["policies"]))
        self.assertIn(str(b.inbound_port), json.dumps(dump["listeners"]))
        self.assertIn(ID_B, json.dumps(dump["certificates"]))
        a_dump = a.config_dump()
        self.assertIn(SERVICE_HOST, json.dumps(a_dump["services"]))
        self.assertIn(str(a.outbound_port()), json.dumps(a_dump["listeners"]))

    def test_certs_is_json_with_identity(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        status, body = b.admin("GET", "/certs")
        self.assertEqual(status, 200, body)
        self.assertIn(ID_B, json.dumps(json.loads(body)))

    def test_logging_level_changes(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        self.assertEqual(b.admin("POST", "/logging?level=warning")[0], 200)
        self.assertEqual(b.admin("POST", "/logging?level=debug")[0], 200)
        status, _ = b.admin("POST", "/logging?level=shouting")
        self.assertGreaterEqual(status, 400)

    def test_readiness_ready(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        self.assertEqual(b.ready_status(), 200)

    def test_admin_listens_on_loopback_only_address_given(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        self.assertEqual(b.admin("GET", "/nope")[0], 404)

    def test_metrics_count_allowed_denied_and_connections(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_policies={"deny-admin.yaml": DENY_ADMIN})
        for path in ("/a", "/b", "/admin"):
            harness.http_request(a.outbound_port(), path)
        text = b.metrics()
        self.assertEqual(harness.metric_value(text, "palisade_http_requests_total",
                                              result="allowed"), 2, text)
        self.assertEqual(harness.metric_value(text, "palisade_http_requests_total",
                                              result="denied"), 1, text)
        self.assertGreaterEqual(harness.metric_value(
            text, "palisade_inbound_connections_total", result="accepted"), 1, text)
        self.assertIn("# TYPE palisade_http_requests_total counter", text)
        self.assertIn('palisade_tls_handshake_failures_total{direction="inbound",reason=',
                      text.replace(" ", ""))
        self.assertGreaterEqual(harness.metric_value(
            a.metrics(), "palisade_outbound_connections_total", result="connected"), 1)


class AdminMoreTest(harness.IntegrationTest):

    def test_prometheus_exposition_passes_promtool(self):
        import shutil
        import subprocess
        if shutil.which("promtool") is None:
            self.skipTest("needs promtool (prometheus package)")
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_policies={"deny-admin.yaml": DENY_ADMIN})
        harness.http_request(a.outbound_port(), "/admin")
        for side in (a, b):
            text = side.metrics()
            proc = subprocess.run(["promtool", "check", "metrics"], input=text,
                                  capture_output=True, text=True, timeout=30)
            self.assertEqual(proc.returncode, 0, "promtool: %s%s\n%s" %
                             (proc.stdout, proc.stderr, text[:3000]))

    def test_active_connections_gauge_counts_open_connections(self):
        import socket
        app = harness.tcp_app(self)
        a, b = self.mesh(app.port, protocol="TCP")
        socks = []
        try:
            for _ in range(3):
                s = socket.create_connection(("127.0.0.1", a.outbound_port()), timeout=10)
                socks.append(s)
                s.sendall(b"hi")
                s.settimeout(10)
                self.assertEqual(s.recv(2), b"hi")
            self.assertEqual(b.metric("palisade_active_connections"), 3, b.metrics())
            self.assertEqual(a.metric("palisade_active_connections"), 3, a.metrics())
        finally:
            for s in socks:
                s.close()
        self.wait_for(lambda: b.metric("palisade_active_connections") == 0, 5,
                      "the gauge back at 0")

    def test_logging_level_switches_debug_lines_on(self):
        app = harness.http_app(self)
        svid = self.pki.issue(ID_B)
        b = harness.Sidecar(self, "b", svid, labels={"app": "httpbin"},
                            inbound_ports=[{"targetPort": app.port, "protocol": "HTTP"}],
                            log_level="info")
        harness.http_request(b.inbound_port, "/quiet")
        self.assertIsNone(b.proc.find_log(r" debug "), "debug line at --log-level info")
        self.assertEqual(b.admin("POST", "/logging?level=debug")[0], 200)
        mark = b.proc.log_mark()
        harness.http_request(b.inbound_port, "/loud")
        self.wait_for_log(b.proc, r" debug ", 5, since=mark)
        self.assertEqual(b.admin("POST", "/logging?level=error")[0], 200)
        mark = b.proc.log_mark()
        resp = harness.curl("https://127.0.0.1:%d/x" % b.inbound_port, None,
                            directory=self.dir)  # a handshake failure: logged at info
        self.assertEqual(resp.status, 0)
        import time
        time.sleep(0.5)
        self.assertIsNone(b.proc.find_log(r" (debug|info) ", since=mark),
                          "info/debug after level=error")


if __name__ == "__main__":
    unittest.main(verbosity=2)
