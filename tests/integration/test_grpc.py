"""gRPC: a python3-grpcio client -> sidecar A (outbound listener, service port GRPC) -> mTLS
(h2) -> sidecar B (inbound port GRPC) -> a python3-grpcio server. Allowed calls carry XFCC in
the metadata; denied ones end PERMISSION_DENIED with `RBAC: access denied` and never reach
the server."""

import json
import os
import sys
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_A, ID_B  # noqa: E402

ECHO = "/palisade.test.Echo/Echo"
ADMIN = "/palisade.test.Echo/Admin"

DENY_ADMIN_METHOD = harness.authz_policy("deny-admin-rpc", "DENY", """\
  - to:
    - operation:
        paths: ["%s"]
""" % ADMIN)

ALLOW_OTHER = harness.authz_policy("allow-other", "ALLOW", """\
  - from:
    - source:
        principals: ["cluster.local/ns/foo/sa/someone-else"]
""")


class GrpcTest(harness.IntegrationTest):

    def channel(self, a):
        ch = grpc.insecure_channel("127.0.0.1:%d" % a.outbound_port())
        self.addCleanup(ch.close)
        return ch

    def test_grpc_allowed_through_sidecars_carries_xfcc(self):
        app = harness.grpc_app(self)
        a_svid = self.pki.issue(ID_A)
        a, b = self.mesh(app.port, protocol="GRPC", a_svid=a_svid)
        echo = self.channel(a).unary_unary(ECHO)
        reply = json.loads(echo(b"hello", timeout=10, metadata=[
            ("x-forwarded-client-cert", "By=forged")]))
        self.assertEqual(reply["request"], "hello")
        self.assertEqual(reply["metadata"].get("x-forwarded-client-cert"),
                         harness.xfcc(ID_B, a_svid))
        self.assertGreaterEqual(b.metric("palisade_http_requests_total", result="allowed"), 1)

    def test_grpc_denied_method_permission_denied(self):
        app = harness.grpc_app(self)
        a, b = self.mesh(app.port, protocol="GRPC",
                         b_policies={"deny.yaml": DENY_ADMIN_METHOD})
        ch = self.channel(a)
        with self.assertRaises(grpc.RpcError) as caught:
            ch.unary_unary(ADMIN)(b"drop tables", timeout=10)
        err = caught.exception
        self.assertEqual(err.code(), grpc.StatusCode.PERMISSION_DENIED, err)
        self.assertEqual(err.details(), "RBAC: access denied")
        # The same channel still serves allowed calls.
        reply = json.loads(ch.unary_unary(ECHO)(b"ok", timeout=10))
        self.assertEqual(reply["method"], "Echo")
        self.assertEqual([r["method"] for r in app.records()], ["Echo"])
        self.wait_for_log(b.proc, r"rbac: denied request.*deny-admin-rpc", 5)

    def test_grpc_denied_by_principal_permission_denied(self):
        app = harness.grpc_app(self)
        a, b = self.mesh(app.port, protocol="GRPC", b_policies={"allow.yaml": ALLOW_OTHER})
        with self.assertRaises(grpc.RpcError) as caught:
            self.channel(a).unary_unary(ECHO)(b"x", timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.PERMISSION_DENIED,
                         caught.exception)
        self.assertEqual(caught.exception.details(), "RBAC: access denied")
        self.assertEqual(app.records(), [])
        line = self.wait_for_log(b.proc, r"rbac: denied request", 5)
        self.assertIn(ID_A, line)
        self.assertIn("no ALLOW policy matched", line)

    def test_grpc_many_concurrent_calls_on_one_channel(self):
        app = harness.grpc_app(self)
        a, b = self.mesh(app.port, protocol="GRPC")
        echo = self.channel(a).unary_unary(ECHO)
        futures = [echo.future(b"call-%d" % i, timeout=30) for i in range(200)]
        replies = [json.loads(f.result()) for f in futures]
        self.assertEqual(sorted(r["request"] for r in replies),
                         sorted("call-%d" % i for i in range(200)))


class GrpcMoreTest(harness.IntegrationTest):

    def test_grpc_large_messages_both_ways(self):
        app = harness.grpc_app(self)
        a, b = self.mesh(app.port, protocol="GRPC")
        ch = grpc.insecure_channel("127.0.0.1:%d" % a.outbound_port(), options=[
            ("grpc.max_receive_message_length", 16 * 1024 * 1024)])
        self.addCleanup(ch.close)
        payload = b"z" * (3 * 1024 * 1024)
        reply = json.loads(ch.unary_unary(ECHO)(payload, timeout=30))
        self.assertEqual(len(reply["request"]), len(payload))

    def test_grpc_policy_change_denies_calls_on_open_channel(self):
        app = harness.grpc_app(self)
        a, b = self.mesh(app.port, protocol="GRPC")
        ch = grpc.insecure_channel("127.0.0.1:%d" % a.outbound_port())
        self.addCleanup(ch.close)
        echo = ch.unary_unary(ECHO)
        json.loads(echo(b"before", timeout=10))
        b.write_policy("deny-sleep.yaml", harness.authz_policy("deny-sleep", "DENY", """\
  - from:
    - source:
        principals: ["%s"]
""" % ID_A[len("spiffe://"):]))
        codes = []

        def denied():
            try:
                echo(b"poll", timeout=5)
                return False
            except grpc.RpcError as e:
                codes.append(e.code())
                return e.code() in (grpc.StatusCode.PERMISSION_DENIED,
                                    grpc.StatusCode.UNAVAILABLE)
        self.wait_for(denied, 8, "calls on the open channel to be denied")
        calls = len([r for r in app.records() if r["request"] == "poll"])
        for _ in range(3):
            self.assertTrue(denied(), codes)
        self.assertEqual(len([r for r in app.records() if r["request"] == "poll"]), calls)


if __name__ == "__main__":
    unittest.main(verbosity=2)
