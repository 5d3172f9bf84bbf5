"""gRPC app for the integration tests: python3-grpcio, generic handlers, bytes in and out (no
protoc). Service palisade.test.Echo, unary methods Echo and Admin: each answers JSON
{"method", "request" (the request bytes as text), "metadata": {key: value}} so a test reads the
x-forwarded-client-cert the app received. Every call is appended as a JSON line to --log.
Plaintext HTTP/2 (h2c) on 127.0.0.1; prints "READY <port>" on stdout once listening.
"""

import argparse
import json
import sys
import threading
from concurrent import futures

import grpc

_lock = threading.Lock()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    log_file = open(args.log, "a", encoding="utf-8")

    def make(method):
        def handler(request, context):
            metadata = {}
            for item in context.invocation_metadata():
                metadata.setdefault(item.key, item.value)
            record = {
                "method": method,
                "request": request.decode("utf-8", "replace"),
                "metadata": metadata,
            }
            with _lock:
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
            return json.dumps(record).encode()

        return grpc.unary_unary_rpc_method_handler(handler)

    service = grpc.method_handlers_generic_handler(
        "palisade.test.Echo", {"Echo": make("Echo"), "Admin": make("Admin")})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((service,))
    port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    server.start()
    print("READY", port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
