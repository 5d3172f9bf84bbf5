"""Outbound traffic management (issue 6): sidecar A balances an app's requests per request over
pooled HTTP/2-over-mTLS connections to the endpoints of one service (several B sidecars, each in
front of its own app), by default and without any bootstrap option. Per-service settings come
from a DestinationRule / VirtualService next to the ServiceEntry in A's services directory:
load balancer, pool limits with a bounded queue (503 `upstream overflow:`), retries of requests
that never reached an app bounded by maxRetries and a retry budget (503 `retry budget`), a
request timeout (504 `upstream request timeout`), outlier ejection and return. Endpoint sets
change live without failing requests in flight. Opaque TCP is balanced per connection.
Observed through the apps' request logs, A's admin `/clusters` and Prometheus counters.

Limits apply per worker thread of A: the tests of limits start A with concurrency 1."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_A, ID_B, SERVICE_HOST, SERVICE_PORT  # noqa: E402

ECHO = "/palisade.test.Echo/Echo"
SLOW = "/palisade.test.Echo/Slow"
STREAM = "/palisade.test.Echo/Stream"
CHAT = "/palisade.test.Echo/Chat"

A_CONCURRENCY = 2  # the Sidecar default: A's worker threads, each with its own pool


def fair(counts, total, share=0.2):
    return sum(counts) == total and min(counts) >= share * total


def parallel(fn, args_list):
    """Runs fn(*args) for each args in threads started together; returns the results in order
    (an exception raised by fn is returned in its place)."""
    results = [None] * len(args_list)
    start = threading.Barrier(len(args_list))

    def run(i, args):
        try:
            start.wait(10)
            results[i] = fn(*args)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            results[i] = e
    threads = [threading.Thread(target=run, args=(i, a), daemon=True)
               for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def timed_request(port, path, timeout=20):
    """(status, body, seconds) of one request on its own connection; status 0 when the
    connection failed or closed without an answer (body: the exception)."""
    t0 = time.monotonic()
    try:
        resp = harness.http_request(port, path, headers={"Host": SERVICE_HOST}, timeout=timeout)
        return resp.status, resp.body, time.monotonic() - t0
    except (OSError, http.client.HTTPException) as e:
        return 0, repr(e).encode(), time.monotonic() - t0


class Load:
    """`workers` threads, each with its own keep-alive connection to A, sending GETs of
    PREFIX-<worker>-<i> until stop() (or `per_worker` requests each). A failed request (not
    200, or the connection closed) is recorded and the connection opened again."""

    def __init__(self, port, workers=8, prefix="/load", per_worker=100000):
        self.port = port
        self.prefix = prefix
        self.per_worker = per_worker
        self.ok = 0
        self.failures = []  # (time, worker, what)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(w,), daemon=True)
                         for w in range(workers)]
        for t in self._threads:
            t.start()

    def _run(self, worker):
        conn = None
        for i in range(self.per_worker):
            if self._stop.is_set():
                break
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", "%s-%d-%d" % (self.prefix, worker, i),
                             headers={"Host": SERVICE_HOST})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status == 200:
                    with self._lock:
                        self.ok += 1
                    continue
                what = "%d %r" % (resp.status, body[:200])
            except (OSError, http.client.HTTPException) as e:
                what = repr(e)
                conn.close()
                conn = None
            with self._lock:
                self.failures.append((time.monotonic(), worker, what))
        if conn is not None:
            conn.close()

    def done(self):
        with self._lock:
            return self.ok + len(self.failures)

    def running(self):
        return any(t.is_alive() for t in self._threads)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)
        return not any(t.is_alive() for t in self._threads)


class BalancingBase(harness.IntegrationTest):

    def backends(self, n, kind="http"):
        """n B sidecars, each in front of its own app (http_app, grpc_app or tcp_app)."""
        protocol = {"http": "HTTP", "grpc": "GRPC", "tcp": "TCP"}[kind]
        bs, apps = [], []
        for i in range(n):
            name = "b%d" % (i + 1)
            if kind == "http":
                app = harness.http_app(self, name="http_app_" + name)
            elif kind == "grpc":
                app = harness.grpc_app(self, name="grpc_app_" + name)
            else:
                app = harness.tcp_app(self, name="tcp_app_" + name)
            bs.append(harness.Sidecar(self, name, self.pki.issue(ID_B),
                                      labels={"app": "httpbin"},
                                      inbound_ports=[{"targetPort": app.port,
                                                      "protocol": protocol}]))
            apps.append(app)
        return bs, apps

    def service(self, endpoint_ports, protocol="HTTP"):
        return harness.service_entry(SERVICE_HOST, 0, [ID_B], protocol=protocol,
                                     endpoints=[("127.0.0.1", p) for p in endpoint_ports])

    def client_sidecar(self, endpoint_ports, protocol="HTTP", traffic=(), concurrency=None):
        """Sidecar A with an outbound listener for the service; `traffic`: DestinationRule /
        VirtualService documents, written to services/traffic.yaml. No outbound options:
        per-request balancing over the pool is the default."""
        services = {"httpbin.yaml": self.service(endpoint_ports, protocol)}
        if traffic:
            services["traffic.yaml"] = "---\n".join(traffic)
        return harness.Sidecar(self, "a", self.pki.issue(ID_A), labels={"app": "sleep"},
                               outbound=[(SERVICE_HOST, SERVICE_PORT)], services=services,
                               concurrency=concurrency or A_CONCURRENCY)

    def dr(self, traffic_policy):
        return harness.destination_rule(SERVICE_HOST, traffic_policy)

    def handshakes(self, b):
        return b.metric("palisade_inbound_connections_total", result="accepted")

    def count(self, app, prefix):
        return len([r for r in app.requests() if r.get("path", "").startswith(prefix)])

    def keep_alive(self, a, n, prefix):
        """n GETs on one app connection; every one must be 200."""
        conn = http.client.HTTPConnection("127.0.0.1", a.outbound_port(), timeout=10)
        try:
            for i in range(n):
                conn.request("GET", "%s-%d" % (prefix, i), headers={"Host": SERVICE_HOST})
                resp = conn.getresponse()
                body = resp.read()
                self.assertWithLogs(resp.status == 200, "%s-%d: %d %r" % (prefix, i,
                                                                          resp.status, body))
        finally:
            conn.close()

    def assertFewHandshakes(self, bs, requests, a_workers=A_CONCURRENCY):
        per_b = [self.handshakes(b) for b in bs]
        self.assertWithLogs(all(1 <= h <= 2 * a_workers for h in per_b),
                            "TLS connections accepted per endpoint: %r for %d requests (want "
                            "1..%d each: pooled)" % (per_b, requests, 2 * a_workers))
        self.assertLess(sum(per_b), requests)


class BalancingTest(BalancingBase):

    def test_grpc_one_channel_300_calls_fair_share_then_streaming(self):
        bs, apps = self.backends(3, "grpc")
        a = self.client_sidecar([b.inbound_port for b in bs], protocol="GRPC")
        ch = grpc.insecure_channel("127.0.0.1:%d" % a.outbound_port())
        self.addCleanup(ch.close)
        echo = ch.unary_unary(ECHO)
        for i in range(150):  # one after the other: every endpoint idle at each choice
            echo(b"seq-%d" % i, timeout=10)
        futures = [echo.future(b"par-%d" % i, timeout=30) for i in range(150)]  # concurrent
        for f in futures:
            f.result()
        counts = [len([r for r in app.records() if r["method"] == "Echo"]) for app in apps]
        self.assertWithLogs(fair(counts, 300), "unary calls per backend: %r (want 300, each "
                            ">= 60)" % counts)

        replies = [json.loads(m) for m in ch.unary_stream(STREAM)(b"100", timeout=20)]
        self.assertEqual([r["index"] for r in replies], list(range(100)))
        messages = ["chat-%d" % i for i in range(20)]
        replies = [json.loads(m) for m in
                   ch.stream_stream(CHAT)(iter(m.encode() for m in messages), timeout=20)]
        self.assertEqual([r["request"] for r in replies], messages)
        self.assertEqual(sum(len([r for r in app.records() if r["method"] in ("Stream", "Chat")])
                             for app in apps), 2)
        self.assertFewHandshakes(bs, 302)

    def test_http1_keep_alive_one_curl_connection_fair_share(self):
        bs, apps = self.backends(3)
        a = self.client_sidecar([b.inbound_port for b in bs])
        n = 150
        args = ["curl", "-sS", "--max-time", "60", "-H", "Host: " + SERVICE_HOST,
                "-w", "%{http_code} %{num_connects}\\n"]
        for i in range(n):
            args += ["-o", "/dev/null", "http://127.0.0.1:%d/ka-%d" % (a.outbound_port(), i)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=90)
        rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
        self.assertWithLogs(proc.returncode == 0 and len(rows) == n and
                            all(r[0] == "200" for r in rows),
                            "curl rc=%d: %r %s" % (proc.returncode, rows, proc.stderr))
        connects = sum(int(r[1]) for r in rows)
        self.assertEqual(connects, 1, "curl should reuse its one connection")
        counts = [self.count(app, "/ka-") for app in apps]
        self.assertWithLogs(fair(counts, n), "requests per backend: %r (want %d, each >= %d)" %
                            (counts, n, n // 5))
        clusters = a.clusters()
        self.assertEqual(clusters.stat("lb_policy"), "LEAST_REQUEST", clusters)
        for b, count in zip(bs, counts):
            self.assertEqual(clusters.host_stat(b.inbound_port, "rq_total"), count, clusters)
            self.assertEqual(clusters.health(b.inbound_port), "healthy", clusters)
            self.assertEqual(clusters.host_stat(b.inbound_port, "rq_error"), 0, clusters)
        self.assertFewHandshakes(bs, n)

    def test_h2load_h2c_and_h1_fair_share_few_pooled_connections(self):
        bs, apps = self.backends(3)
        a = self.client_sidecar([b.inbound_port for b in bs])
        base = "http://127.0.0.1:%d" % a.outbound_port()
        r = harness.h2load(base + "/h2c", "-c", "2", "-m", "10", "-n", "600", "-T", "10")
        self.assertWithLogs(r.get("2xx") == 600 and r.get("errored") == 0, "h2c: %r" % r)
        counts = [self.count(app, "/h2c") for app in apps]
        self.assertWithLogs(fair(counts, 600), "h2c requests per backend: %r" % counts)
        r = harness.h2load(base + "/h1", "--h1", "-c", "4", "-n", "300", "-T", "10")
        self.assertWithLogs(r.get("2xx") == 300 and r.get("errored") == 0, "h1: %r" % r)
        counts = [self.count(app, "/h1") for app in apps]
        self.assertWithLogs(fair(counts, 300), "h1 requests per backend: %r" % counts)
        self.assertFewHandshakes(bs, 900)

    def test_round_robin_destination_rule_exactly_even(self):
        bs, apps = self.backends(3)
        a = self.client_sidecar([b.inbound_port for b in bs],
                                traffic=[self.dr({"loadBalancer": {"simple": "ROUND_ROBIN"}})])
        self.keep_alive(a, 30, "/rr")
        counts = [self.count(app, "/rr") for app in apps]
        self.assertWithLogs(counts == [10, 10, 10], "round robin: %r" % counts)
        self.assertEqual(a.clusters().stat("lb_policy"), "ROUND_ROBIN")

    def test_opaque_tcp_balanced_per_connection(self):
        bs, apps = self.backends(3, "tcp")
        a = self.client_sidecar([b.inbound_port for b in bs], protocol="TCP")
        socks = []
        try:
            for i in range(30):  # kept open: least request counts them as active
                s = socket.create_connection(("127.0.0.1", a.outbound_port()), timeout=10)
                socks.append(s)
                msg = b"ping-%d\n" % i
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    chunk = s.recv(100)
                    if not chunk:
                        break
                    got += chunk
                self.assertWithLogs(got == msg, "connection %d echoed %r" % (i, got))
        finally:
            for s in socks:
                s.close()
        counts = [len(app.connections()) for app in apps]
        self.assertWithLogs(fair(counts, 30), "TCP connections per backend: %r" % counts)


class OutlierTest(BalancingBase):

    def test_endpoint_killed_mid_load_ejected_then_returns(self):
        bs, apps = self.backends(3)
        victim, victim_app = bs[1], apps[1]
        dr = self.dr({
            "loadBalancer": {"simple": "LEAST_REQUEST", "warmupDurationSecs": "2s"},
            "outlierDetection": {"consecutiveGatewayErrors": 3, "interval": "1s",
                                 "baseEjectionTime": "2s", "maxEjectionPercent": 50}})
        a = self.client_sidecar([b.inbound_port for b in bs], traffic=[dr])
        workers = 8
        load = Load(a.outbound_port(), workers=workers, per_worker=1000)
        probes = []

        def ejected_in_clusters(c):
            if not load.running():  # the load ended first: keep traffic going
                probes.append(timed_request(a.outbound_port(), "/eject-probe", timeout=10))
            return "failed_outlier_check" in (c.health(victim.inbound_port) or "")
        try:
            self.wait_for(lambda: load.done() >= 300 and all(self.count(x, "/load") > 0
                                                             for x in apps),
                          20, "300 requests of the load, on every backend")
            victim.kill()
            killed_at = time.monotonic()
            before = load.done()
            ejected = wait_until_clusters(a, ejected_in_clusters, 8)
            self.wait_for(lambda: load.done() >= min(before + 200, 8000), 20,
                          "200 more requests after the kill")
        finally:
            stopped = load.stop()
        self.assertTrue(stopped, "load threads stuck")
        self.assertWithLogs(ejected is not None, "endpoint %d not ejected in /clusters:\n%s" %
                            (victim.inbound_port, a.admin("GET", "/clusters")[1]))
        self.assertWithLogs(all(p[0] == 200 for p in probes), "probes: %r" % probes)
        late = [f for f in load.failures if f[0] > killed_at + 1.0]
        self.assertWithLogs(len(load.failures) <= workers and not late,
                            "%d failed requests (in flight at the kill: at most %d; none more "
                            "than 1 s later): %r" % (len(load.failures), workers, load.failures))
        self.assertGreaterEqual(ejected.host_stat(victim.inbound_port, "ejections_total"), 1)
        for b in (bs[0], bs[2]):
            self.assertEqual(ejected.health(b.inbound_port), "healthy", ejected)
        self.assertGreaterEqual(a.metric("palisade_outlier_ejections_total"), 1)

        # Back on the same port: after the ejection time and warm-up it gets requests again.
        victim.restart()
        probe = [0]
        failures = []

        def victim_served():
            probe[0] += 1
            r = timed_request(a.outbound_port(), "/probe-%d" % probe[0], timeout=10)
            if r[0] != 200:
                failures.append(r)
            return self.count(victim_app, "/probe-") > 0
        self.wait_for(victim_served, 20, "the restarted endpoint to get requests again")
        self.assertWithLogs(not failures, "requests failed after the restart: %r" % failures)
        # No traffic meanwhile: the health flag must not depend on requests being sent.
        self.assertWithLogs(wait_until_clusters(
            a, lambda c: c.health(victim.inbound_port) == "healthy", 10) is not None,
            "endpoint not healthy again:\n%s" % a.admin("GET", "/clusters")[1])


class LimitsTest(BalancingBase):

    def test_pool_limit_two_active_one_queued_rest_overflow(self):
        bs, apps = self.backends(1)
        dr = self.dr({"connectionPool": {
            "tcp": {"connectTimeout": "5s"},
            "http": {"http2MaxRequests": 2, "http1MaxPendingRequests": 1}}})
        a = self.client_sidecar([bs[0].inbound_port], traffic=[dr], concurrency=1)
        pending_seen = []

        def watch():  # while the slow requests run: 2 active, 1 queued
            c = wait_until_clusters(
                a, lambda c: c.stat("rq_pending_active") == 1 and
                c.host_stat(bs[0].inbound_port, "rq_active") == 2, 1.5)
            pending_seen.append(c)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        results = parallel(timed_request, [(a.outbound_port(), "/slow?ms=2000&i=%d" % i)
                                           for i in range(5)])
        watcher.join(10)
        statuses = sorted(r[0] for r in results)
        self.assertWithLogs(statuses == [200, 200, 200, 503, 503],
                            "5 concurrent requests, 2 active + 1 queued allowed: %r" % results)
        for status, body, seconds in results:
            if status == 503:
                self.assertWithLogs(body.startswith(b"upstream overflow:") and
                                    (b"http1MaxPendingRequests" in body or
                                     b"http2MaxRequests" in body) and seconds < 1.5,
                                    "overflow answer: %r after %.2fs" % (body, seconds))
        self.assertEqual(self.count(apps[0], "/slow"), 3)
        self.assertWithLogs(pending_seen and pending_seen[0] is not None,
                            "/clusters never showed 2 active + 1 pending")
        clusters = a.clusters()
        self.assertEqual(clusters.limit("max_requests"), 2, clusters)
        self.assertEqual(clusters.limit("max_pending_requests"), 1, clusters)
        self.assertGreaterEqual(clusters.stat("upstream_rq_pending_overflow"), 2, clusters)
        self.assertGreaterEqual(a.metric("palisade_upstream_overflow_total",
                                         reason="queue_full"), 2)

    def test_queued_request_waits_at_most_connect_timeout(self):
        bs, apps = self.backends(1)
        dr = self.dr({"connectionPool": {
            "tcp": {"connectTimeout": "1s"},
            "http": {"http2MaxRequests": 1, "http1MaxPendingRequests": 5}}})
        a = self.client_sidecar([bs[0].inbound_port], traffic=[dr], concurrency=1)
        first = []
        t = threading.Thread(target=lambda: first.append(
            timed_request(a.outbound_port(), "/slow?ms=3000&first")), daemon=True)
        t.start()
        self.wait_for(lambda: self.count(apps[0], "/slow") == 1, 5, "the first request at the app")
        status, body, seconds = timed_request(a.outbound_port(), "/slow?ms=3000&queued")
        t.join(10)
        self.assertWithLogs(status == 503 and body.startswith(b"upstream overflow:") and
                            0.7 <= seconds <= 2.5,
                            "queued request: %d %r after %.2fs (want 503 overflow after ~1s)" %
                            (status, body, seconds))
        self.assertWithLogs(first and first[0][0] == 200, "first request: %r" % first)
        self.assertEqual(self.count(apps[0], "/slow"), 1)
        self.assertGreaterEqual(a.metric("palisade_upstream_overflow_total",
                                         reason="queue_timeout"), 1)

    def test_retry_budget_bounds_retries_to_dead_endpoints(self):
        bs, apps = self.backends(1)
        dead = [harness.free_port(), harness.free_port()]  # nothing listens: refused
        dr = self.dr({"connectionPool": {"http": {"maxRetries": 1}},
                      "outlierDetection": {"consecutiveGatewayErrors": 0,
                                           "consecutive5xxErrors": 0}})
        a = self.client_sidecar([dead[0], bs[0].inbound_port, dead[1]], traffic=[dr],
                                concurrency=1)

        def three(i):
            return [timed_request(a.outbound_port(), "/slow?ms=300&r=%d-%d" % (i, j))
                    for j in range(3)]
        results = [r for rs in parallel(three, [(i,) for i in range(20)]) for r in
                   (rs if isinstance(rs, list) else [(0, repr(rs).encode(), 0)])]
        ok = [r for r in results if r[0] == 200]
        budget = [r for r in results if r[0] == 503 and b"retry budget" in r[1]]
        other = [r for r in results if r not in ok and r not in budget]
        self.assertWithLogs(not other, "%d answered 200, %d 503 retry budget, %d other: %r" %
                            (len(ok), len(budget), len(other), other))
        self.assertWithLogs(ok and budget, "%d answered 200, %d refused by the retry budget" %
                            (len(ok), len(budget)))
        self.assertEqual(self.count(apps[0], "/slow"), len(ok))
        self.assertGreaterEqual(a.metric("palisade_upstream_retries_total", result="retried"), 1)
        self.assertGreaterEqual(a.metric("palisade_upstream_retries_total",
                                         result="budget_exhausted"), 1)
        clusters = a.clusters()
        self.assertEqual(clusters.limit("max_retries"), 1, clusters)
        self.assertGreaterEqual(clusters.stat("upstream_rq_retry"), 1, clusters)
        self.assertGreaterEqual(clusters.stat("upstream_rq_retry_overflow"), 1, clusters)

    def test_retries_hide_one_dead_endpoint(self):
        bs, apps = self.backends(2)
        dead = harness.free_port()
        a = self.client_sidecar([bs[0].inbound_port, dead, bs[1].inbound_port])
        self.keep_alive(a, 30, "/hide")
        self.assertEqual(sum(self.count(app, "/hide") for app in apps), 30)
        self.assertGreaterEqual(a.metric("palisade_upstream_retries_total", result="retried"), 1)


class TimeoutTest(BalancingBase):

    def test_request_timeout_504_fast_request_unaffected(self):
        bs, apps = self.backends(1)
        vs = harness.virtual_service(SERVICE_HOST, timeout="500ms")
        a = self.client_sidecar([bs[0].inbound_port], traffic=[vs])
        status, body, seconds = timed_request(a.outbound_port(), "/slow?ms=3000")
        self.assertWithLogs(status == 504 and b"upstream request timeout" in body and
                            0.4 <= seconds <= 2.0,
                            "slow request: %d %r after %.2fs (want 504 after ~0.5s)" %
                            (status, body, seconds))
        status, body, _ = timed_request(a.outbound_port(), "/fast")
        self.assertWithLogs(status == 200, "fast request: %d %r" % (status, body))
        time.sleep(0.5)  # a retry of the timed-out request would have reached the app by now
        self.assertEqual(self.count(apps[0], "/slow"), 1, "a request that reached the app is "
                         "not retried")
        self.assertGreaterEqual(a.metric("palisade_upstream_request_timeouts_total"), 1)
        self.assertGreaterEqual(a.clusters().stat("upstream_rq_timeout"), 1)

    def test_grpc_request_timeout_deadline_exceeded(self):
        bs, apps = self.backends(1, "grpc")
        vs = harness.virtual_service(SERVICE_HOST, timeout="500ms")
        a = self.client_sidecar([bs[0].inbound_port], protocol="GRPC", traffic=[vs])
        ch = grpc.insecure_channel("127.0.0.1:%d" % a.outbound_port())
        self.addCleanup(ch.close)
        t0 = time.monotonic()
        with self.assertRaises(grpc.RpcError) as caught:
            ch.unary_unary(SLOW)(b"3000", timeout=10)
        seconds = time.monotonic() - t0
        self.assertWithLogs(caught.exception.code() == grpc.StatusCode.DEADLINE_EXCEEDED and
                            seconds < 2.5, "slow call: %r after %.2fs" % (caught.exception,
                                                                         seconds))
        json.loads(ch.unary_unary(ECHO)(b"fast", timeout=10))


class EndpointChangeTest(BalancingBase):

    def test_endpoint_removed_live_in_flight_requests_complete(self):
        bs, apps = self.backends(3)
        a = self.client_sidecar([b.inbound_port for b in bs])
        n = 12
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("r", parallel(
            timed_request, [(a.outbound_port(), "/slow?ms=4000&inflight=%d" % i, 20)
                            for i in range(n)])), daemon=True)
        t.start()
        self.wait_for(lambda: sum(self.count(x, "/slow") for x in apps) == n, 5,
                      "%d slow requests at the apps" % n)
        removed = self.count(apps[2], "/slow")
        self.assertWithLogs(removed >= 1, "no request in flight on the endpoint to remove: %r" %
                            [self.count(x, "/slow") for x in apps])
        mark = a.proc.log_mark()
        a.write_service("httpbin.yaml", self.service([bs[0].inbound_port, bs[1].inbound_port]))
        self.wait_for_log(a.proc, r"services.*loaded version", 5, since=mark)
        self.assertWithLogs("r" not in box, "the reload came after the requests finished")
        t.join(30)
        results = box.get("r") or []
        self.assertWithLogs(len(results) == n and all(r[0] == 200 for r in results),
                            "in-flight requests across the endpoint removal: %r" % results)
        self.keep_alive(a, 30, "/after")
        counts = [self.count(app, "/after") for app in apps]
        self.assertWithLogs(counts[2] == 0 and sum(counts) == 30,
                            "after the removal: %r" % counts)
        clusters = a.clusters()
        self.assertEqual(clusters.host(bs[2].inbound_port).get("rq_active", "0"), "0", clusters)


def wait_until_clusters(sidecar, predicate, timeout):
    """Polls /clusters until predicate(Clusters) holds: that Clusters, or None."""
    def check():
        try:
            status, body = sidecar.admin("GET", "/clusters")
        except OSError:
            return None
        if status != 200:
            return None
        c = harness.Clusters(body)
        return c if predicate(c) else None
    return harness.wait_until(check, timeout, interval=0.1)


if __name__ == "__main__":
    harness.main()
