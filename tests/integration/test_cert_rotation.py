"""Certificate replacement: the SVID files a sidecar's bootstrap names are replaced in place
(new files renamed over the old ones) while traffic flows. New handshakes use the new SVID, and
no request fails: h2load through A -> B plus a loop of fresh mTLS handshakes (curl) straight
at B, for several seconds, across the replacement."""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_A, ID_B, ID_C  # noqa: E402

LOAD_S = 8


def serial_forms(n):
    h = "%X" % n
    if len(h) % 2:
        h = "0" + h
    return {h, h.lower(), str(n), ":".join(h[i:i + 2] for i in range(0, len(h), 2)),
            ":".join(h[i:i + 2] for i in range(0, len(h), 2)).lower()}


class CertRotationTest(harness.IntegrationTest):

    def assertLoadClean(self, load):
        # Timing-based h2load: responses to requests started at the end count in the status
        # codes but not in "done", so 2xx >= done.
        self.assertWithLogs(load.get("done", 0) > 0 and load.get("failed") == 0 and
                            load.get("errored") == 0 and load.get("timeout") == 0 and
                            load.get("4xx") == 0 and load.get("5xx") == 0 and
                            load.get("2xx", 0) >= load.get("done"), "h2load: %r" % load)

    def curl_loop(self, b, svid, stop, results):
        while not stop.is_set():
            r = harness.curl("https://127.0.0.1:%d/loop" % b.inbound_port, svid, timeout=10,
                             directory=self.dir)
            results.append(r)

    def test_server_cert_replaced_under_load_zero_failures(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port)
        old_der = harness.peer_cert_der(b.inbound_port, self.pki.issue(ID_C))
        new_svid = self.pki.issue(ID_B)
        c_svid = self.pki.issue(ID_C)
        stop = threading.Event()
        curls = []
        looper = threading.Thread(target=self.curl_loop, args=(b, c_svid, stop, curls))
        load = {}
        loader = threading.Thread(target=lambda: load.update(harness.h2load(
            "http://127.0.0.1:%d/load" % a.outbound_port(), "--h1", "-c", "4", "-D",
            str(LOAD_S), "-T", "10")))
        looper.start()
        loader.start()
        try:
            time.sleep(2.5)
            b.replace_certs(new_svid)
            self.wait_for(lambda: _peer_der(b, c_svid) == new_svid.leaf_der(), 6,
                          "B to present the new SVID")
            loader.join(LOAD_S + 60)
        finally:
            stop.set()
            looper.join(30)
        self.assertNotEqual(old_der, new_svid.leaf_der())
        self.assertLoadClean(load)
        bad = [r for r in curls if r.status != 200]
        self.assertWithLogs(len(curls) > 5 and not bad,
                            "%d curl requests, failed: %r" % (len(curls), bad[:3]))
        self.assertGreaterEqual(b.metric("palisade_config_reloads_total", kind="identity",
                                         result="ok"), 1)
        certs = b.admin("GET", "/certs")[1]
        self.assertTrue(serial_forms(new_svid.serial()) & set(_tokens(certs)),
                        "new serial not in /certs: %s" % certs[:2000])

    def test_client_cert_replaced_under_load_zero_failures(self):
        app = harness.http_app(self)
        a, b = self.mesh(app.port)
        new_svid = self.pki.issue(ID_A)
        load = {}
        loader = threading.Thread(target=lambda: load.update(harness.h2load(
            "http://127.0.0.1:%d/load" % a.outbound_port(), "--h1", "-c", "4", "-D",
            str(LOAD_S), "-T", "10")))
        loader.start()
        time.sleep(2.5)
        a.replace_certs(new_svid)

        def a_has_new_serial():
            status, body = a.admin("GET", "/certs")
            return status == 200 and serial_forms(new_svid.serial()) & set(_tokens(body))
        self.wait_for(a_has_new_serial, 6, "A's /certs to show the new serial")
        loader.join(LOAD_S + 60)
        self.assertLoadClean(load)

    def test_mismatched_key_is_rejected_and_old_svid_kept(self):
        # A key that does not belong to the certificate: rejected, the old pair keeps serving.
        app = harness.http_app(self)
        a, b = self.mesh(app.port)
        c_svid = self.pki.issue(ID_C)
        old_der = harness.peer_cert_der(b.inbound_port, c_svid)
        stray = self.pki.issue(ID_B)
        with open(stray.key, "rb") as f:
            harness.write_file(os.path.join(b.certs, "key.pem"), f.read(), 0o600)
        self.wait_for(lambda: b.metric("palisade_config_reloads_total", kind="identity",
                                       result="rejected") >= 1, 8,
                      "the mismatched key to be rejected")
        self.assertEqual(harness.peer_cert_der(b.inbound_port, c_svid), old_der)
        self.assertEqual(harness.http_request(a.outbound_port(), "/still").status, 200)


def _peer_der(b, svid):
    try:
        return harness.peer_cert_der(b.inbound_port, svid, timeout=5)
    except OSError:
        return None


def _tokens(text):
    import re
    return re.findall(r"[0-9A-Fa-f:]+", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
