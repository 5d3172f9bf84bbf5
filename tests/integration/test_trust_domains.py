"""Trust bundles per trust domain: a federated trust domain's SVIDs are accepted when B holds its
bundle, and only when signed by that domain's own roots (bundles are looked up by the leaf's
trust domain); a bundle file with two roots (CA rotation) accepts both; a bundle file replaced
in place takes effect for new handshakes."""

import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ID_B, ID_C  # noqa: E402

OTHER = "spiffe://other.org/ns/foo/sa/partner"


class TrustDomainsTest(harness.IntegrationTest):

    def b_with_bundles(self, app, bundles, policies=None):
        return harness.Sidecar(self, "b", self.pki.issue(ID_B), labels={"app": "httpbin"},
                               inbound_ports=[{"targetPort": app.port, "protocol": "HTTP"}],
                               trust_bundles=bundles, policies=policies,
                               explain_denials=True)

    def get(self, b, svid, path="/x"):
        return harness.curl("https://127.0.0.1:%d%s" % (b.inbound_port, path), svid,
                            directory=self.dir)

    def test_federated_trust_domain_accepted_with_its_bundle(self):
        app = harness.http_app(self)
        allow = harness.authz_policy("allow-partner", "ALLOW", """\
  - from:
    - source:
        principals: ["other.org/ns/foo/sa/partner"]
""")
        b = self.b_with_bundles(app, [("certs/bundle.pem", None),
                                      (self.pki.other.root, "other.org")],
                                policies={"allow.yaml": allow})
        partner = self.pki.issue(OTHER, ca=self.pki.other)
        resp = self.get(b, partner, "/federated")
        self.assertWithLogs(resp.status == 200, repr(resp))
        self.assertEqual(resp.app_headers("x-forwarded-client-cert"),
                         [harness.xfcc(ID_B, partner)])
        # The mesh's own client: trusted, but not allowed by the policy.
        self.assertEqual(self.get(b, self.pki.issue(ID_C), "/mesh").status, 403)

    def test_leaf_claiming_other_trust_domain_signed_by_mesh_ca_refused(self):
        # B trusts both domains; a cluster.local CA must not vouch for an other.org ID.
        app = harness.http_app(self)
        b = self.b_with_bundles(app, [("certs/bundle.pem", None),
                                      (self.pki.other.root, "other.org")])
        forged = self.pki.mesh.forge(OTHER, os.path.join(self.dir, "forged"))
        mark = b.proc.log_mark()
        resp = self.get(b, forged, "/forged")
        self.assertWithLogs(resp.status == 0, "forged other.org SVID answered: %r" % resp)
        line = self.wait_for_log(b.proc, r"tls: inbound handshake", 5, since=mark)
        self.assertTrue(any(r in line for r in ("untrusted", "wrong_trust_domain")), line)
        self.assertEqual(app.requests(), [])
        # Control: the same forging, for an ID of the CA's own trust domain, is accepted.
        fair = self.pki.mesh.forge(ID_C, os.path.join(self.dir, "fair"))
        self.assertEqual(self.get(b, fair, "/fair").status, 200)

    def test_bundle_with_two_roots_accepts_both(self):
        app = harness.http_app(self)
        both = os.path.join(self.dir, "two-roots.pem")
        with open(both, "w") as out:
            for root in (self.pki.mesh.root, self.pki.unknown.root):
                out.write(harness.read_text(root))
        b = self.b_with_bundles(app, [(both, None)])
        for ca in (self.pki.mesh, self.pki.unknown):
            resp = self.get(b, self.pki.issue(ID_C, ca=ca))
            self.assertWithLogs(resp.status == 200, "client of %s: %r" % (ca.dir, resp))

    def test_bundle_replaced_in_place_takes_effect(self):
        app = harness.http_app(self)
        bundle = os.path.join(self.dir, "bundle.pem")
        shutil.copyfile(self.pki.mesh.root, bundle)
        b = self.b_with_bundles(app, [(bundle, None)])
        newcomer = self.pki.issue(ID_C, ca=self.pki.unknown)
        self.assertEqual(self.get(b, newcomer).status, 0)
        harness.write_file(bundle, harness.read_text(self.pki.mesh.root) +
                           harness.read_text(self.pki.unknown.root))
        self.wait_for(lambda: self.get(b, newcomer).status == 200, 8,
                      "the new root to be trusted")
        self.assertEqual(self.get(b, self.pki.issue(ID_C)).status, 200)

    def test_root_removed_from_bundle_refuses_its_clients(self):
        # A peer verified under the old bundle must not be let in after its root is gone.
        app = harness.http_app(self)
        bundle = os.path.join(self.dir, "bundle.pem")
        harness.write_file(bundle, harness.read_text(self.pki.mesh.root) +
                           harness.read_text(self.pki.unknown.root))
        b = self.b_with_bundles(app, [(bundle, None)])
        leaving = self.pki.issue(ID_C, ca=self.pki.unknown)
        for _ in range(3):
            self.assertEqual(self.get(b, leaving).status, 200)
        harness.write_file(bundle, harness.read_text(self.pki.mesh.root))
        self.wait_for(lambda: self.get(b, leaving).status == 0, 8,
                      "the removed root's client to be refused")
        self.assertEqual(self.get(b, self.pki.issue(ID_C)).status, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
