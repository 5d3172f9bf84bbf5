"""HTTP/1.1 echo app for the integration tests (plaintext, 127.0.0.1).

Every request is answered with JSON {"method", "path", "headers": [[name, value], ...],
"body_len"} and appended, as one JSON line, to --log so a test can tell whether the app ever
saw a request. Endpoints besides the echo:
  /big?mb=N       streams N MiB (Content-Length set); progress goes to the log as
                  {"big_sent": bytes} lines every MiB
  /slow?ms=N      answers after N milliseconds
  /chunked?n=N    answers N chunks of "chunk-<i>\n" with Transfer-Encoding: chunked
  /status?code=N  answers status N (204 and 304 without a body)
Prints "READY <port>" on stdout once listening (--port 0 picks a free port).
"""

import argparse
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_log_lock = threading.Lock()
_log_file = None


def log(record):
    with _log_lock:
        _log_file.write(json.dumps(record) + "\n")
        _log_file.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "itest-http-app"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls

    def log_message(self, fmt, *args):  # quiet: the JSON log is the record
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        record = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_len": len(body),
        }
        log(record)
        if url.path == "/big":
            self._big(float(query.get("mb", ["1"])[0]))
            return
        if url.path == "/chunked":
            self._chunked(int(query.get("n", ["5"])[0]))
            return
        if url.path == "/status":
            code = int(query.get("code", ["200"])[0])
            self.send_response(code)
            if code not in (204, 304):
                self.send_header("Content-Length", "2")
            self.end_headers()
            if code not in (204, 304) and self.command != "HEAD":
                self.wfile.write(b"ok")
            return
        if url.path == "/slow":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000.0)
        payload = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _chunked(self, n):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(n):
            data = b"chunk-%d\n" % i
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(0.01)
        self.wfile.write(b"0\r\n\r\n")

    def _big(self, mb):
        total = int(mb * 1024 * 1024)
        chunk = b"x" * 65536
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(total))
        self.end_headers()
        sent = 0
        next_report = 1024 * 1024
        try:
            while sent < total:
                n = min(len(chunk), total - sent)
                self.wfile.write(chunk[:n])
                sent += n
                if sent >= next_report:
                    log({"big_sent": sent})
                    next_report += 1024 * 1024
        except OSError:
            log({"big_aborted": sent})
            return
        log({"big_done": sent})

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_PATCH = _handle
    do_HEAD = _handle
    do_OPTIONS = _handle


def main():
    global _log_file
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True)
    parser.add_argument("--backlog", type=int, default=1024,
                        help="listen backlog (Python's default, 5, drops SYNs under load)")
    args = parser.parse_args()
    _log_file = open(args.log, "a", encoding="utf-8")
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = args.backlog
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("READY", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
