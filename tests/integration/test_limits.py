"""Bounds: a slow reader (reads nothing while the app streams 100 MiB) must not grow the
sidecars' memory past a few bufferLimits (back-pressure reaches the app), and header blocks
over maxHeaderBytes / maxHeaders are refused before the app."""

import http.client
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_C  # noqa: E402

MIB = 1024 * 1024
BUFFER_LIMIT = 1 * MIB
BIG_MB = 100
SLACK_KIB = 6 * 1024  # TLS records, allocator slack, the pools' first growth
# Under AddressSanitizer freed memory sits in a quarantine (up to 256 MiB), so RSS says
# nothing about buffering there; the app being held back still proves the back-pressure.
RSS_MEANINGFUL = os.environ.get("PALISADE_SANITIZED", "0") != "1"


def rss_bounded(growth_kib):
    return not RSS_MEANINGFUL or growth_kib <= 3 * BUFFER_LIMIT // 1024 + SLACK_KIB
HOLD_S = 5


class LimitsTest(harness.IntegrationTest):

    def watch_rss(self, procs, seconds):
        peak = {p.name: 0 for p in procs}
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for p in procs:
                peak[p.name] = max(peak[p.name], p.rss_kib())
            time.sleep(0.1)
        return peak

    def big_sent(self, app):
        sent = [r.get("big_sent", 0) for r in app.records()]
        return max(sent) if sent else 0

    def read_all(self, sock, want):
        got = 0
        sock.settimeout(30)
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return got
            got += len(chunk)
            if got >= want:
                return got

    def check(self, app, procs, sock, baseline):
        peak = self.watch_rss(procs, HOLD_S)
        sent = self.big_sent(app)
        report = "baseline KiB %r, peak KiB %r, app sent %.1f MiB" % (baseline, peak,
                                                                       sent / MIB)
        sys.stderr.write("(%s) " % report)
        for p in procs:
            growth = peak[p.name] - baseline[p.name]
            self.assertWithLogs(rss_bounded(growth),
                                "%s grew %d KiB under a slow reader: %s" % (p.name, growth,
                                                                          report))
        self.assertLess(sent, BIG_MB * MIB // 2,
                        "the app could push %d bytes: nothing held it back" % sent)
        # Reading now drains the whole body.
        got = self.read_all(sock, BIG_MB * MIB)
        self.assertGreaterEqual(got, BIG_MB * MIB)

    def test_slow_reader_direct_mtls_bounded_rss(self):
        app = harness.http_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, with_a=False,
                         b_kwargs={"limits": {"bufferLimit": BUFFER_LIMIT}})
        # Warm up: one full big response read at speed.
        warm = harness.curl("https://127.0.0.1:%d/big?mb=4" % b.inbound_port, c_svid,
                            directory=self.dir)
        self.assertEqual(len(warm.body), 4 * MIB, warm)
        baseline = {b.proc.name: b.proc.rss_kib()}
        conn = harness.mtls_connect(b.inbound_port, c_svid, ["http/1.1"])
        self.addCleanup(conn.close)
        # A small receive buffer so the kernel does not soak up the stream either.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        conn.sendall(b"GET /big?mb=%d HTTP/1.1\r\nHost: b\r\n\r\n" % BIG_MB)
        self.wait_for(lambda: self.big_sent(app) > 0, 10, "the app to start streaming")
        self.check(app, [b.proc], conn, baseline)

    def test_slow_reader_through_sidecars_bounded_rss(self):
        app = harness.http_app(self)
        limits = {"bufferLimit": BUFFER_LIMIT}
        a, b = self.mesh(app.port, b_kwargs={"limits": limits})
        warm = harness.http_request(a.outbound_port(), "/big?mb=4", timeout=30)
        self.assertEqual(len(warm.body), 4 * MIB)
        baseline = {p.name: p.rss_kib() for p in (a.proc, b.proc)}
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", a.outbound_port()))
        self.addCleanup(sock.close)
        sock.sendall(b"GET /big?mb=%d HTTP/1.1\r\nHost: b\r\n\r\n" % BIG_MB)
        self.wait_for(lambda: self.big_sent(app) > 0, 10, "the app to start streaming")
        self.check(app, [a.proc, b.proc], sock, baseline)

    def slow_curl_peak(self, procs, url, *args):
        """curl reading at 200 KB/s for HOLD_S seconds; the peak RSS of procs meanwhile."""
        client = self.start_process("slow-curl", ["curl", "-sS", "-k", "-o", "/dev/null",
                                                  "--limit-rate", "200K", "--max-time",
                                                  str(HOLD_S + 2), *args, url])
        self.wait_for(lambda: self.big_sent(self.app) > 0, 10, "the app to start streaming")
        peak = self.watch_rss(procs, HOLD_S)
        client.wait(10)
        return peak

    def test_slow_reader_h2_direct_bounded_rss(self):
        self.app = app = harness.http_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, with_a=False,
                         b_kwargs={"limits": {"bufferLimit": BUFFER_LIMIT}})
        warm = harness.curl("https://127.0.0.1:%d/big?mb=4" % b.inbound_port, c_svid,
                            "--http2", directory=self.dir)
        self.assertEqual(len(warm.body), 4 * MIB, warm)
        baseline = {b.proc.name: b.proc.rss_kib()}
        peak = self.slow_curl_peak([b.proc], "https://127.0.0.1:%d/big?mb=%d" %
                                   (b.inbound_port, BIG_MB), "--http2", "--cert", c_svid.chain,
                                   "--key", c_svid.key)
        growth = peak[b.proc.name] - baseline[b.proc.name]
        sent = self.big_sent(app)
        sys.stderr.write("(h2 slow reader: grew %d KiB, app sent %.1f MiB) " % (growth,
                                                                               sent / MIB))
        self.assertWithLogs(rss_bounded(growth),
                            "B grew %d KiB under an HTTP/2 slow reader" % growth)
        self.assertLess(sent, BIG_MB * MIB // 2)

    def test_slow_reader_h2c_through_sidecars_bounded_rss(self):
        self.app = app = harness.http_app(self)
        a, b = self.mesh(app.port, b_kwargs={"limits": {"bufferLimit": BUFFER_LIMIT}})
        warm = harness.curl("http://127.0.0.1:%d/big?mb=4" % a.outbound_port(), None,
                            "--http2-prior-knowledge", directory=self.dir)
        self.assertEqual(len(warm.body), 4 * MIB, warm)
        baseline = {p.name: p.rss_kib() for p in (a.proc, b.proc)}
        peak = self.slow_curl_peak([a.proc, b.proc], "http://127.0.0.1:%d/big?mb=%d" %
                                   (a.outbound_port(), BIG_MB), "--http2-prior-knowledge")
        sent = self.big_sent(app)
        report = {p: peak[p] - baseline[p] for p in peak}
        sys.stderr.write("(h2c slow reader: growth KiB %r, app sent %.1f MiB) " %
                         (report, sent / MIB))
        for name, growth in report.items():
            self.assertWithLogs(rss_bounded(growth),
                                "%s grew %d KiB under an h2c slow reader" % (name, growth))
        self.assertLess(sent, BIG_MB * MIB // 2)

    def rejected(self, resp):
        return resp is None or resp.status in (400, 413, 431)

    def request(self, port, headers):
        try:
            return harness.http_request(port, "/big-headers", headers=headers)
        except (http.client.HTTPException, OSError):
            return None

    def test_header_block_over_max_header_bytes_refused(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port, b_kwargs={"limits": {"maxHeaderBytes": 8192}})
        port = a.outbound_port()
        self.assertEqual(self.request(port, {"X-Pad": "p" * 2000}).status, 200)
        resp = self.request(port, {"X-Pad": "p" * 16000})
        self.assertWithLogs(self.rejected(resp), "16 KB header block: %r" % resp)
        self.assertEqual(len(app.requests()), 1)

    def test_h2_header_block_over_max_header_bytes_refused(self):
        app = harness.http_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, with_a=False, b_kwargs={"limits": {"maxHeaderBytes": 8192}})
        url = "https://127.0.0.1:%d/h2-big-headers" % b.inbound_port
        ok = harness.curl(url, c_svid, "--http2", "-H", "X-Pad: " + "p" * 2000,
                          directory=self.dir)
        self.assertEqual(ok.status, 200, ok)
        big = harness.curl(url, c_svid, "--http2", "-H", "X-Pad: " + "p" * 16000,
                           directory=self.dir)
        self.assertWithLogs(big.status in (0, 400, 431), repr(big))
        self.assertEqual(len(app.requests()), 1)

    def test_header_count_over_max_headers_refused(self):
        app = harness.http_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, with_a=False, b_kwargs={"limits": {"maxHeaders": 20}})
        url = "https://127.0.0.1:%d/many" % b.inbound_port
        ok = harness.curl(url, c_svid, *sum((["-H", "X-H%d: v" % i] for i in range(5)), []),
                          directory=self.dir)
        self.assertEqual(ok.status, 200, ok)
        many = harness.curl(url, c_svid, *sum((["-H", "X-H%d: v" % i] for i in range(40)), []),
                            directory=self.dir)
        self.assertWithLogs(many.status in (0, 400, 431), repr(many))
        self.assertEqual(len(app.requests()), 1)


class TimeoutsAndCountsTest(harness.IntegrationTest):
    """idleTimeout, handshakeTimeout, maxConnections, maxConcurrentStreams."""

    def closed_within(self, sock, seconds):
        start = time.monotonic()
        data, closed = harness.recv_until_closed(sock, seconds)
        return closed, time.monotonic() - start, data

    def test_idle_tcp_connection_closed_after_idle_timeout(self):
        app = harness.tcp_app(self)
        _, b = self.mesh(app.port, protocol="TCP", with_a=False,
                         b_kwargs={"limits": {"idleTimeout": "1s"}})
        conn = harness.mtls_connect(b.inbound_port, self.pki.issue(ID_C))
        with conn:
            conn.sendall(b"ping")
            conn.settimeout(5)
            self.assertEqual(conn.recv(4), b"ping")
            closed, took, _ = self.closed_within(conn, 8)
        self.assertWithLogs(closed and took < 5, "idle connection: closed=%s after %.1fs" %
                            (closed, took))

    def test_idle_h1_keep_alive_closed_after_idle_timeout(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False, b_kwargs={"limits": {"idleTimeout": "1s"}})
        conn = harness.mtls_connect(b.inbound_port, self.pki.issue(ID_C), ["http/1.1"])
        with conn:
            conn.sendall(b"GET /one HTTP/1.1\r\nHost: b\r\n\r\n")
            conn.settimeout(5)
            self.assertIn(b"200", conn.recv(65536))
            closed, took, _ = self.closed_within(conn, 8)
        self.assertWithLogs(closed and took < 5, "idle keep-alive: closed=%s after %.1fs" %
                            (closed, took))

    def test_silent_client_closed_after_handshake_timeout_strict(self):
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False,
                         b_policies={"pa.yaml": harness.peer_authentication("STRICT")},
                         b_kwargs={"limits": {"handshakeTimeout": "1s"}})
        with socket.create_connection(("127.0.0.1", b.inbound_port), timeout=10) as s:
            closed, took, data = self.closed_within(s, 8)
        self.assertWithLogs(closed and took < 4 and data == b"",
                            "silent client: closed=%s after %.1fs" % (closed, took))

    def test_stalled_client_hello_closed_after_handshake_timeout(self):
        # PERMISSIVE sniffs a TLS record header, then the rest never comes.
        app = harness.http_app(self)
        _, b = self.mesh(app.port, with_a=False,
                         b_kwargs={"limits": {"handshakeTimeout": "1s", "sniffTimeout": "1s"}})
        with socket.create_connection(("127.0.0.1", b.inbound_port), timeout=10) as s:
            s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
            closed, took, data = self.closed_within(s, 8)
        self.assertWithLogs(closed and took < 4, "stalled ClientHello: closed=%s after %.1fs" %
                            (closed, took))
        self.assertEqual(app.requests(), [])

    def test_max_connections_refuses_the_extra_one(self):
        app = harness.tcp_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, protocol="TCP", with_a=False,
                         b_kwargs={"limits": {"maxConnections": 3}, "concurrency": 2})
        conns = []
        try:
            for i in range(3):
                c = harness.mtls_connect(b.inbound_port, c_svid)
                conns.append(c)
                c.sendall(b"c%d" % i)
                c.settimeout(5)
                self.assertEqual(c.recv(2), b"c%d" % i)
            extra_closed = False
            try:
                extra = harness.mtls_connect(b.inbound_port, c_svid, timeout=5)
                with extra:
                    try:
                        extra.sendall(b"x")
                    except OSError:
                        pass
                    data, extra_closed = harness.recv_until_closed(extra, 5)
                    extra_closed = extra_closed and data == b""
            except OSError:
                extra_closed = True
            self.assertWithLogs(extra_closed, "a 4th connection was served with maxConnections 3")
            self.assertGreaterEqual(
                b.metric("palisade_inbound_connections_total", result="over_limit"), 1)
        finally:
            for c in conns:
                c.close()

        # With the three gone, a new connection is served again.
        def served():
            try:
                with harness.mtls_connect(b.inbound_port, c_svid, timeout=5) as c:
                    c.sendall(b"ok")
                    c.settimeout(5)
                    return c.recv(2) == b"ok"
            except OSError:
                return False
        self.wait_for(served, 5, "a connection served after the others closed")

    def test_h2_max_concurrent_streams_advertised(self):
        app = harness.http_app(self)
        c_svid = self.pki.issue(ID_C)
        _, b = self.mesh(app.port, with_a=False,
                         b_kwargs={"limits": {"maxConcurrentStreams": 7}})
        proc = subprocess.run(["nghttp", "-v", "--cert", c_svid.chain, "--key", c_svid.key,
                               "-t", "10", "https://127.0.0.1:%d/" % b.inbound_port],
                              capture_output=True, text=True, timeout=30)
        self.assertRegex(proc.stdout, r"recv SETTINGS frame[^\n]*\n[^\n]*\n\s*"
                         r"\[SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):7\]")
        self.assertIn(":status: 200", proc.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
