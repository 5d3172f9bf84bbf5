"""Shared pieces of the palisade-proxy integration tests: a throw-away PKI, processes with their
logs in files, sidecars built from a bootstrap written per test, the test apps, clients, and
bounded waits that print every process's log when they fail.

Everything listens on 127.0.0.1. Binaries come from $PALISADE_PROXY and $PALISADECTL (ctest sets
them), else from build-itest/bin or build/bin of this checkout. Set PALISADE_ITEST_KEEP=1 to keep
each test's directory (certificates, bootstraps, logs) for a look afterwards.
"""

import base64
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
APPS = os.path.join(HERE, "apps")
PYTHON = "/usr/bin/python3"  # the one with python3-grpcio
TRUST_DOMAIN = "cluster.local"

# The workloads of the usual topology: client app -> sidecar A -> mTLS -> sidecar B -> app.
NS = "foo"
ID_A = "spiffe://cluster.local/ns/foo/sa/sleep"  # the client side's sidecar
ID_B = "spiffe://cluster.local/ns/foo/sa/httpbin"  # the server side's sidecar
ID_C = "spiffe://cluster.local/ns/bar/sa/curl"  # a client calling B directly
SERVICE_HOST = "httpbin.foo.svc.cluster.local"
SERVICE_PORT = 8000

DENIED_BODY = b"RBAC: access denied"
HANDSHAKE_REASONS = {"no_peer_certificate", "invalid_svid", "unknown_trust_domain", "untrusted",
                     "wrong_trust_domain"}


def _binary(env, name):
    path = os.environ.get(env)
    if path:
        return path
    for build in ("build-itest", "build"):
        candidate = os.path.join(REPO, build, "bin", name)
        if os.access(candidate, os.X_OK):
            return candidate
    return os.path.join(REPO, "build", "bin", name)


PROXY = _binary("PALISADE_PROXY", "palisade-proxy")
PALISADECTL = _binary("PALISADECTL", "palisadectl")


def principal(spiffe_id):
    """Istio names principals without the scheme."""
    return spiffe_id[len("spiffe://"):]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_file(path, text, mode=None):
    """Atomic: a temporary file in the same directory, then rename (what a watcher should see)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def wait_until(predicate, timeout, interval=0.05):
    """Calls predicate until it returns something truthy; returns it, or None after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# PKI


def run_ctl(*args):
    proc = subprocess.run([PALISADECTL, *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("palisadectl %s failed (%d): %s%s" %
                           (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout


class Ca:
    """A throw-away CA made by `palisadectl ca init` in DIR."""

    def __init__(self, directory, trust_domain=TRUST_DOMAIN, intermediate=False):
        self.dir = directory
        self.trust_domain = trust_domain
        run_ctl("ca", "init", "--trust-domain", trust_domain, "--out", directory,
                *(["--intermediate"] if intermediate else []))

    @property
    def root(self):
        return os.path.join(self.dir, "root.crt")

    def issue(self, spiffe_id, out, ttl="1h"):
        run_ctl("cert", "issue", "--ca", self.dir, "--spiffe-id", spiffe_id, "--ttl", ttl,
                "--out", out)
        return Svid(out, spiffe_id)

    def forge(self, spiffe_id, out, expires_in=3600):
        """A leaf signed by this CA with python3-cryptography, whatever its trust domain
        (palisadectl refuses an ID outside the CA's trust domain)."""
        return self.issue_expired(spiffe_id, out, expires_in)

    def issue_expired(self, spiffe_id, out, expires_in=-5):
        """A leaf that expired a few seconds ago, signed by this CA (palisadectl's --ttl is
        >= 1m): python3-cryptography, same extensions as palisadectl's leaves. It was valid from
        the CA's own notBefore (a fresh CA is back-dated a little) until then."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        with open(os.path.join(self.dir, "ca.key"), "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), password=None)
        with open(os.path.join(self.dir, "ca.crt"), "rb") as f:
            ca_cert = x509.load_pem_x509_certificate(f.read())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "palisade")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(ca_cert.not_valid_before.replace(tzinfo=datetime.timezone.utc))
            .not_valid_after(now + datetime.timedelta(seconds=expires_in))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(spiffe_id)]), critical=False))
        cert = builder.sign(ca_key, hashes.SHA256())
        os.makedirs(out, exist_ok=True)
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        write_file(os.path.join(out, "key.pem"), key_pem, 0o600)
        write_file(os.path.join(out, "cert.pem"), cert_pem)
        write_file(os.path.join(out, "chain.pem"), cert_pem)
        shutil.copyfile(self.root, os.path.join(out, "bundle.pem"))
        return Svid(out, spiffe_id)


class Svid:
    """key.pem cert.pem chain.pem bundle.pem in one directory."""

    def __init__(self, directory, spiffe_id):
        self.dir = directory
        self.spiffe_id = spiffe_id

    key = property(lambda self: os.path.join(self.dir, "key.pem"))
    cert = property(lambda self: os.path.join(self.dir, "cert.pem"))
    chain = property(lambda self: os.path.join(self.dir, "chain.pem"))
    bundle = property(lambda self: os.path.join(self.dir, "bundle.pem"))

    def leaf_der(self):
        with open(self.cert, "rb") as f:
            return ssl.PEM_cert_to_DER_cert(f.read().decode())

    def chain_ders(self):
        """Every certificate of chain.pem, leaf first, as DER."""
        text = read_text(self.chain)
        pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text,
                          re.S)
        return [ssl.PEM_cert_to_DER_cert(p) for p in pems]

    def leaf_sha256(self):
        return hashlib.sha256(self.leaf_der()).hexdigest()

    def subject(self):
        """RFC 2253 subject, as Envoy's XFCC Subject carries it."""
        from cryptography import x509
        return x509.load_der_x509_certificate(self.leaf_der()).subject.rfc4514_string()

    def serial(self):
        from cryptography import x509
        return x509.load_der_x509_certificate(self.leaf_der()).serial_number


class Pki:
    """The CAs one test module needs: the mesh CA (cluster.local), a second CA of the same
    trust domain no sidecar trusts, and a CA of another trust domain (other.org)."""

    def __init__(self, directory):
        self.dir = directory
        self.mesh = Ca(os.path.join(directory, "ca-mesh"))
        self.unknown = Ca(os.path.join(directory, "ca-unknown"))
        self.other = Ca(os.path.join(directory, "ca-other"), "other.org")
        self._count = 0
        self._intermediate = None

    @property
    def intermediate(self):
        """A cluster.local CA whose root only signs an intermediate that signs leaves (made on
        first use)."""
        if self._intermediate is None:
            self._intermediate = Ca(os.path.join(self.dir, "ca-intermediate"),
                                    intermediate=True)
        return self._intermediate

    def issue(self, spiffe_id, ca=None, ttl="1h"):
        self._count += 1
        name = re.sub(r"[^a-zA-Z0-9]+", "-", spiffe_id.split("://", 1)[1])
        return (ca or self.mesh).issue(spiffe_id,
                                       os.path.join(self.dir, "%s-%d" % (name, self._count)), ttl)

    def expired(self, spiffe_id, expires_in=-5):
        """Expired `expires_in` s ago, or (positive) about to expire in that many seconds."""
        self._count += 1
        return self.mesh.issue_expired(spiffe_id, os.path.join(self.dir, "expired-%d" %
                                                               self._count), expires_in)


# ---------------------------------------------------------------------------------------------
# Processes


class Process:
    """A child process whose stdout and stderr go to files in the test's directory."""

    def __init__(self, name, args, directory, env=None):
        self.name = name
        self.args = list(args)
        self.stdout_path = os.path.join(directory, name + ".stdout")
        self.stderr_path = os.path.join(directory, name + ".stderr")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(self.args, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, env=env, cwd=directory)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after `timeout` s. Returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def wait(self, timeout):
        """The exit code, or None if still running after `timeout` s."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stdout(self):
        return read_text(self.stdout_path)

    def stderr(self):
        return read_text(self.stderr_path)

    def log(self):
        return self.stderr() + self.stdout()

    def log_mark(self):
        """Where the log ends now: pass as `since` to look only at what comes after."""
        return len(self.stderr())

    def find_log(self, pattern, since=0):
        """The first line (after `since` characters of stderr, then all of stdout) matching the
        regex, or None."""
        text = self.stderr()[since:] + "\n" + self.stdout()
        for line in text.splitlines():
            if re.search(pattern, line):
                return line
        return None

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS for pid %d" % self.pid)

    def describe(self, tail_lines=60):
        state = "running" if self.alive() else "exited %s" % self.popen.returncode
        lines = []
        for label, text in (("stderr", self.stderr()), ("stdout", self.stdout())):
            body = text.splitlines()
            if not body:
                continue
            cut = body[-tail_lines:]
            lines.append("--- %s %s (pid %d, %s), last %d of %d lines:" %
                         (self.name, label, self.pid, state, len(cut), len(body)))
            lines.extend(cut)
        if not lines:
            lines.append("--- %s (pid %d, %s): no output" % (self.name, self.pid, state))
        return "\n".join(lines)


class App:
    """One of apps/*.py on 127.0.0.1: its port and the JSON lines it logged."""

    def __init__(self, test, script, *extra, name=None):
        name = name or script.replace(".py", "")  # several apps in one test: one name each
        self.log_path = os.path.join(test.dir, name + ".log")
        open(self.log_path, "w").close()
        self.proc = test.start_process(name,
                                       [PYTHON, os.path.join(APPS, script), "--log",
                                        self.log_path, *extra])
        line = test.wait_for(lambda: re.search(r"READY (\d+)", self.proc.stdout()), 20,
                             "%s to print READY" % script)
        self.port = int(line.group(1))

    def records(self):
        out = []
        for line in read_text(self.log_path).splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def requests(self):
        return [r for r in self.records() if "method" in r]

    def connections(self):
        return [r for r in self.records() if "accepted" in r]


def http_app(test, *extra, name=None):
    return App(test, "http_app.py", *extra, name=name)


def tcp_app(test, banner="", name=None):
    return App(test, "tcp_app.py", *(["--banner", banner] if banner else []), name=name)


def grpc_app(test, name=None):
    return App(test, "grpc_app.py", name=name)


# ---------------------------------------------------------------------------------------------
# Config documents


def service_entry(host, endpoint_port, subject_alt_names, protocol="HTTP", name=None,
                  namespace=NS, port=SERVICE_PORT, addresses=(), endpoints=None):
    """endpoints: [(address, port)], default [("127.0.0.1", endpoint_port)]."""
    port_name = {"HTTP": "http", "HTTP2": "http2", "GRPC": "grpc", "TCP": "tcp"}[protocol]
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %s
  namespace: %s
spec:
  hosts:
  - %s
%s  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: %d
    name: %s
    protocol: %s
  endpoints:
%s  subjectAltNames:
%s
""" % (name or host.split(".")[0], namespace, host,
       ("  addresses:\n" + "".join("  - %s\n" % a for a in addresses)) if addresses else "",
       port, port_name, protocol,
       "".join("  - address: %s\n    ports:\n      %s: %d\n" % (addr, port_name, p)
               for addr, p in (endpoints or [("127.0.0.1", endpoint_port)])),
       "".join("  - %s\n" % s for s in subject_alt_names))


def yaml_block(mapping, indent=0):
    """A dict of dicts, lists and scalars as block-style YAML (no quoting: keep values plain)."""
    out = []
    pad = " " * indent
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.append("%s%s:\n%s" % (pad, key, yaml_block(value, indent + 2)))
        elif isinstance(value, (list, tuple)):
            out.append("%s%s:\n" % (pad, key) +
                       "".join("%s- %s\n" % (pad + "  ", v) for v in value))
        else:
            if isinstance(value, bool):
                value = "true" if value else "false"
            out.append("%s%s: %s\n" % (pad, key, value))
    return "".join(out)


def destination_rule(host, traffic_policy, name=None, namespace=NS):
    """traffic_policy: the YAML text of spec.trafficPolicy (a mapping), indented by 4 under
    `trafficPolicy:`, or a dict of dicts and scalars (strings written as they are: "1s")."""
    if isinstance(traffic_policy, dict):
        traffic_policy = yaml_block(traffic_policy, 4)
    return """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: %s
  namespace: %s
spec:
  host: %s
  trafficPolicy:
%s""" % (name or host.split(".")[0], namespace, host, traffic_policy)


def virtual_service(host, timeout=None, retry_attempts=None, name=None, namespace=NS):
    """One http route to `host` with an optional timeout ("500ms") and retries.attempts."""
    route = "  - route:\n    - destination:\n        host: %s\n" % host
    if timeout:
        route += "    timeout: %s\n" % timeout
    if retry_attempts is not None:
        route += "    retries:\n      attempts: %d\n" % retry_attempts
    return """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: %s
  namespace: %s
spec:
  hosts:
  - %s
  http:
%s""" % (name or host.split(".")[0], namespace, host, route)


def cluster_name(host=SERVICE_HOST, port=SERVICE_PORT):
    """The admin /clusters name of a service port, Envoy style."""
    return "outbound|%d||%s" % (port, host)


class Clusters:
    """GET /clusters parsed. Envoy-style lines `CLUSTER::STAT::VALUE` (per cluster, e.g.
    rq_pending_active, lb_policy), `CLUSTER::default_priority::LIMIT::VALUE` (circuit breakers)
    and `CLUSTER::ADDR:PORT::STAT::VALUE` (per endpoint). Values stay strings; int() helpers
    below. `text` is the raw answer."""

    PRIORITIES = ("default_priority", "high_priority")

    def __init__(self, text):
        self.text = text
        self.stats = {}  # cluster -> {stat: value}; circuit breakers as "default_priority::x"
        self.hosts = {}  # cluster -> {"addr:port": {stat: value}}
        for line in text.splitlines():
            line = line.strip()
            if not line or "::" not in line:
                continue
            cluster, rest = line.split("::", 1)
            if "::" not in rest:
                continue
            key, value = rest.rsplit("::", 1)
            if "::" in key:
                where, stat = key.rsplit("::", 1)
                if where in self.PRIORITIES:
                    self.stats.setdefault(cluster, {})[where + "::" + stat] = value
                else:
                    self.hosts.setdefault(cluster, {}).setdefault(where, {})[stat] = value
            else:
                self.stats.setdefault(cluster, {})[key] = value

    def stat(self, stat, cluster=None, default=None):
        """A cluster-level value as int when it is one (default: the service's cluster)."""
        value = self.stats.get(cluster or cluster_name(), {}).get(stat, default)
        return _maybe_int(value)

    def limit(self, name, cluster=None):
        """A circuit breaker of default_priority: max_connections, max_requests, ..."""
        return self.stat("default_priority::" + name, cluster)

    def host(self, address, cluster=None):
        """Every stat of one endpoint ("127.0.0.1:PORT" or a port number), {} when absent."""
        if isinstance(address, int):
            address = "127.0.0.1:%d" % address
        return self.hosts.get(cluster or cluster_name(), {}).get(address, {})

    def host_stat(self, address, stat, cluster=None, default=None):
        return _maybe_int(self.host(address, cluster).get(stat, default))

    def health(self, address, cluster=None):
        return self.host(address, cluster).get("health_flags")

    def __repr__(self):
        return "Clusters(\n%s)" % self.text


def _maybe_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def peer_authentication(mode, name="default", namespace=NS):
    return """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: %s
  namespace: %s
spec:
  mtls:
    mode: %s
""" % (name, namespace, mode)


def authz_policy(name, action, rules, namespace=NS, selector=None):
    """rules: the YAML text of spec.rules (a list), indented by 2 under `rules:`."""
    sel = ""
    if selector:
        sel = "  selector:\n    matchLabels:\n" + "".join(
            "      %s: %s\n" % kv for kv in selector.items())
    return """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: %s
  namespace: %s
spec:
%s  action: %s
  rules:
%s""" % (name, namespace, sel, action, rules)


# ---------------------------------------------------------------------------------------------
# Sidecars


class Sidecar:
    """A palisade-proxy with its own directory (bootstrap.yaml, certs/, policies/, services/),
    admin/readiness/metrics on free 127.0.0.1 ports, an inbound listener, and outbound
    listeners named by service."""

    def __init__(self, test, name, svid, *, trust_bundles=None, namespace=NS, labels=None,
                 inbound_ports=(), outbound=(), policies=None, services=None,
                 explain_denials=False, drain_timeout=None, limits=None, concurrency=2,
                 log_level="debug", extra_args=(), start=True, transparent=False,
                 outbound_options=None, control_plane=None):
        """control_plane: the bootstrap's controlPlane section as a dict ({"address": ...,
        "joinToken": ...}); then svid is None, the control plane issues the SVID, and
        trust_bundles must name the control plane's root (see ControlPlane)."""
        self.test = test
        self.name = name
        self.svid = svid
        self.dir = os.path.join(test.dir, name)
        self.certs = os.path.join(self.dir, "certs")
        self.policies_dir = os.path.join(self.dir, "policies")
        self.services_dir = os.path.join(self.dir, "services")
        for d in (self.certs, self.policies_dir, self.services_dir):
            os.makedirs(d, exist_ok=True)
        if svid is not None:
            for f in ("key.pem", "chain.pem", "cert.pem", "bundle.pem"):
                shutil.copyfile(os.path.join(svid.dir, f), os.path.join(self.certs, f))
            os.chmod(os.path.join(self.certs, "key.pem"), 0o600)
        self.inbound_port = free_port()
        self.admin_port = free_port()
        self.readiness_port = free_port()
        self.metrics_port = free_port()
        self.outbound_ports = {}
        for (service, port) in outbound:
            self.outbound_ports[(service, port)] = free_port()
        for fname, text in (policies or {}).items():
            write_file(os.path.join(self.policies_dir, fname), text)
        for fname, text in (services or {}).items():
            write_file(os.path.join(self.services_dir, fname), text)
        bundles = trust_bundles or [("certs/bundle.pem", None)]
        y = ["identity:"]
        if control_plane is None:
            y += ["  certificateChain: certs/chain.pem",
                  "  privateKey: certs/key.pem"]
        y.append("  trustBundles:")
        for path, td in bundles:
            y.append("  - file: %s" % path)
            if td:
                y.append("    trustDomain: %s" % td)
        y += ["workload:",
              "  namespace: %s" % namespace,
              "  labels: {%s}" % ", ".join("%s: %s" % kv for kv in
                                           (labels or {"app": name}).items()),
              "policies: policies/",
              "services: services/",
              "inbound:",
              "  address: 127.0.0.1:%d" % self.inbound_port]
        if inbound_ports:
            y.append("  ports:")
            for p in inbound_ports:
                y.append("  - port: %d" % p.get("port", SERVICE_PORT))
                y.append("    targetPort: %d" % p["targetPort"])
                if p.get("protocol"):
                    y.append("    protocol: %s" % p["protocol"])
                if p.get("clientCertificateHeader"):
                    y.append("    clientCertificateHeader: %s" % p["clientCertificateHeader"])
        self.transparent_port = free_port() if transparent else None
        if self.outbound_ports or transparent:
            y.append("outbound:")
        if transparent:
            y.append("  transparent: 127.0.0.1:%d" % self.transparent_port)
        for key, value in (outbound_options or {}).items():
            y.append("  %s: %s" % (key, value))
        if self.outbound_ports:
            y.append("  listeners:")
            for (service, port), local in self.outbound_ports.items():
                y += ["  - address: 127.0.0.1:%d" % local,
                      "    service: %s" % service,
                      "    port: %d" % port]
        y += ["admin: 127.0.0.1:%d" % self.admin_port,
              "readiness: 127.0.0.1:%d" % self.readiness_port,
              "metrics: 127.0.0.1:%d" % self.metrics_port,
              "concurrency: %d" % concurrency,
              "explainDenials: %s" % ("true" if explain_denials else "false")]
        if drain_timeout:
            y.append("drainTimeout: %s" % drain_timeout)
        if limits:
            y.append("limits:")
            y += ["  %s: %s" % kv for kv in limits.items()]
        if control_plane is not None:
            y.append("controlPlane:")
            y.append(yaml_block(control_plane, 2).rstrip("\n"))
        self.bootstrap = os.path.join(self.dir, "bootstrap.yaml")
        write_file(self.bootstrap, "\n".join(y) + "\n")
        self.args = [PROXY, "--bootstrap", self.bootstrap, "--concurrency", str(concurrency)]
        if log_level:
            self.args += ["--log-level", log_level]
        self.args += list(extra_args)
        self.proc = None
        if start:
            self.start()

    def start(self):
        """Starts the proxy and waits for its ready line. free_port() hands out a port that
        another test running in parallel may take before the proxy binds it; then the
        proxy's own ports are picked again and it is started again."""
        for attempt in range(5):
            self.proc = self.test.start_process("proxy-" + self.name, self.args)
            self.pid = self.proc.pid
            try:
                self.test.wait_for_log(self.proc, r"palisade-proxy: ready", 20)
                return
            except AssertionError:
                if attempt == 4 or self.proc.alive() or \
                        "Address already in use" not in self.proc.stderr():
                    raise
                self.test.procs.remove(self.proc)
                self._new_ports()

    def _new_ports(self):
        """Moves the listeners this proxy owns to fresh ports (the bootstrap is rewritten)."""
        text = read_text(self.bootstrap)
        moves = {}
        for attr in ("inbound_port", "admin_port", "readiness_port", "metrics_port",
                     "transparent_port"):
            old = getattr(self, attr)
            if old:
                moves[old] = free_port()
                setattr(self, attr, moves[old])
        for key, old in list(self.outbound_ports.items()):
            moves[old] = free_port()
            self.outbound_ports[key] = moves[old]
        for old, new in moves.items():
            text = text.replace("127.0.0.1:%d\n" % old, "127.0.0.1:%d\n" % new)
        write_file(self.bootstrap, text)

    def outbound_port(self, service=SERVICE_HOST, port=SERVICE_PORT):
        return self.outbound_ports[(service, port)]

    # --- files the proxy watches

    def write_policy(self, fname, text):
        write_file(os.path.join(self.policies_dir, fname), text)

    def remove_policy(self, fname):
        os.remove(os.path.join(self.policies_dir, fname))

    def write_service(self, fname, text):
        """A ServiceEntry / DestinationRule / VirtualService file in services/ (atomic)."""
        write_file(os.path.join(self.services_dir, fname), text)

    # --- killed and started again on the same ports

    def kill(self):
        """SIGKILL (no drain): the peers see resets and refused connections."""
        self.proc.signal(signal.SIGKILL)
        self.proc.wait(10)

    def restart(self, timeout=20):
        """Starts the proxy again with the same bootstrap, on the same ports (after kill() or
        stop()). Its log goes to proxy-NAME-rN.*; the earlier logs stay. Retries for a while
        when a port is still taken (connections of the killed process in TIME_WAIT)."""
        self.restarts = getattr(self, "restarts", 0) + 1
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            name = "proxy-%s-r%d" % (self.name, self.restarts)
            if attempt > 1:
                name += "-%d" % attempt
            self.proc = self.test.start_process(name, self.args)
            self.pid = self.proc.pid
            try:
                self.test.wait_for_log(self.proc, r"palisade-proxy: ready",
                                       max(1.0, deadline - time.monotonic()))
                return
            except AssertionError:
                if time.monotonic() >= deadline or self.proc.alive() or \
                        "Address already in use" not in self.proc.stderr():
                    raise
                time.sleep(0.2)

    def replace_certs(self, svid):
        """New files written beside, then renamed over the ones the bootstrap names."""
        for f in ("key.pem", "chain.pem", "cert.pem", "bundle.pem"):
            with open(os.path.join(svid.dir, f), "rb") as src:
                write_file(os.path.join(self.certs, f), src.read(),
                           0o600 if f == "key.pem" else 0o644)
        self.svid = svid

    # --- admin, readiness, metrics

    def _http(self, port, method, path, timeout=5):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def admin(self, method, path):
        return self._http(self.admin_port, method, path)

    def clusters(self):
        """GET /clusters parsed (see Clusters)."""
        status, body = self.admin("GET", "/clusters")
        self.test.assertEqual(status, 200, body)
        return Clusters(body)

    def config_dump(self):
        status, body = self.admin("GET", "/config_dump")
        self.test.assertEqual(status, 200, body)
        return json.loads(body)

    def ready_status(self):
        try:
            return self._http(self.readiness_port, "GET", "/healthz/ready")[0]
        except OSError:
            return None

    def metrics(self):
        status, body = self._http(self.metrics_port, "GET", "/stats/prometheus")
        self.test.assertEqual(status, 200, body)
        return body

    def metric(self, name, **labels):
        return metric_value(self.metrics(), name, **labels)


def metric_value(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
    return total


# ---------------------------------------------------------------------------------------------
# Clients


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # [(lowercase name, value)]
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def app_headers(self, name):
        """From the echo app's JSON: every value the app received for header `name`."""
        return [v for k, v in self.json()["headers"] if k.lower() == name.lower()]

    def __repr__(self):
        return "Response(%s, %r, %r)" % (self.status, self.headers, self.body[:300])


def http_request(port, path="/", method="GET", headers=None, body=None, timeout=10):
    """Plaintext HTTP/1.1 to 127.0.0.1:port (an app talking to its sidecar's outbound
    listener). Raises OSError / http.client exceptions on a closed connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data)
    finally:
        conn.close()


def mtls_context(svid=None, alpn=None, bundle=None):
    """A client TLS context presenting `svid` (or no certificate), trusting `bundle` (default the
    svid's), without host name checks: servers carry only a URI SAN."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if svid is not None:
        ctx.load_cert_chain(svid.chain, svid.key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def mtls_connect(port, svid=None, alpn=None, timeout=10):
    """A TLS connection to 127.0.0.1:port with the handshake done (may raise)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return mtls_context(svid, alpn).wrap_socket(raw)
    except Exception:
        raw.close()
        raise


def peer_cert_der(port, svid, timeout=10):
    conn = mtls_connect(port, svid, ["http/1.1"], timeout)
    try:
        return conn.getpeercert(binary_form=True)
    finally:
        conn.close()


class CurlResult(Response):
    def __init__(self, rc, status, headers, body, stderr, http_version=""):
        super().__init__(status, headers, body)
        self.http_version = http_version  # "1.1", "2"
        self.rc = rc
        self.stderr = stderr

    def __repr__(self):
        return "curl(rc=%d, status=%s, version=%s, headers=%r, body=%r, stderr=%r)" % (
            self.rc, self.status, self.http_version, self.headers, self.body[:300], self.stderr[-500:])


def curl(url, svid=None, *extra, timeout=10, directory=None):
    """curl with a client certificate (svid) or none; -k: servers carry only a URI SAN.
    Returns rc, HTTP status (0 when none), headers of the last response, body."""
    directory = directory or tempfile.gettempdir()
    fd, head = tempfile.mkstemp(prefix="curl-h-", dir=directory)
    os.close(fd)
    fd, body = tempfile.mkstemp(prefix="curl-b-", dir=directory)
    os.close(fd)
    args = ["curl", "-sS", "-k", "--max-time", str(timeout), "-D", head, "-o", body,
            "-w", "%{http_code} %{http_version}"]
    if svid is not None:
        args += ["--cert", svid.chain, "--key", svid.key]
    args += list(extra) + [url]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=timeout + 10)
        headers = []
        for line in read_text(head).splitlines():
            if line.startswith("HTTP/"):
                headers = []
            elif ":" in line:
                k, v = line.split(":", 1)
                headers.append((k.strip().lower(), v.strip()))
        with open(body, "rb") as f:
            data = f.read()
        code, _, version = proc.stdout.decode().strip().partition(" ")
        return CurlResult(proc.returncode, int(code) if code.isdigit() else 0, headers, data,
                          proc.stderr.decode("utf-8", "replace"), version)
    finally:
        os.remove(head)
        os.remove(body)


class H2loadResult(dict):
    """h2load's summary: total started done succeeded failed errored timeout, 2xx 3xx 4xx 5xx,
    plus rc and the raw output."""

    def __repr__(self):
        return "h2load(rc=%s)\n%s" % (self.get("rc"), self.get("output", "")[-2500:])


def h2load(url, *args, timeout=120):
    proc = subprocess.run(["h2load", *args, url], capture_output=True, text=True,
                          timeout=timeout)
    out = H2loadResult(rc=proc.returncode, output=proc.stdout + proc.stderr)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", proc.stdout)
    if m:
        for key, value in zip(("total", "started", "done", "succeeded", "failed", "errored",
                               "timeout"), m.groups()):
            out[key] = int(value)
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", proc.stdout)
    if m:
        for key, value in zip(("2xx", "3xx", "4xx", "5xx"), m.groups()):
            out[key] = int(value)
    return out


def recv_until_closed(sock, timeout):
    """Reads until the peer closes (or resets) the connection. Returns (data, closed): closed is
    False when `timeout` s passed with the connection still open."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return data, False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            return data, True
        if not chunk:
            return data, True
        data += chunk


def xfcc(by_id, peer):
    """Envoy's X-Forwarded-Client-Cert for a peer Svid as sidecar `by_id` should write it."""
    return 'By=%s;Hash=%s;Subject="%s";URI=%s' % (by_id, peer.leaf_sha256(), peer.subject(),
                                                   peer.spiffe_id)


def rfc9440_client_cert(peer):
    return ":%s:" % base64.b64encode(peer.leaf_der()).decode()


# ---------------------------------------------------------------------------------------------
# Test base


class IntegrationTest(unittest.TestCase):
    """Per test: a directory, processes stopped in cleanup (even on failure), and waits that
    fail with every process's log. One PKI per test class (setUpClass)."""

    pki = None
    needs_proxy = True

    @classmethod
    def setUpClass(cls):
        if cls.needs_proxy and not os.access(PROXY, os.X_OK):
            raise unittest.SkipTest("palisade-proxy not built: %s" % PROXY)
        cls.class_dir = tempfile.mkdtemp(prefix="palisade-itest-%s-" % cls.__name__)
        cls.pki = Pki(os.path.join(cls.class_dir, "pki"))

    @classmethod
    def tearDownClass(cls):
        if not os.environ.get("PALISADE_ITEST_KEEP"):
            shutil.rmtree(cls.class_dir, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix=self._testMethodName + "-", dir=self.class_dir)
        self.procs = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        failed = self._failed()
        for proc in reversed(self.procs):
            proc.stop(timeout=5)
        if failed or os.environ.get("PALISADE_ITEST_VERBOSE"):
            sys.stderr.write("\n==== %s: logs (%s)\n%s\n" % (self.id(), self.dir, self.logs()))

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        for test, _ in list(result.failures) + list(result.errors):
            if test is self:
                return True
        return not getattr(outcome, "success", True)

    def start_process(self, name, args):
        proc = Process(name, args, self.dir)
        self.procs.append(proc)
        return proc

    def logs(self):
        return "\n".join(p.describe() for p in self.procs)

    def wait_for(self, predicate, timeout, what):
        value = wait_until(predicate, timeout)
        if not value:
            self.fail("timed out after %.1fs waiting for %s\n%s" % (timeout, what, self.logs()))
        return value

    def wait_for_log(self, proc, pattern, timeout, since=0):
        def check():
            line = proc.find_log(pattern, since)
            if line is None and not proc.alive():
                return "exited"
            return line
        line = wait_until(check, timeout)
        if line == "exited":
            self.fail("%s exited (%s) before logging /%s/\n%s" %
                      (proc.name, proc.popen.returncode, pattern, self.logs()))
        if not line:
            self.fail("timed out after %.1fs waiting for /%s/ in %s's log\n%s" %
                      (timeout, pattern, proc.name, self.logs()))
        return line

    def wait_for_port(self, port, timeout=10):
        def check():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False
        self.wait_for(check, timeout, "127.0.0.1:%d to accept" % port)

    def assertWithLogs(self, condition, message):
        if not condition:
            self.fail("%s\n%s" % (message, self.logs()))

    def assertNoLog(self, proc, pattern, since=0):
        line = proc.find_log(pattern, since)
        if line is not None:
            self.fail("%s logged /%s/: %s\n%s" % (proc.name, pattern, line, self.logs()))

    # --- the usual topology

    def mesh(self, app_port, protocol="HTTP", b_svid=None, a_svid=None, b_policies=None,
             service_protocol=None, explain_denials=True, client_cert_header=None,
             b_kwargs=None, with_a=True, sans=None):
        """app <- B (inbound, port 8000 -> app_port) <- mTLS <- A (outbound listener for
        SERVICE_HOST:8000). Returns (a, b); a is None without with_a."""
        b_svid = b_svid or self.pki.issue(ID_B)
        port = {"targetPort": app_port, "protocol": protocol}
        if client_cert_header:
            port["clientCertificateHeader"] = client_cert_header
        b = Sidecar(self, "b", b_svid, labels={"app": "httpbin"}, inbound_ports=[port],
                    policies=b_policies, explain_denials=explain_denials, **(b_kwargs or {}))
        if not with_a:
            return None, b
        a_svid = a_svid or self.pki.issue(ID_A)
        se = service_entry(SERVICE_HOST, b.inbound_port, sans or [ID_B],
                           protocol=service_protocol or protocol)
        a = Sidecar(self, "a", a_svid, labels={"app": "sleep"},
                    outbound=[(SERVICE_HOST, SERVICE_PORT)], services={"httpbin.yaml": se})
        return a, b


def main():
    unittest.main(verbosity=2)


# ---------------------------------------------------------------------------------------------
# Control plane (palisade-cp)

CP = _binary("PALISADE_CP", "palisade-cp")
CP_ID = "spiffe://cluster.local/ns/palisade-system/sa/palisade-cp"
CP_TLS_NAME = "palisade-cp.palisade-system.svc"  # a DNS SAN of its serving certificate


class ControlPlane:
    """A palisade-cp with its data directory (join tokens; the CA it makes in DATA/ca) in the
    test's directory, gRPC and /metrics /ready /healthz on free 127.0.0.1 ports. Started and
    stopped by PID with the test's other processes; kill() and start() again keep the data
    directory and the ports."""

    def __init__(self, test, name="cp", extra_args=(), start=True):
        self.test = test
        self.name = name
        self.data_dir = os.path.join(test.dir, name + "-data")
        self.grpc_port = free_port()
        self.monitoring_port = free_port()
        self.extra_args = list(extra_args)
        self.proc = None
        self.pid = None
        self.starts = 0
        if start:
            self.start()

    root = property(lambda self: os.path.join(self.data_dir, "ca", "root.crt"))
    address = property(lambda self: "127.0.0.1:%d" % self.grpc_port)

    def args(self):
        return [CP, "--data-dir", self.data_dir, "--grpc-addr", self.address,
                "--monitoring-addr", "127.0.0.1:%d" % self.monitoring_port,
                "--log-level", "debug", *self.extra_args]

    def start(self, timeout=20):
        """Starts palisade-cp and waits for 200 on /ready. The first start moves to fresh ports
        when one was taken meanwhile; a restart keeps its ports and retries while they are
        still taken. Logs: NAME.*, then NAME-r1.*, ..."""
        first = self.starts == 0
        deadline = time.monotonic() + timeout
        for attempt in range(50):
            name = self.name if self.starts == 0 else "%s-r%d" % (self.name, self.starts)
            self.starts += 1
            self.proc = self.test.start_process(name, self.args())
            self.pid = self.proc.pid

            def check():
                if not self.proc.alive():
                    return "exited"
                return self.ready_status() == 200 and "ready"
            state = wait_until(check, max(1.0, deadline - time.monotonic()))
            if state == "ready":
                return
            if state is None or "Address already in use" not in self.proc.stderr() or \
                    time.monotonic() >= deadline:
                self.test.fail("%s did not become ready (%s)\n%s" %
                               (name, state or "timed out", self.test.logs()))
            if first:
                self.test.procs.remove(self.proc)
                self.grpc_port = free_port()
                self.monitoring_port = free_port()
            else:
                time.sleep(0.2)
        self.test.fail("%s: ports stayed taken\n%s" % (self.name, self.test.logs()))

    def kill(self):
        """SIGKILL: no goodbye to the sidecars."""
        self.proc.signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        return self.proc.stop()

    def token(self, spiffe_id, ttl="1h", uses=None):
        """A join token bound to spiffe_id (palisadectl token create on this data directory)."""
        args = ["token", "create", "--spiffe-id", spiffe_id, "--ttl", ttl, "--data-dir",
                self.data_dir]
        if uses is not None:
            args += ["--uses", str(uses)]
        return run_ctl(*args).strip()

    def _http(self, path, timeout=5):
        conn = http.client.HTTPConnection("127.0.0.1", self.monitoring_port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def ready_status(self):
        try:
            return self._http("/ready")[0]
        except OSError:
            return None

    def metrics(self):
        status, body = self._http("/metrics")
        self.test.assertEqual(status, 200, body)
        return body

    def metric(self, name, **labels):
        return metric_value(self.metrics(), name, **labels)

    def sidecar(self, name, token, *, certificate_ttl=None, control_plane=None, **kwargs):
        """A Sidecar whose SVID comes from this control plane with a join token (no
        certificate files): trusts DATA/ca/root.crt at first contact. control_plane: more
        fields of the controlPlane section (renewFraction, retryInitial, ...)."""
        section = {"address": self.address, "joinToken": token}
        if certificate_ttl:
            section["certificateTtl"] = certificate_ttl
        section.update(control_plane or {})
        return Sidecar(self.test, name, None, trust_bundles=[(self.root, None)],
                       control_plane=section, **kwargs)
