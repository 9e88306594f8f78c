#!/usr/bin/env python3
"""Warm-up answers with the GeoLite2-City database: what `sip.example.com A` answers a London
/24 (ECS 81.2.69.0/24) from the start of `serve` until the GeoIP map is in, once per
`geoip.warmup.answer` (fallback, servfail).

usage: bench/warmup.py [BINARY]      (default target/release/sipsteer)

Needs bench/data/GeoLite2-City.mmdb (see README.md), or GEOIP=path. Serves the benchmark
zone on 127.0.0.1:DNS_PORT (25392). Asks every 20 ms and prints each change of the answer
(rcode, TTL, ECS scope, addresses) with the time since exec, then the time to `ready`.
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "target/release/sipsteer")
GEOIP = os.environ.get("GEOIP", os.path.join(HERE, "data/GeoLite2-City.mmdb"))
PORT = int(os.environ.get("DNS_PORT", "25392"))
RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def query():
    ecs = struct.pack("!HBB", 1, 24, 0) + bytes([81, 2, 69])
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 4 + len(ecs))
    opt += struct.pack("!HH", 8, len(ecs)) + ecs
    name = b"\x03sip\x07example\x03com\x00"
    return struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 1) + name + struct.pack("!HH", 1, 1) + opt


def skip_name(b, i):
    while b[i] != 0:
        if b[i] & 0xC0 == 0xC0:
            return i + 2
        i += b[i] + 1
    return i + 1


def describe(b):
    """rcode, then TTL and address of each answer, then the ECS scope."""
    rcode = RCODES.get(b[3] & 0xF, str(b[3] & 0xF))
    qd, an, ns, ar = struct.unpack("!HHHH", b[4:12])
    i = 12
    for _ in range(qd):
        i = skip_name(b, i) + 4
    answers, scope = [], None
    for k in range(an + ns + ar):
        i = skip_name(b, i)
        rtype, _, ttl, rdlen = struct.unpack("!HHIH", b[i : i + 10])
        rdata = b[i + 10 : i + 10 + rdlen]
        i += 10 + rdlen
        if k < an and rtype == 1:
            answers.append(f"{socket.inet_ntoa(rdata)} ttl {ttl}")
        if rtype == 41 and len(rdata) >= 8 and rdata[:2] == b"\x00\x08":
            scope = rdata[7]
    return f"{rcode} {', '.join(answers) or '-'} scope {scope}"


def run(answer):
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "sipsteer.yaml")
        with open(cfg, "w") as f:
            f.write(
                f'listen: {{ dns: ["127.0.0.1:{PORT}"], admin: "off" }}\n'
                f"zones: {HERE}/zones/\n"
                f"geoip: {{ database: {GEOIP}, warmup: {{ answer: {answer} }} }}\n"
                "health: { check: none }\ndns: { udp_workers: 1 }\n"
            )
        log = open(os.path.join(d, "log"), "w+")
        t0 = time.monotonic()
        p = subprocess.Popen([BIN, "serve", "--config", cfg], stderr=log, stdout=log)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.02)
        print(f"== geoip.warmup.answer: {answer}")
        last, ready = None, None
        try:
            while time.monotonic() - t0 < 90:
                s.sendto(query(), ("127.0.0.1", PORT))
                try:
                    now = describe(s.recv(4096))
                except (socket.timeout, ConnectionRefusedError):
                    now = "no answer within 20 ms"
                if now != last:
                    print(f"{time.monotonic() - t0:6.2f} s  {now}")
                    last = now
                log.seek(0)
                if ready is None and " ready " in log.read():
                    ready = time.monotonic() - t0
                    print(f"{ready:6.2f} s  ready logged")
                if ready is not None and time.monotonic() - t0 > ready + 1:
                    break
                time.sleep(0.02)
        finally:
            p.terminate()
            p.wait()


for mode in ("fallback", "servfail"):
    run(mode)
