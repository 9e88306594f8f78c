#!/usr/bin/env python3
"""Time from a SIP server going silent to a fresh resolution getting the next region.

Runs TRIALS independent pairs at once: service tN steers to region pN (a SIP responder on
127.0.0.2) and fails over to bN (127.0.0.3). Each pair has its own probe task with its own
random phase, so the pairs are independent trials. After warm-up every pN goes silent at
the same moment; each tN.example.com A is then asked every 20 ms until it answers 127.0.0.3.
Usage: failover_time.py SIPSTEER_BINARY TRIALS BASE_PORT WORKDIR
"""
import asyncio
import os
import random
import statistics
import struct
import subprocess
import sys
import time
import urllib.request

DNS_PORT, ADMIN_PORT = 5320, 8070
HEADERS = ("via:", "v:", "from:", "f:", "to:", "t:", "call-id:", "i:", "cseq:")


def reply(req: bytes) -> bytes:
    out = ["SIP/2.0 200 OK"]
    for line in req.decode("utf-8", "replace").split("\r\n")[1:]:
        if line.lower().startswith(HEADERS):
            out.append(line + (";tag=r1" if line.lower().startswith(("to:", "t:")) else ""))
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode()


class Sip(asyncio.DatagramProtocol):
    def __init__(self):
        self.silent = False

    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, data, addr):
        if not self.silent and data.startswith(b"OPTIONS "):
            self.t.sendto(reply(data), addr)


def config(work: str, trials: int, base: int):
    os.makedirs(f"{work}/zones", exist_ok=True)
    with open(f"{work}/sipsteer.yaml", "w") as f:
        f.write(f'listen: {{ dns: ["127.0.0.1:{DNS_PORT}"], admin: "127.0.0.1:{ADMIN_PORT}" }}\n'
                "zones: zones\nhealth: { check: sip-options-udp }\n")
    z = ["zone: example.com", "soa: { primary: ns1, contact: hostmaster, serial: 1 }",
         "ns: [ns1]", "records:", "  ns1: { A: 192.0.2.53 }", "regions:"]
    for n in range(trials):
        for r, ip in (("p", "127.0.0.2"), ("b", "127.0.0.3")):
            z += [f"  {r}{n}:", f"    location: [{n}, {1 if r == 'b' else 0}]", "    servers:",
                  f"      s: {{ address: {ip}, port: {base + n} }}"]
    z.append("services:")
    for n in range(trials):
        z.append(f"  t{n}: {{ regions: [p{n}, b{n}], fallback: [p{n}, b{n}], failover: 1 }}")
    with open(f"{work}/zones/example.com.yaml", "w") as f:
        f.write("\n".join(z) + "\n")


def query(n: int) -> bytes:
    q = struct.pack(">HHHHHH", random.randrange(65536), 0, 1, 0, 0, 0)
    for label in (f"t{n}", "example", "com"):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def first_a(msg: bytes):
    """The first A record's address in a reply, or None."""
    if len(msg) < 12:
        return None
    an = struct.unpack(">H", msg[6:8])[0]
    i = 12
    while i < len(msg) and msg[i]:
        i += msg[i] + 1
    i += 5
    for _ in range(an):
        i += 2 if msg[i] & 0xC0 == 0xC0 else len(msg)  # answers use a pointer to the qname
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            return ".".join(str(b) for b in msg[i:i + 4])
        i += rdlen
    return None


class Dns(asyncio.DatagramProtocol):
    def __init__(self):
        self.answers = {}
        self.armed = False
        self.moved = {}

    def datagram_received(self, data, addr):
        # The query name is t<N>.example.com: read N back from the question.
        if len(data) > 13:
            n = int(data[14:13 + data[12]].decode())
            self.answers[n] = first_a(data)
            if self.armed and self.answers[n] == "127.0.0.3":
                self.moved.setdefault(n, time.monotonic())


def ready() -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{ADMIN_PORT}/readyz", timeout=1).status == 200
    except OSError:
        return False


async def main(binary: str, trials: int, base: int, work: str):
    loop = asyncio.get_running_loop()
    sips = []
    for n in range(trials):
        for ip in ("127.0.0.2", "127.0.0.3"):
            _, p = await loop.create_datagram_endpoint(Sip, local_addr=(ip, base + n))
            sips.append(p)
    primaries = sips[0::2]
    config(work, trials, base)
    srv = subprocess.Popen([binary, "serve", "--config", f"{work}/sipsteer.yaml"],
                           stderr=open(f"{work}/serve.log", "w"))
    try:
        for _ in range(150):
            if ready():
                break
            await asyncio.sleep(0.2)
        else:
            sys.exit("sipsteer never became ready")
        transport, dns = await loop.create_datagram_endpoint(Dns, remote_addr=("127.0.0.1", DNS_PORT))
        await asyncio.sleep(6 + 5 * random.random())  # steady state, at a random moment
        for n in range(trials):
            transport.sendto(query(n))
        await asyncio.sleep(0.2)
        if any(dns.answers.get(n) != "127.0.0.2" for n in range(trials)):
            sys.exit(f"not every service starts on its primary: {dns.answers}")
        t0 = time.monotonic()
        dns.armed = True
        for p in primaries:
            p.silent = True
        while len(dns.moved) < trials and time.monotonic() - t0 < 90:
            for n in range(trials):
                if n not in dns.moved:
                    transport.sendto(query(n))
            await asyncio.sleep(0.02)
        took = {n: t - t0 for n, t in dns.moved.items()}
        times = sorted(took.values())
        if len(times) < trials:
            sys.exit(f"only {len(times)} of {trials} trials failed over within 90 s")
        p95 = times[max(0, -(-95 * trials // 100) - 1)]
        print("trials(s): " + " ".join(f"{t:.2f}" for t in times))
        print(f"binary={binary} trials={trials} median={statistics.median(times):.2f}s "
              f"p95={p95:.2f}s min={times[0]:.2f}s max={times[-1]:.2f}s")
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
