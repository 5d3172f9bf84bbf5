"""Drain: SIGTERM stops accepting, lets in-flight requests finish within drainTimeout and exits
0; POST /drain turns readiness to 503; POST /quitquitquit exits."""

import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_C  # noqa: E402


def refuses_connections(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


class DrainTest(harness.IntegrationTest):

    def slow_request(self, b, svid, ms, results):
        results.append(harness.curl("https://127.0.0.1:%d/slow?ms=%d" % (b.inbound_port, ms),
                                    svid, timeout=30, directory=self.dir))

    def test_sigterm_finishes_in_flight_request_and_exits_zero(self):
        app = harness.http_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, with_a=False, b_kwargs={"drain_timeout": "10s"})
        results = []
        client = threading.Thread(target=self.slow_request, args=(b, c_svid, 3000, results))
        client.start()
        self.wait_for(lambda: app.requests(), 10, "the slow request to reach the app")
        sent = time.monotonic()
        b.proc.signal(signal.SIGTERM)
        self.wait_for(lambda: refuses_connections(b.inbound_port), 2,
                      "B to stop accepting after SIGTERM")
        client.join(30)
        self.assertWithLogs(results and results[0].status == 200,
                            "in-flight request: %r" % results)
        rc = b.proc.wait(15)
        self.assertWithLogs(rc == 0, "exit code after SIGTERM: %r" % rc)
        self.assertLess(time.monotonic() - sent, 10)

    def test_sigterm_through_sidecars_in_flight_request_finishes(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_kwargs={"drain_timeout": "10s"})
        results = []

        def call():
            try:
                results.append(harness.http_request(a.outbound_port(), "/slow?ms=2500",
                                                    timeout=20))
            except Exception as e:  # noqa: BLE001 - reported below
                results.append(e)
        client = threading.Thread(target=call)
        client.start()
        self.wait_for(lambda: app.requests(), 10, "the slow request to reach the app")
        b.proc.signal(signal.SIGTERM)
        client.join(30)
        self.assertWithLogs(results and getattr(results[0], "status", None) == 200,
                            "in-flight request through A: %r" % results)
        self.assertEqual(b.proc.wait(15), 0)

    def test_sigterm_h2_connection_gets_goaway_and_stream_finishes(self):
        app = harness.http_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, with_a=False, b_kwargs={"drain_timeout": "10s"})
        client = self.start_process("nghttp", [
            "nghttp", "-v", "--cert", c_svid.chain, "--key", c_svid.key, "-t", "30",
            "https://127.0.0.1:%d/slow?ms=2500" % b.inbound_port])
        self.wait_for(lambda: app.requests(), 10, "the slow request to reach the app")
        b.proc.signal(signal.SIGTERM)
        rc = client.wait(20)
        out = client.stdout()
        self.assertWithLogs("recv GOAWAY frame" in out, "no GOAWAY on SIGTERM:\n" + out[-2000:])
        self.assertRegex(out, r"recv \(stream_id=\d+\) :status: 200")
        self.assertEqual(rc, 0)
        self.assertEqual(b.proc.wait(15), 0)

    def test_sigterm_with_open_tcp_connection_exits_within_drain_timeout(self):
        app = harness.tcp_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, protocol="TCP", with_a=False,
                         b_kwargs={"drain_timeout": "2s"})
        conn = harness.mtls_connect(b.inbound_port, c_svid)
        self.addCleanup(conn.close)
        conn.sendall(b"hi")
        conn.settimeout(5)
        self.assertEqual(conn.recv(2), b"hi")
        sent = time.monotonic()
        b.proc.signal(signal.SIGTERM)
        rc = b.proc.wait(10)
        took = time.monotonic() - sent
        self.assertWithLogs(rc == 0 and took < 5, "exit %r after %.1fs (drainTimeout 2s)" %
                            (rc, took))
        _, closed = harness.recv_until_closed(conn, 5)
        self.assertTrue(closed)

    def test_sigterm_drain_timeout_bounds_exit(self):
        app = harness.http_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, with_a=False, b_kwargs={"drain_timeout": "1s"})
        results = []
        client = threading.Thread(target=self.slow_request, args=(b, c_svid, 20000, results))
        client.start()
        self.wait_for(lambda: app.requests(), 10, "the slow request to reach the app")
        sent = time.monotonic()
        b.proc.signal(signal.SIGTERM)
        rc = b.proc.wait(10)
        took = time.monotonic() - sent
        client.join(30)
        self.assertWithLogs(rc is not None and took < 5,
                            "exit %r after %.1fs with drainTimeout 1s" % (rc, took))
        self.assertNotEqual(results[0].status, 200)

    def test_sigterm_idle_exits_promptly(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        sent = time.monotonic()
        b.proc.signal(signal.SIGTERM)
        self.assertEqual(b.proc.wait(10), 0)
        self.assertLess(time.monotonic() - sent, 3)

    def test_admin_drain_turns_readiness_503(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        self.assertEqual(b.ready_status(), 200)
        status, body = b.admin("POST", "/drain")
        self.assertEqual(status, 200, body)
        self.wait_for(lambda: b.ready_status() == 503, 3, "readiness 503 while draining")

    def test_admin_quitquitquit_exits(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False)
        try:
            answer = b.admin("POST", "/quitquitquit")
        except OSError as e:
            answer = e
        rc = b.proc.wait(10)
        self.assertWithLogs(rc == 0, "exit code after /quitquitquit: %r" % rc)
        # Envoy answers 200 before it exits; pilot-agent and scripts check that.
        self.assertEqual(getattr(answer, "__getitem__", None) and answer[0], 200,
                         "/quitquitquit answered %r" % (answer,))


if __name__ == "__main__":
    unittest.main(verbosity=2)
