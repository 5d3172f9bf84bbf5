"""gRPC app for the integration tests: python3-grpcio, generic handlers, bytes in and out (no
protoc). Service palisade.test.Echo, unary methods Echo and Admin: each answers JSON
{"method", "request" (the request bytes as text), "metadata": {key: value}} so a test reads the
x-forwarded-client-cert the app received. Every call is appended as a JSON line to --log.
More methods of the same service:
  Slow    unary; the request is a number of milliseconds to wait before answering as Echo
  Stream  server streaming; the request is a count N: N replies, each the JSON record with
          "index": i
  Chat    bidirectional streaming: each request message answered at once by the JSON record
          with "request" set to it and "index" its position
Each call (not each message) is logged once, when it starts.
Plaintext HTTP/2 (h2c) on 127.0.0.1; prints "READY <port>" on stdout once listening.
"""

import argparse
import json
import sys
import threading
import time
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

    def record_of(method, request, context):
        metadata = {}
        for item in context.invocation_metadata():
            metadata.setdefault(item.key, item.value)
        record = {"method": method, "request": request.decode("utf-8", "replace"),
                  "metadata": metadata}
        with _lock:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        return record

    def slow(request, context):
        record = record_of("Slow", request, context)
        time.sleep(int(request or b"1000") / 1000.0)
        return json.dumps(record).encode()

    def stream(request, context):
        record = record_of("Stream", request, context)
        for i in range(int(request or b"10")):
            yield json.dumps(dict(record, index=i)).encode()

    def chat(request_iterator, context):
        record = None
        for i, message in enumerate(request_iterator):
            if record is None:
                record = record_of("Chat", b"", context)
            yield json.dumps(dict(record, request=message.decode("utf-8", "replace"),
                                  index=i)).encode()

    service = grpc.method_handlers_generic_handler(
        "palisade.test.Echo", {"Echo": make("Echo"), "Admin": make("Admin"),
                               "Slow": grpc.unary_unary_rpc_method_handler(slow),
                               "Stream": grpc.unary_stream_rpc_method_handler(stream),
                               "Chat": grpc.stream_stream_rpc_method_handler(chat)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((service,))
    port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    server.start()
    print("READY", port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
