#!/usr/bin/python3
"""Memory per idle mTLS connection at a palisade-proxy inbound listener.

Opens N mutual-TLS connections (HTTP/1.1 ALPN, one request each so the HTTP session and its
app connection exist, then idle) and reports the proxy's RSS growth per connection:

  bench/load/idle_connections.py --pid PID --port 15006 --cert chain.pem --key key.pem [-n 1000]

Bounded: N connections, a 60 s overall limit; everything on 127.0.0.1.
"""
import argparse
import socket
import ssl
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--request", action="store_true", help="send one GET on each connection")
    a = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(["http/1.1"])
    deadline = time.time() + 60
    before = rss_kib(a.pid)
    conns = []
    for _ in range(a.n):
        if time.time() > deadline:
            break
        s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        t = ctx.wrap_socket(s)
        if a.request:
            t.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            t.recv(65536)
        conns.append(t)
    time.sleep(1)
    after = rss_kib(a.pid)
    n = len(conns)
    print(f"connections {n} rss_before_kib {before} rss_after_kib {after} "
          f"per_connection_bytes {int((after - before) * 1024 / max(n, 1))}")
    for c in conns:
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
