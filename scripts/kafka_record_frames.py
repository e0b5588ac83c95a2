#!/usr/bin/env python3
"""Record raw Kafka responses from a broker into tests/fixtures/kafka/*.bin (response bodies
after the response header), for the unit tests of agent/collect/kafka/conn.rs.

usage: kafka_record_frames.py [BOOTSTRAP] [OUTDIR]   (default: $VIGIL_TEST_KAFKA_BROKERS,
tests/fixtures/kafka). Plain sockets only, no client library: the frames are what the broker
sends to any client.
"""
import os
import socket
import struct
import sys


def request(sock, api_key, version, corr, body):
    client = b"vigil-record"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client + b"\x00"  # header v2
    frame = header + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", recv(sock, 4))[0]
    data = recv(sock, size)
    assert struct.unpack(">i", data[:4])[0] == corr, "correlation id mismatch"
    return data


def recv(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise SystemExit("broker closed the connection")
        out += chunk
    return out


def main():
    bootstrap = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("VIGIL_TEST_KAFKA_BROKERS", "127.0.0.1:59092")
    outdir = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/kafka"
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    # ApiVersions v3: compact strings client_software_name/version, no tagged fields
    body = b"\x06vigil" + b"\x060.1.0" + b"\x00"
    data = request(sock, 18, 3, 1, body)
    # ApiVersions responses always use header v0 (correlation id only)
    with open(os.path.join(outdir, "tansu-0.6.0-api-versions-v3.bin"), "wb") as f:
        f.write(data[4:])
    # Metadata v12: topics null, allow_auto_topic_creation false, include_topic_authorized_operations false
    data = request(sock, 3, 12, 2, b"\x00\x00\x00\x00")
    assert data[4] == 0, "unexpected tagged fields in the response header"
    with open(os.path.join(outdir, "tansu-0.6.0-metadata-v12.bin"), "wb") as f:
        f.write(data[5:])
    print(f"recorded ApiVersions v3 and Metadata v12 from {bootstrap} into {outdir}")


if __name__ == "__main__":
    main()
