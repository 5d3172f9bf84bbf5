"""Opaque TCP echo app for the integration tests (127.0.0.1).

Echoes every byte back. Each accepted connection and each chunk received is appended as a JSON
line to --log so a test can tell whether a connection ever reached the app. With --banner TEXT
the app speaks first (a server-first protocol) and sends TEXT on accept.
Prints "READY <port>" on stdout once listening.
"""

import argparse
import json
import socket
import sys
import threading

_lock = threading.Lock()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True)
    parser.add_argument("--banner", default="")
    args = parser.parse_args()
    log_file = open(args.log, "a", encoding="utf-8")

    def log(record):
        with _lock:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()

    def serve(conn, peer):
        log({"accepted": "%s:%d" % peer})
        try:
            if args.banner:
                conn.sendall(args.banner.encode())
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                log({"received": len(data)})
                conn.sendall(data)
        except OSError:
            pass
        finally:
            log({"closed": "%s:%d" % peer})
            conn.close()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(128)
    print("READY", listener.getsockname()[1], flush=True)
    while True:
        conn, peer = listener.accept()
        threading.Thread(target=serve, args=(conn, peer), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
