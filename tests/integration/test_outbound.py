"""The outbound side, sidecar A: a service's endpoints tried in turn (a dead one skipped), no
reachable endpoint answered 503 or closed and counted, and transparent capture (iptables
REDIRECT to `outbound.transparent`, original destination from SO_ORIGINAL_DST) in a private
network namespace: needs root, `unshare`, `ip` and `iptables`; skips with a message otherwise."""

import http.client
import os
import shutil
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_A, ID_B, SERVICE_HOST, SERVICE_PORT  # noqa: E402

VIP = "10.96.0.10"  # the service's virtual address, captured by iptables
IN_NETNS = os.environ.get("PALISADE_ITEST_NETNS") == "1"


class OutboundEndpointsTest(harness.IntegrationTest):

    def a_for(self, endpoints, protocol="HTTP"):
        se = harness.service_entry(SERVICE_HOST, 0, [ID_B], protocol=protocol,
                                   endpoints=endpoints)
        return harness.Sidecar(self, "a", self.pki.issue(ID_A),
                               outbound=[(SERVICE_HOST, SERVICE_PORT)],
                               services={"svc.yaml": se})

    def test_dead_endpoint_skipped(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        dead = harness.free_port()  # nothing listens there
        a = self.a_for([("127.0.0.1", dead), ("127.0.0.1", b.inbound_port)])
        for i in range(4):
            resp = harness.http_request(a.outbound_port(), "/try-%d" % i)
            self.assertWithLogs(resp.status == 200, "request %d: %r" % (i, resp))
        self.assertEqual(len(app.requests()), 4)

    def test_no_reachable_endpoint_http_503_or_closed(self):
        a = self.a_for([("127.0.0.1", harness.free_port())])
        try:
            resp = harness.http_request(a.outbound_port(), "/nowhere")
            self.assertWithLogs(resp.status == 503, "got %r" % resp)
        except (http.client.HTTPException, OSError):
            pass
        self.wait_for(lambda: a.metric("palisade_outbound_connections_total",
                                       result="failed") >= 1, 5,
                      "the failed outbound connection counted")

    def test_no_reachable_endpoint_tcp_closed(self):
        a = self.a_for([("127.0.0.1", harness.free_port())], protocol="TCP")
        with socket.create_connection(("127.0.0.1", a.outbound_port()), timeout=10) as s:
            data, closed = harness.recv_until_closed(s, 15)
        self.assertWithLogs(closed and data == b"", "closed=%s data=%r" % (closed, data))


def netns_problem():
    if os.geteuid() != 0:
        return "needs root for a network namespace and iptables"
    for tool in ("unshare", "ip", "iptables"):
        if shutil.which(tool) is None:
            return "needs %s" % tool
    proc = subprocess.run(["unshare", "-n", "iptables", "-t", "nat", "-L", "-n"],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        return "cannot use iptables in a new network namespace: %s" % proc.stderr.strip()
    return None


class TransparentCaptureTest(unittest.TestCase):
    """Runs TransparentInner in a fresh network namespace (unshare -n) and reports its result."""

    def test_transparent_capture_in_network_namespace(self):
        problem = netns_problem()
        if problem:
            self.skipTest(problem)
        env = dict(os.environ, PALISADE_ITEST_NETNS="1")
        proc = subprocess.run(["unshare", "-n", harness.PYTHON, "-m", "unittest", "-v",
                               "test_outbound.TransparentInner"],
                              cwd=harness.HERE, env=env, capture_output=True, text=True,
                              timeout=240)
        sys.stderr.write(proc.stderr[-4000:] if proc.returncode else "")
        self.assertEqual(proc.returncode, 0, "inner run failed:\n" + proc.stderr[-6000:])
        self.assertNotIn("skipped", proc.stderr)


class TransparentInner(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", VIP + "/32", "dev", "lo"]):
            subprocess.run(cmd, check=True, timeout=30)

    def capture(self, a):
        # Only the service's address is captured: A's own connections go to 127.0.0.1.
        subprocess.run(["iptables", "-t", "nat", "-F", "OUTPUT"], check=True, timeout=30)
        subprocess.run(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", VIP,
                        "--dport", str(SERVICE_PORT), "-j", "REDIRECT", "--to-ports",
                        str(a.transparent_port)], check=True, timeout=30)

    def transparent_a(self, b, protocol="HTTP"):
        se = harness.service_entry(SERVICE_HOST, b.inbound_port, [ID_B], protocol=protocol,
                                   addresses=[VIP])
        a_svid = self.pki.issue(ID_A)
        a = harness.Sidecar(self, "a", a_svid, services={"svc.yaml": se}, transparent=True)
        self.capture(a)
        return a, a_svid

    def test_http_to_service_address_captured_and_secured(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        a, a_svid = self.transparent_a(b)
        conn = http.client.HTTPConnection(VIP, SERVICE_PORT, timeout=10)
        conn.request("GET", "/captured")
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        self.assertWithLogs(resp.status == 200, "%s %r" % (resp.status, body[:300]))
        import json
        headers = json.loads(body)["headers"]
        self.assertEqual([v for k, v in headers if k.lower() == "x-forwarded-client-cert"],
                         [harness.xfcc(ID_B, a_svid)])

    def test_tcp_to_service_address_captured_and_secured(self):
        app = harness.tcp_app(self)
        _, b = self.mesh(app.port, protocol="TCP", with_a=False)
        self.transparent_a(b, protocol="TCP")
        with socket.create_connection((VIP, SERVICE_PORT), timeout=10) as s:
            s.sendall(b"through the capture")
            s.settimeout(10)
            got = b""
            while len(got) < 19:
                chunk = s.recv(100)
                if not chunk:
                    break
                got += chunk
        self.assertWithLogs(got == b"through the capture", repr(got))
        self.assertEqual(b.metric("palisade_inbound_connections_total", result="accepted"), 1)


def load_tests(loader, standard_tests, pattern):
    """Outside the namespace: the endpoint tests and the runner; inside: the inner tests."""
    suite = unittest.TestSuite()
    classes = [TransparentInner] if IN_NETNS else [OutboundEndpointsTest, TransparentCaptureTest]
    for cls in classes:
        suite.addTests(loader.loadTestsFromTestCase(cls))
    return suite


if __name__ == "__main__":
    unittest.main(verbosity=2)
