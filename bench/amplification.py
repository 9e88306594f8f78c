#!/usr/bin/env python3
"""Amplification of sipsteer's replies: DNS bytes out / DNS bytes in.

usage:
  amplification.py PLAIN_PORT RRL_PORT    per query type (the first table in bench/README.md)
  amplification.py spread LABEL=PORT...   a spoofed flood spread over every name/type pair
  amplification.py cookie LABEL=PORT...   a spoofed flood of client-cookie queries at one name

Every server listens on 127.0.0.1 and serves the sample zone (zones/example.com.yaml).
Bytes are DNS messages (UDP payloads, no IP/UDP headers). With DO=1 in the environment every
query sets the DNSSEC OK bit and the per-type table gains a DNSKEY row (for a signed zone).

Per query type: PLAIN_PORT has dns.udp_payload 4096; RRL_PORT the same with dns.rrl
(responses_per_second 5, slip 2). "under RRL" sends a burst of BURST identical queries from
one socket (a spoofed flood aimed at one victim) and divides all bytes received within a
second by all bytes sent. Prints a Markdown table.

spread: the victim (one source address, so one client prefix) is flooded round-robin over
every name/type pair of the sample zone with a positive answer (found first over TCP),
two ways: a burst of PER_PAIR queries per pair, sent as fast as the client can
(each name's RRL bucket lets a burst of responses_per_second through at once), and a
sustained flood at RATE queries per second for SECONDS. cookie: the same two ways with
`A sip.example.com` queries that carry a client cookie (a spoofer can send one; it cannot
send a valid server cookie). Each flood comes from its own /24 of 127.0.0.0/8, so floods do
not share buckets. Prints one Markdown row per server and flood: replies by kind, bytes and
the ratio out/in.
"""
import os
import socket
import struct
import sys
import time

BURST = 100
PER_PAIR = 100
RATE = 5000
SECONDS = 3
CHUNK = 64
CLIENT_COOKIE = b"\x01\x02\x03\x04\x05\x06\x07\x08"
QUERIES = [
    ("A sip.example.com (steered)", "sip.example.com", 1),
    ("NAPTR sip.example.com (+SRV, A/AAAA additional)", "sip.example.com", 35),
    ("SRV _sip._udp.sip.example.com (+A/AAAA)", "_sip._udp.sip.example.com", 33),
    ("ANY sip.example.com (RFC 8482)", "sip.example.com", 255),
    ("A nope.example.com (NXDOMAIN + SOA)", "nope.example.com", 1),
]
DO = os.environ.get("DO") == "1"
if DO:
    QUERIES += [
        ("A static.example.com (a static set)", "static.example.com", 1),
        ("DNSKEY example.com", "example.com", 48),
    ]

# Names of the sample zone: static records, the service, its regions and servers.
REGIONS = {
    "uk": ["lon1", "lon2", "lon3"],
    "de": ["fra1", "fra2"],
    "ams": ["ams1"],
    "us-east": ["iad1", "iad2"],
    "us-west": ["sjc1"],
    "sg": ["sin1"],
}
TYPES = [1, 28, 35, 33, 15, 16, 257, 2, 6, 5]  # A AAAA NAPTR SRV MX TXT CAA NS SOA CNAME


def candidate_names():
    names = ["example.com"] + [
        f"{n}.example.com" for n in ["ns1", "ns2", "mail", "www", "web", "static", "_sip._udp"]
    ]
    svc = "sip.example.com"
    names += [svc, f"_sip._udp.{svc}", f"_sip._tcp.{svc}", f"_sips._tcp.{svc}"]
    for region, servers in REGIONS.items():
        r = f"{region}.{svc}"
        names += [r, f"_sip._udp.{r}", f"_sip._tcp.{r}"]
        names += [f"{s}.{r}" for s in servers]
    return names


def query(qid, name, qtype, payload=1232, cookie=False):
    header = struct.pack("!HHHHHH", qid & 0xFFFF, 0x0100, 1, 0, 0, 1)
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\x00"
    options = b""
    if cookie:
        options = struct.pack("!HH", 10, len(CLIENT_COOKIE)) + CLIENT_COOKIE
    opt = b"\x00" + struct.pack("!HHIH", 41, payload, 0x8000 if DO else 0, len(options)) + options
    return header + wire + struct.pack("!HH", qtype, 1) + opt


def kind(reply):
    """full, tc, badcookie or other, from the header (BADCOOKIE is 23: 7 in the header)."""
    tc = reply[2] & 0x02
    rcode = reply[3] & 0x0F
    answers = struct.unpack("!H", reply[6:8])[0]
    if tc:
        return "tc"
    if rcode == 7 and answers == 0:
        return "badcookie"
    if answers > 0:
        return "full"
    return "other"


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


def per_type_table(plain, limited):
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


def positive_pairs(port):
    """Every (name, type) of the zone answered with records, asked over TCP (never limited)."""
    pairs = []
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
        for name in candidate_names():
            for qtype in TYPES:
                q = query(1, name, qtype)
                s.sendall(struct.pack("!H", len(q)) + q)
                n = struct.unpack("!H", recv_exact(s, 2))[0]
                r = recv_exact(s, n)
                if kind(r) == "full" and r[3] & 0x0F == 0:
                    pairs.append((name, qtype))
    return pairs


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


class Flood:
    """One spoofed victim: sends from one address, gathers every reply and its bytes."""

    def __init__(self, port, source):
        self.addr = ("127.0.0.1", port)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.s.bind((source, 0))
        self.s.setblocking(False)
        self.sent = self.bytes_in = self.bytes_out = 0
        self.kinds = {"full": 0, "tc": 0, "badcookie": 0, "other": 0}

    def send(self, packet):
        self.s.sendto(packet, self.addr)
        self.sent += 1
        self.bytes_in += len(packet)

    def drain(self):
        while True:
            try:
                r = self.s.recv(65535)
            except BlockingIOError:
                return
            self.bytes_out += len(r)
            self.kinds[kind(r)] += 1

    def finish(self, quiet=1.0):
        """Gathers replies until none has come for `quiet` seconds."""
        self.s.setblocking(True)
        self.s.settimeout(quiet)
        while True:
            try:
                r = self.s.recv(65535)
            except socket.timeout:
                break
            self.bytes_out += len(r)
            self.kinds[kind(r)] += 1
        self.s.close()

    def burst(self, packets):
        started = time.monotonic()
        for i, p in enumerate(packets):
            self.send(p)
            if i % CHUNK == CHUNK - 1:
                self.drain()
        elapsed = time.monotonic() - started
        self.finish()
        return elapsed

    def sustained(self, make, rate, seconds):
        started = time.monotonic()
        n = 0
        while True:
            now = time.monotonic() - started
            if now >= seconds:
                break
            due = int(now * rate)
            while n < due:
                self.send(make(n))
                n += 1
            self.drain()
            time.sleep(0.002)
        elapsed = time.monotonic() - started
        self.finish()
        return elapsed

    def row(self, label, flood, elapsed):
        k = self.kinds
        dropped = self.sent - sum(k.values())
        r = self.bytes_out / self.bytes_in if self.bytes_in else 0.0
        print(
            f"| {label} | {flood} | {self.sent} in {elapsed:.2f} s | {k['full']} | {k['tc']} | "
            f"{k['badcookie']} | {dropped} | {self.bytes_in} | {self.bytes_out} | **{r:.2f}×** |"
        )


def header():
    print(
        "| server | flood | queries | full | TC | BADCOOKIE | no reply | bytes in | bytes out | out/in |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def servers(args):
    out = []
    for a in args:
        label, port = a.rsplit("=", 1)
        out.append((label, int(port)))
    return out


def spread(args):
    targets = servers(args)
    pairs = positive_pairs(targets[0][1])
    print(f"{len(pairs)} name/type pairs with a positive answer\n")
    header()
    source = 10
    for label, port in targets:
        burst = [
            query(i, *pairs[i % len(pairs)]) for i in range(PER_PAIR * len(pairs))
        ]
        f = Flood(port, f"127.0.{source}.1")
        elapsed = f.burst(burst)
        f.row(label, f"burst, {PER_PAIR} per pair", elapsed)
        f = Flood(port, f"127.0.{source + 1}.1")
        elapsed = f.sustained(lambda n: query(n, *pairs[n % len(pairs)]), RATE, SECONDS)
        f.row(label, f"{RATE}/s for {SECONDS} s", elapsed)
        source += 2


def cookie(args):
    header()
    source = 100
    for label, port in servers(args):
        f = Flood(port, f"127.0.{source}.1")
        elapsed = f.burst([query(i, "sip.example.com", 1, cookie=True) for i in range(BURST)])
        f.row(label, f"burst of {BURST}", elapsed)
        f = Flood(port, f"127.0.{source + 1}.1")
        elapsed = f.sustained(
            lambda n: query(n, "sip.example.com", 1, cookie=True), RATE // 5, SECONDS
        )
        f.row(label, f"{RATE // 5}/s for {SECONDS} s", elapsed)
        source += 2


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "spread":
        spread(sys.argv[2:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "cookie":
        cookie(sys.argv[2:])
    else:
        per_type_table(int(sys.argv[1]), int(sys.argv[2]))


if __name__ == "__main__":
    main()
