"""h2load through the two-sidecar path with a fixed request count: HTTP/1.1 keep-alive and h2c
(HTTP/2 prior knowledge, carried as h2 between the sidecars) to the HTTP/1.1 app, zero failed
requests; denied requests all answered 403; plaintext h2c straight at a PERMISSIVE port."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DENY_ADMIN = harness.authz_policy("deny-admin", "DENY", """\
  - to:
    - operation:
        paths: ["/admin"]
""")

N = 2000


class H2loadTest(harness.IntegrationTest):

    def assertAll(self, result, n, klass):
        # h2load counts a 4xx answer as "failed": for 403s only errors and timeouts matter.
        answered = n if klass == "2xx" else 0
        self.assertWithLogs(result.get("done") == n and result.get("succeeded") == answered and
                            result.get("errored") == 0 and result.get("timeout") == 0 and
                            result.get(klass) == n, "want %d %s: %r" % (n, klass, result))

    def test_h2load_h1_through_sidecars_zero_failures(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port)
        r = harness.h2load("http://127.0.0.1:%d/load" % a.outbound_port(), "--h1", "-n",
                           str(N), "-c", "8", "-T", "10")
        self.assertAll(r, N, "2xx")
        self.assertEqual(len(app.requests()), N)
        self.assertEqual(b.metric("palisade_http_requests_total", result="allowed"), N)

    def test_h2load_h2c_through_sidecars_zero_failures(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port)
        r = harness.h2load("http://127.0.0.1:%d/load" % a.outbound_port(), "-n", str(N), "-c",
                           "4", "-m", "10", "-T", "10")
        self.assertAll(r, N, "2xx")
        self.assertIn("h2c", r["output"])
        self.assertEqual(len(app.requests()), N)

    def test_h2load_denied_path_all_403(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_policies={"deny.yaml": DENY_ADMIN})
        r = harness.h2load("http://127.0.0.1:%d/admin" % a.outbound_port(), "-n", "500", "-c",
                           "4", "-m", "10", "-T", "10")
        self.assertAll(r, 500, "4xx")
        self.assertEqual(app.requests(), [])
        self.assertEqual(b.metric("palisade_http_requests_total", result="denied"), 500)

    def test_h2load_many_connections_through_sidecars_zero_failures(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port)
        r = harness.h2load("http://127.0.0.1:%d/many" % a.outbound_port(), "--h1", "-n", "3200",
                           "-c", "64", "-T", "20")
        self.assertAll(r, 3200, "2xx")
        r = harness.h2load("http://127.0.0.1:%d/many" % a.outbound_port(), "-n", "3200",
                           "-c", "32", "-m", "32", "-T", "20")
        self.assertAll(r, 3200, "2xx")

    def test_h2load_h2c_plaintext_direct_permissive(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        r = harness.h2load("http://127.0.0.1:%d/plain" % b.inbound_port, "-n", "500", "-c",
                           "2", "-m", "10", "-T", "10")
        self.assertAll(r, 500, "2xx")


if __name__ == "__main__":
    unittest.main(verbosity=2)
