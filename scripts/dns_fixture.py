#!/usr/bin/env python3
"""A tiny authoritative DNS server for the image smoke test (scripts/image.sh smoke).

    dns_fixture.py ADDRESS LOG NAME=IPV4 [NAME=IPV4 ...]

Answers UDP (and TCP) queries on ADDRESS:53: an A query for a listed NAME gets IPV4, an AAAA
query for a listed NAME gets an empty answer (NOERROR, no records), any other name gets
NXDOMAIN. Every question is appended to LOG as "TYPE name" so the caller can check which names
the resolver under test asked for (search-domain expansion, ndots). Standard library only: the
smoke test must run on a machine with nothing but python3.
"""

import socket
import struct
import sys
import threading

TYPES = {1: "A", 28: "AAAA", 5: "CNAME", 33: "SRV", 16: "TXT"}


def parse_question(msg):
    """(id, flags, qname, qtype, qclass, end offset) of the first question."""
    ident, flags, qdcount = struct.unpack("!HHH", msg[:6])
    if qdcount < 1:
        raise ValueError("no question")
    labels, i = [], 12
    while True:
        n = msg[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(msg[i + 1 : i + 1 + n].decode("ascii").lower())
        i += 1 + n
    qtype, qclass = struct.unpack("!HH", msg[i : i + 4])
    return ident, flags, ".".join(labels), qtype, qclass, i + 4


def answer(msg, table, log):
    ident, flags, name, qtype, qclass, end = parse_question(msg)
    with open(log, "a") as f:
        f.write(f"{TYPES.get(qtype, qtype)} {name}\n")
    rd = flags & 0x0100
    question = msg[12:end]
    records = b""
    if name in table:
        rcode, ancount = 0, 0
        if qtype == 1:
            # Name as a pointer to the question (offset 12), TTL 5 s, 4-byte address.
            records = struct.pack("!HHHIH", 0xC00C, 1, qclass, 5, 4) + socket.inet_aton(table[name])
            ancount = 1
    else:
        rcode, ancount = 3, 0  # NXDOMAIN
    # QR=1, AA=1, RD copied, RA=1.
    out_flags = 0x8000 | 0x0400 | rd | 0x0080 | rcode
    header = struct.pack("!HHHHHH", ident, out_flags, 1, ancount, 0, 0)
    return header + question + records


def serve_udp(sock, table, log):
    while True:
        msg, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(msg, table, log), peer)
        except (ValueError, IndexError, struct.error) as e:
            print(f"dns_fixture: bad query from {peer}: {e}", file=sys.stderr)


def serve_tcp(sock, table, log):
    while True:
        conn, _ = sock.accept()
        with conn:
            try:
                (n,) = struct.unpack("!H", conn.recv(2))
                msg = b""
                while len(msg) < n:
                    chunk = conn.recv(n - len(msg))
                    if not chunk:
                        break
                    msg += chunk
                reply = answer(msg, table, log)
                conn.sendall(struct.pack("!H", len(reply)) + reply)
            except (ValueError, IndexError, struct.error, OSError) as e:
                print(f"dns_fixture: bad TCP query: {e}", file=sys.stderr)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    address, log = sys.argv[1], sys.argv[2]
    table = {}
    for pair in sys.argv[3:]:
        name, _, ip = pair.partition("=")
        table[name.lower().rstrip(".")] = ip
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, 53))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, 53))
    tcp.listen(16)
    threading.Thread(target=serve_tcp, args=(tcp, table, log), daemon=True).start()
    print(f"dns_fixture: serving {len(table)} names on {address}:53", flush=True)
    serve_udp(udp, table, log)


if __name__ == "__main__":
    main()
