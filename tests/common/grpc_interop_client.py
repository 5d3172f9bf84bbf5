"""A python3-grpcio client for tests/common/grpc_interop_test.cc: calls our gRPC Server (its
test service, palisade.test.Echo, plaintext h2c on 127.0.0.1:PORT) with grpcio's generic
multi-callables and prints one JSON object with what each call returned, for the C++ test to
assert on. Bytes in and out, no protoc. Usage: grpc_interop_client.py PORT
"""

import json
import sys

import grpc

SVC = "/palisade.test.Echo/"


def ident(b):
    return b


def error_of(e):
    return {"code": e.code().name, "details": e.details()}


def main():
    port = int(sys.argv[1])
    out = {}
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        grpc.channel_ready_future(channel).result(timeout=5)

        def unary(name):
            return channel.unary_unary(SVC + name, request_serializer=ident,
                                       response_deserializer=ident)

        # Unary, with metadata and a deadline.
        response, call = unary("Whoami").with_call(
            b"hello", metadata=[("x-interop", "grpcio")], timeout=5)
        out["whoami"] = {"response": response.decode(), "code": call.code().name}

        out["echo"] = unary("Echo")(b"ping", timeout=5).decode()
        out["empty"] = len(unary("Echo")(b"", timeout=5))
        big = bytes(i % 251 for i in range(1 << 20))
        out["big_ok"] = unary("Echo")(big, timeout=10) == big

        # Errors.
        for name in ["Fail", "NoSuchMethod"]:
            try:
                unary(name)(b"x", timeout=5)
                out[name] = {"code": "OK"}
            except grpc.RpcError as e:
                out[name] = error_of(e)
        try:
            unary("Echo")(b"x" * (4 * 1024 * 1024 + 1), timeout=5)
            out["too_big"] = {"code": "OK"}
        except grpc.RpcError as e:
            out["too_big"] = error_of(e)
        try:
            unary("Never")(b"x", timeout=0.2)
            out["deadline"] = {"code": "OK"}
        except grpc.RpcError as e:
            out["deadline"] = error_of(e)

        # Server streaming.
        stream = channel.unary_stream(SVC + "Count", request_serializer=ident,
                                      response_deserializer=ident)
        out["count"] = [m.decode() for m in stream(b"50", timeout=5)]

        # Bidirectional streaming: 20 messages, each answered.
        chat = channel.stream_stream(SVC + "Chat", request_serializer=ident,
                                     response_deserializer=ident)
        call = chat(iter([str(i).encode() for i in range(20)]), timeout=5)
        out["chat"] = [m.decode() for m in call]
        out["chat_status"] = {"code": call.code().name, "details": call.details()}

        # Client streaming.
        sum_ = channel.stream_unary(SVC + "Sum", request_serializer=ident,
                                    response_deserializer=ident)
        out["sum"] = sum_(iter([b"a" * i for i in range(10)]), timeout=5).decode()

        # A call the server saw after the others: they all shared one connection.
        out["after"] = unary("Echo")(b"last", timeout=5).decode()
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
