"""Outbound per-request balancing (issue 6, prototype behind `outbound.pooledHttp: true`):
sidecar A decodes the app's HTTP/1.1 or h2c requests and sends each as a stream over its
pooled HTTP/2-over-mTLS connections to the service's endpoints (two B sidecars, each in front
of its own app). One app connection's requests reach both endpoints, and the endpoints count
far fewer TLS connections (handshakes) than requests."""

import http.client
import os
import sys

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_A, ID_B, SERVICE_HOST, SERVICE_PORT  # noqa: E402

REQUESTS = 40


class OutboundPoolTest(harness.IntegrationTest):

    def two_endpoints(self, load_balancer=None, sans=None):
        apps, bs = [], []
        for name in ("b1", "b2"):
            app = harness.http_app(self, name="http_app_" + name)
            b = harness.Sidecar(self, name, self.pki.issue(ID_B), labels={"app": "httpbin"},
                                inbound_ports=[{"targetPort": app.port, "protocol": "HTTP"}])
            apps.append(app)
            bs.append(b)
        se = harness.service_entry(SERVICE_HOST, 0, sans or [ID_B],
                                   endpoints=[("127.0.0.1", b.inbound_port) for b in bs])
        options = {"pooledHttp": "true"}
        if load_balancer:
            options["loadBalancer"] = load_balancer
        a = harness.Sidecar(self, "a", self.pki.issue(ID_A), labels={"app": "sleep"},
                            outbound=[(SERVICE_HOST, SERVICE_PORT)],
                            services={"httpbin.yaml": se}, outbound_options=options)
        return a, bs, apps

    def keep_alive_requests(self, a, n):
        conn = http.client.HTTPConnection("127.0.0.1", a.outbound_port(), timeout=10)
        try:
            for i in range(n):
                conn.request("GET", "/pool-%d" % i, headers={"Host": SERVICE_HOST})
                resp = conn.getresponse()
                body = resp.read()
                self.assertWithLogs(resp.status == 200, "request %d: %d %r" % (i, resp.status,
                                                                                 body))
        finally:
            conn.close()

    def handshakes(self, bs):
        return sum(b.metric("palisade_inbound_connections_total", result="accepted")
                   for b in bs)

    def test_OutboundPooledH1ToH2_OneAppConnectionSpreadOverTwoEndpoints(self):
        a, bs, apps = self.two_endpoints()
        self.keep_alive_requests(a, REQUESTS)
        counts = [len(app.requests()) for app in apps]
        self.assertEqual(sum(counts), REQUESTS)
        # Least request with two choices over idle endpoints is a fair coin per request.
        self.assertWithLogs(min(counts) >= 5, "requests per endpoint: %r" % counts)
        handshakes = self.handshakes(bs)
        self.assertWithLogs(1 <= handshakes <= 2, "handshakes at the endpoints: %d for %d "
                            "requests" % (handshakes, REQUESTS))
        self.assertLess(handshakes, REQUESTS)
        for app in apps:
            for r in app.requests():
                xfcc = {k.lower(): v for k, v in r["headers"]}.get("x-forwarded-client-cert", "")
                self.assertIn("URI=" + ID_A, xfcc)

    def test_OutboundPooledH1ToH2_RoundRobinAlternates(self):
        a, bs, apps = self.two_endpoints(load_balancer="ROUND_ROBIN")
        self.keep_alive_requests(a, 10)
        self.assertEqual([len(app.requests()) for app in apps], [5, 5])

    def test_OutboundPooledH2cAndH1_ManyAppConnectionsSharePooledConnections(self):
        a, bs, apps = self.two_endpoints()
        url = "http://127.0.0.1:%d/h2c" % a.outbound_port()
        r = harness.h2load(url, "-n", "400", "-c", "4", "-m", "10", "-T", "10")
        self.assertWithLogs(r.get("2xx") == 400 and r.get("errored") == 0, "h2c: %r" % r)
        r = harness.h2load(url, "--h1", "-n", "400", "-c", "8", "-T", "10")
        self.assertWithLogs(r.get("2xx") == 400 and r.get("errored") == 0, "h1: %r" % r)
        counts = [len(app.requests()) for app in apps]
        self.assertEqual(sum(counts), 800)
        self.assertWithLogs(min(counts) >= 200, "requests per endpoint: %r" % counts)
        # 12 app connections, 800 requests; A has two workers, each with its own pool.
        handshakes = self.handshakes(bs)
        self.assertWithLogs(handshakes <= 8, "handshakes at the endpoints: %d" % handshakes)

    def test_OutboundPooledH1ToH2_DeadEndpointRetriedOnTheLiveOne(self):
        app = harness.http_app(self, name="http_app_b1")
        b = harness.Sidecar(self, "b1", self.pki.issue(ID_B), labels={"app": "httpbin"},
                            inbound_ports=[{"targetPort": app.port, "protocol": "HTTP"}])
        dead = harness.free_port()  # nothing listens there
        se = harness.service_entry(SERVICE_HOST, 0, [ID_B],
                                   endpoints=[("127.0.0.1", dead), ("127.0.0.1", b.inbound_port)])
        a = harness.Sidecar(self, "a", self.pki.issue(ID_A), labels={"app": "sleep"},
                            outbound=[(SERVICE_HOST, SERVICE_PORT)],
                            services={"httpbin.yaml": se}, outbound_options={"pooledHttp": "true"})
        self.keep_alive_requests(a, 10)
        self.assertEqual(len(app.requests()), 10)
        self.assertGreaterEqual(a.metric("palisade_outbound_connections_total", result="failed"), 1)

    def test_OutboundPooledGrpc_OneChannelSpreadOverTwoBackends(self):
        apps, bs = [], []
        for name in ("b1", "b2"):
            app = harness.grpc_app(self, name="grpc_app_" + name)
            bs.append(harness.Sidecar(self, name, self.pki.issue(ID_B), labels={"app": "httpbin"},
                                      inbound_ports=[{"targetPort": app.port,
                                                      "protocol": "GRPC"}]))
            apps.append(app)
        se = harness.service_entry(SERVICE_HOST, 0, [ID_B], protocol="GRPC",
                                   endpoints=[("127.0.0.1", b.inbound_port) for b in bs])
        a = harness.Sidecar(self, "a", self.pki.issue(ID_A), labels={"app": "sleep"},
                            outbound=[(SERVICE_HOST, SERVICE_PORT)],
                            services={"httpbin.yaml": se}, outbound_options={"pooledHttp": "true"})
        ch = grpc.insecure_channel("127.0.0.1:%d" % a.outbound_port())
        self.addCleanup(ch.close)
        echo = ch.unary_unary("/palisade.test.Echo/Echo")
        for i in range(60):
            echo(b"call-%d" % i, timeout=10)
        counts = [len(app.requests()) for app in apps]
        self.assertEqual(sum(counts), 60)
        self.assertWithLogs(min(counts) >= 10, "calls per backend: %r" % counts)
        self.assertLessEqual(self.handshakes(bs), 2)

    def test_OutboundPooled_SecureNamingRefusedIs503(self):
        a, bs, apps = self.two_endpoints(sans=["spiffe://cluster.local/ns/foo/sa/other"])
        resp = harness.http_request(a.outbound_port(), "/wrong-server")
        self.assertWithLogs(resp.status == 503, "got %r" % resp)
        self.assertEqual([len(app.requests()) for app in apps], [0, 0])
        self.wait_for(lambda: a.proc.find_log(r"secure_naming") is not None, 5,
                      "the secure naming failure logged")


if __name__ == "__main__":
    harness.main()
