"""`palisade-proxy --validate --bootstrap FILE`: exit 0 and `bootstrap OK` for a good file; exit
1 with `file:line:col: message` for a bad bootstrap or a bad file it refers to. A proxy started
with a bad bootstrap exits non-zero with the same kind of message."""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_B, SERVICE_HOST, SERVICE_PORT  # noqa: E402

BAD_POLICY = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: bad
  namespace: foo
spec:
  action: DENY
  rules:
  - to:
    - operation:
        methodz: ["GET"]
"""  # line 11


class ValidateTest(harness.IntegrationTest):

    def sidecar(self, **kwargs):
        svid = self.pki.issue(ID_B)
        se = harness.service_entry(SERVICE_HOST, 15006, [ID_B])
        return harness.Sidecar(self, "v", svid, inbound_ports=[{"targetPort": 8080}],
                               outbound=[(SERVICE_HOST, SERVICE_PORT)],
                               services={"svc.yaml": se}, start=False, **kwargs)

    def validate(self, bootstrap):
        return subprocess.run([harness.PROXY, "--validate", "--bootstrap", bootstrap],
                              capture_output=True, text=True, timeout=30)

    def edit(self, s, old, new):
        text = harness.read_text(s.bootstrap)
        self.assertIn(old, text)
        harness.write_file(s.bootstrap, text.replace(old, new, 1))

    def line_of(self, s, needle):
        for i, line in enumerate(harness.read_text(s.bootstrap).splitlines(), 1):
            if needle in line:
                return i
        self.fail("%r not in bootstrap" % needle)

    def test_validate_good_bootstrap(self):
        s = self.sidecar(policies={"pa.yaml": harness.peer_authentication("STRICT")})
        proc = self.validate(s.bootstrap)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("bootstrap OK", proc.stdout)

    def test_validate_unknown_field_has_position(self):
        s = self.sidecar()
        self.edit(s, "explainDenials:", "explainDenialz:")
        line = self.line_of(s, "explainDenialz")
        proc = self.validate(s.bootstrap)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        self.assertRegex(proc.stderr, r"bootstrap\.yaml:%d:1: .*explainDenialz" % line)
        self.assertNotIn("bootstrap OK", proc.stdout)

    def test_validate_bad_address(self):
        s = self.sidecar()
        self.edit(s, "admin: 127.0.0.1:", "admin: 127.0.0.1.5:")
        line = self.line_of(s, "admin:")
        proc = self.validate(s.bootstrap)
        self.assertEqual(proc.returncode, 1)
        self.assertRegex(proc.stderr, r"bootstrap\.yaml:%d:\d+: " % line)

    def test_validate_bad_policy_file_has_its_position(self):
        s = self.sidecar(policies={"bad.yaml": BAD_POLICY})
        proc = self.validate(s.bootstrap)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        self.assertRegex(proc.stderr, r"bad\.yaml:11:\d+: .*methodz")

    def test_validate_custom_action_refused(self):
        custom = BAD_POLICY.replace("action: DENY", "action: CUSTOM\n  provider:\n    name: ext")
        s = self.sidecar(policies={"custom.yaml": custom})
        proc = self.validate(s.bootstrap)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        self.assertRegex(proc.stderr, r"custom\.yaml:\d+:\d+: .*CUSTOM")

    def test_validate_missing_certificate_file(self):
        s = self.sidecar()
        os.remove(os.path.join(s.certs, "chain.pem"))
        proc = self.validate(s.bootstrap)
        self.assertEqual(proc.returncode, 1)
        line = self.line_of(s, "certificateChain:")
        self.assertRegex(proc.stderr, r"bootstrap\.yaml:%d:\d+: " % line)

    def test_validate_outbound_listener_naming_unknown_service(self):
        s = self.sidecar()
        self.edit(s, "service: %s" % SERVICE_HOST, "service: nope.foo.svc.cluster.local")
        proc = self.validate(s.bootstrap)
        self.assertEqual(proc.returncode, 1)
        self.assertRegex(proc.stderr, r"bootstrap\.yaml:\d+:\d+: .*nope\.foo\.svc\.cluster\.local")

    def test_start_with_bad_bootstrap_exits_nonzero_with_position(self):
        s = self.sidecar()
        self.edit(s, "concurrency:", "concurrenzy:")
        proc = self.start_process("proxy-bad", s.args)
        rc = proc.wait(10)
        self.assertWithLogs(rc not in (None, 0), "exit code %r" % rc)
        self.assertTrue(re.search(r"bootstrap\.yaml:\d+:\d+: .*concurrenzy", proc.stderr()),
                        proc.stderr())


if __name__ == "__main__":
    unittest.main(verbosity=2)
