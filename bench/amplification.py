#!/usr/bin/env python3
"""Amplification of sipsteer's replies: DNS bytes out / DNS bytes in per query type.

usage: amplification.py PLAIN_PORT RRL_PORT

PLAIN_PORT serves the sample zone (zones/example.com.yaml) with dns.udp_payload 4096;
RRL_PORT the same with dns.rrl (responses_per_second 5, slip 2). Both on 127.0.0.1.
Bytes are DNS messages (UDP payloads, no IP/UDP headers). "under RRL" sends a burst of
BURST identical queries from one socket (a spoofed flood aimed at one victim) and divides all
bytes received within a second by all bytes sent. Prints a Markdown table.
"""
import socket
import struct
import sys

BURST = 100
CLIENT_COOKIE = b"\x01\x02\x03\x04\x05\x06\x07\x08"
QUERIES = [
    ("A sip.example.com (steered)", "sip.example.com", 1),
    ("NAPTR sip.example.com (+SRV, A/AAAA additional)", "sip.example.com", 35),
    ("SRV _sip._udp.sip.example.com (+A/AAAA)", "_sip._udp.sip.example.com", 33),
    ("ANY sip.example.com (RFC 8482)", "sip.example.com", 255),
    ("A nope.example.com (NXDOMAIN + SOA)", "nope.example.com", 1),
]


def query(qid, name, qtype, payload, cookie):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\x00"
    options = b""
    if cookie:
        options = struct.pack("!HH", 10, len(CLIENT_COOKIE)) + CLIENT_COOKIE
    opt = b"\x00" + struct.pack("!HHIH", 41, payload, 0, len(options)) + options
    return header + wire + struct.pack("!HH", qtype, 1) + opt


def exchange(port, packets, wait=1.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(wait)
    for p in packets:
        s.sendto(p, ("127.0.0.1", port))
    got = []
    while len(got) < len(packets):
        try:
            got.append(s.recv(65535))
        except socket.timeout:
            break
    s.close()
    return got


def ratio(port, name, qtype, payload, cookie, burst=1):
    packets = [query(i + 1, name, qtype, payload, cookie) for i in range(burst)]
    replies = exchange(port, packets)
    sent = sum(len(p) for p in packets)
    back = sum(len(r) for r in replies)
    tc = sum(1 for r in replies if r[2] & 0x02)
    return sent, back, len(replies), tc


def main():
    plain, limited = int(sys.argv[1]), int(sys.argv[2])
    cols = [
        ("EDNS 1232", plain, 1232, False, 1),
        ("EDNS 1232 + cookie", plain, 1232, True, 1),
        ("EDNS 4096", plain, 4096, False, 1),
        ("EDNS 4096 + cookie", plain, 4096, True, 1),
        (f"EDNS 4096, RRL, burst of {BURST}", limited, 4096, False, BURST),
    ]
    print("| query | " + " | ".join(c[0] for c in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for label, name, qtype in QUERIES:
        cells = []
        for _, port, payload, cookie, burst in cols:
            sent, back, n, tc = ratio(port, name, qtype, payload, cookie, burst)
            if burst == 1:
                cells.append(f"{back}/{sent} B = {back / sent:.1f}×")
            else:
                cells.append(f"{back / sent:.2f}× ({n - tc} full, {tc} TC of {burst})")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
