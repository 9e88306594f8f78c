#!/usr/bin/env python3
"""The stream-transport attacks, measured against one sipsteer binary (run it on two binaries
to compare). Each attack starts its own server on loopback (the repository's zones and GeoIP
sample, DNS over TCP, TLS and HTTPS, a self-signed certificate made by openssl) and prints one
JSON line per figure.

  timewait  TCP connections to the plain TCP port from 8 loopback sources, made and closed as
            fast as 8 processes can, until the host holds 95 % of net.ipv4.tcp_max_tw_buckets
            sockets in TIME_WAIT (at most 90 s), then, with the connections still going on: plain
            TCP query latency (100 queries, a new connection each) while 4 clients keep making
            DoT handshakes; then with the connections paused (SIGSTOP, the TIME_WAIT sockets
            stay): server CPU per DoT handshake (200 sequential handshakes, one query each) and
            the same latency. Baseline first.
  dotflood  22,185 TCP connections to the DNS over TLS port from 765 loopback sources (two
            client processes), held 30 s without a ClientHello (each one the server closes is
            opened again), against a server whose
            open-file limit is 20,000: the server's descriptors and RSS, and a plain TCP and a
            DoT query every 0.5 s (answered or not, latency).
  dohidle   2,000 TCP connections to the DNS over HTTPS port from 127.0.0.1, held idle (each
            one the server closes is opened again), then 8 DoH queries from 127.0.0.2 with kdig
            (5 s each at most: kdig's own +timeout does not cover a connection the server never
            accepts).

Usage: bench/stream_attacks.py BIN [timewait|dotflood|dohidle ...]   (from the repository root;
needs openssl and kdig; as root for the open-file limit and many sockets)
"""

import json
import os
import random
import resource
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK = os.sysconf("SC_CLK_TCK")
IP_BIND_ADDRESS_NO_PORT = 24


def out(**kw):
    print(json.dumps(kw), flush=True)


def query(name="static.example.com", qid=None):
    qid = random.randrange(65536) if qid is None else qid
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def ask_stream(s, name="static.example.com"):
    q = query(name)
    s.sendall(struct.pack(">H", len(q)) + q)
    n = struct.unpack(">H", read_exact(s, 2))[0]
    return read_exact(s, n)


def bound_socket(src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    s.bind((src, 0))
    return s


def tcp_query(port, src="127.0.0.200", timeout=2.0):
    """Latency in ms of one query on a new TCP connection, or None."""
    t0 = time.monotonic()
    try:
        s = bound_socket(src)
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        ask_stream(s)
        s.close()
        return (time.monotonic() - t0) * 1000
    except OSError:
        return None


def tls_ctx(alpn):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.set_alpn_protocols([alpn])
    return c


DOT = tls_ctx("dot")


def dot_query(port, src="127.0.0.201", timeout=2.0):
    """Latency in ms of a handshake and one query over DoT, or None."""
    t0 = time.monotonic()
    try:
        raw = bound_socket(src)
        raw.settimeout(timeout)
        raw.connect(("127.0.0.1", port))
        s = DOT.wrap_socket(raw, server_hostname="localhost")
        ask_stream(s)
        s.close()
        return (time.monotonic() - t0) * 1000
    except (OSError, ssl.SSLError):
        return None


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))], 2) if xs else None


class Server:
    def __init__(self, binary, nofile=None):
        self.dir = tempfile.mkdtemp(prefix="sipsteer-attack-")
        d = self.dir
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem"],
            check=True, capture_output=True)
        # Below the ephemeral range, so no client socket of the attack holds the port.
        base = random.randrange(20000, 32000, 4)
        self.tcp, self.tls, self.https, self.admin = base, base + 1, base + 2, base + 3
        with open(f"{d}/sipsteer.yaml", "w") as f:
            f.write(f"""listen:
  dns: ["127.0.0.1:{self.tcp}"]
  tls: ["127.0.0.1:{self.tls}"]
  https: ["127.0.0.1:{self.https}"]
  admin: "127.0.0.1:{self.admin}"
zones: {REPO}/zones/
geoip: {{ database: {REPO}/geoip/sample.csv }}
admin: {{ state_file: {d}/state.json }}
health: {{ check: none }}
tls: {{ certificate: {d}/cert.pem, key: {d}/key.pem }}
""")
        pre = None
        if nofile:
            pre = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.log = open(f"{d}/serve.log", "w")
        self.proc = subprocess.Popen([binary, "serve", "--config", f"{d}/sipsteer.yaml"],
                                     stderr=self.log, stdout=subprocess.DEVNULL, preexec_fn=pre)
        for _ in range(300):
            if tcp_query(self.tcp, src="127.0.0.1") is not None:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")

    def cpu(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
        return None

    def log_lines(self):
        self.log.flush()
        with open(f"{self.dir}/serve.log") as f:
            return [l for l in f if " WARN " in l or " ERROR " in l]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["rm", "-rf", self.dir])


def time_wait():
    """Sockets in TIME_WAIT on the host (/proc/net/sockstat)."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("tw") + 1])
    return 0


def pile_up(port, src):
    """Child process: connect and close from `src`, as fast as it can, until killed."""
    while True:
        try:
            s = bound_socket(src)
            s.connect(("127.0.0.1", port))
            s.close()
        except OSError:
            time.sleep(0.01)


def handshake_cpu(srv, n=200):
    c0 = srv.cpu()
    ok = sum(1 for _ in range(n) if dot_query(srv.tls, timeout=5) is not None)
    return round((srv.cpu() - c0) * 1000 / n, 2), ok


def tcp_latency_while_handshaking(srv, n=100):
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            dot_query(srv.tls, timeout=5)

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    lat = [tcp_query(srv.tcp, timeout=5) for _ in range(n)]
    stop.set()
    ok = [x for x in lat if x is not None]
    return dict(answered=len(ok), of=n, p50_ms=pct(ok, 0.5), p99_ms=pct(ok, 0.99),
                max_ms=round(max(ok), 1) if ok else None)


def attack_timewait(binary):
    srv = Server(binary)
    try:
        cpu, ok = handshake_cpu(srv)
        out(attack="timewait", phase="baseline", time_wait=time_wait(),
            dot_handshake_cpu_ms=cpu, dot_ok=ok, tcp=tcp_latency_while_handshaking(srv))
        target = int(open("/proc/sys/net/ipv4/tcp_max_tw_buckets").read()) * 95 // 100
        t0 = time.monotonic()
        kids = []
        for i in range(8):
            pid = os.fork()
            if pid == 0:
                pile_up(srv.tcp, f"127.0.2.{i + 1}")
            kids.append(pid)
        try:
            # The pile-up goes on while measuring, as an attacker would keep it up.
            while time_wait() < target and time.monotonic() - t0 < 90:
                time.sleep(0.5)
            out(attack="timewait", phase="piled", time_wait=time_wait(),
                seconds=round(time.monotonic() - t0, 1))
            tcp = tcp_latency_while_handshaking(srv)
            out(attack="timewait", phase="attack, connections going on", time_wait=time_wait(),
                tcp=tcp)
            # Paused, so the server's CPU time is the handshakes' alone; TIME_WAIT lasts 60 s.
            for pid in kids:
                os.kill(pid, 19)
            tw = time_wait()
            cpu, ok = handshake_cpu(srv)
            tcp = tcp_latency_while_handshaking(srv)
            out(attack="timewait", phase="attack, connections paused", time_wait=tw,
                time_wait_after=time_wait(), dot_handshake_cpu_ms=cpu, dot_ok=ok, tcp=tcp)
        finally:
            for pid in kids:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
    finally:
        srv.stop()


def hold(port, sources, per_source, seconds, report):
    """Child process: `per_source` connections from each source, held open without a byte
    sent, each one the server closes opened again (checked every 100 ms), for `seconds`."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    slots = [(src, None) for src in sources for _ in range(per_source)]
    opened = reopened = failed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i, (src, s) in enumerate(slots):
            if s is not None:
                try:
                    if s.recv(1) != b"":
                        continue
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                s.close()
                reopened += 1
            try:
                s = bound_socket(src)
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                opened += 1
            except OSError:
                s = None
                failed += 1
            slots[i] = (src, s)
        time.sleep(0.1)
    os.write(report, f"{opened} {failed} {reopened}\n".encode())
    os._exit(0)


def attack_dotflood(binary):
    srv = Server(binary, nofile=20000)
    try:
        base = [tcp_query(srv.tcp) for _ in range(20)]
        out(attack="dotflood", phase="baseline", fds=srv.fds(), rss_mb=srv.rss_mb(),
            tcp_p50_ms=pct([x for x in base if x], 0.5))
        sources = [f"127.0.{a}.{b}" for a in (3, 4, 5) for b in range(1, 256)]
        r, w = os.pipe()
        kids = []
        t0 = time.monotonic()
        for half in (sources[:384], sources[384:]):
            pid = os.fork()
            if pid == 0:
                hold(srv.tls, half, 29, 30, w)
            kids.append(pid)
        samples = []
        while time.monotonic() - t0 < 40:
            t = round(time.monotonic() - t0, 1)
            try:
                fds, rss = srv.fds(), srv.rss_mb()
            except OSError:
                fds = rss = None
            samples.append(dict(t=t, fds=fds, rss_mb=rss, tcp_ms=tcp_query(srv.tcp),
                                dot_ms=dot_query(srv.tls)))
            time.sleep(0.5)
        for pid in kids:
            os.waitpid(pid, 0)
        os.close(w)
        held = os.read(r, 4096).decode().split()
        tcp_fail = [s["t"] for s in samples if s["tcp_ms"] is None]
        dot_fail = [s["t"] for s in samples if s["dot_ms"] is None]
        out(attack="dotflood", phase="attack", held=len(sources) * 29,
            opened=sum(int(x) for x in held[0::3]), reopened=sum(int(x) for x in held[2::3]),
            max_fds=max(s["fds"] or 0 for s in samples),
            max_rss_mb=max(s["rss_mb"] or 0 for s in samples),
            tcp_failed=len(tcp_fail), tcp_failed_span_s=(tcp_fail[0], tcp_fail[-1]) if tcp_fail else None,
            tcp_p50_ms=pct([s["tcp_ms"] for s in samples if s["tcp_ms"]], 0.5),
            tcp_max_ms=pct([s["tcp_ms"] for s in samples if s["tcp_ms"]], 1.0),
            dot_failed=len(dot_fail), samples=len(samples),
            warnings=len(srv.log_lines()), log=[l.strip()[:200] for l in srv.log_lines()[:3]])
    finally:
        srv.stop()


def keep_open(port, src, n, stop, stats):
    """Holds `n` idle connections from `src`, opening a new one for each the server closes
    (checked every 100 ms), until `stop`."""
    socks = [None] * n
    while not stop.is_set():
        for i, s in enumerate(socks):
            if s is not None:
                try:
                    if s.recv(1) != b"":
                        continue
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                s.close()
                stats["reopened"] += 1
            s = bound_socket(src)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks[i] = s
        stop.wait(0.1)
    for s in socks:
        if s is not None:
            s.close()


def attack_dohidle(binary):
    srv = Server(binary)
    try:
        stop, stats = threading.Event(), {"reopened": 0}
        holder = threading.Thread(target=keep_open, args=(srv.https, "127.0.0.1", 2000, stop, stats))
        holder.start()
        time.sleep(1)
        results = []
        for _ in range(8):
            t0 = time.monotonic()
            try:
                r = subprocess.run(["kdig", "@127.0.0.1", "-p", str(srv.https), "-b", "127.0.0.2",
                                    "+https", f"+tls-ca={srv.dir}/cert.pem", "+tls-hostname=localhost",
                                    "+timeout=5", "+retry=0",
                                    "static.example.com", "A"], capture_output=True, text=True,
                                   timeout=5)
                answered = "192.0.2.200" in r.stdout
                why = "" if answered else (r.stderr or r.stdout).strip().splitlines()[-1:]
            except subprocess.TimeoutExpired:
                answered, why = False, "no reply in 5 s"
            ms = round((time.monotonic() - t0) * 1000, 1)
            results.append(dict(answered=answered, ms=ms, why=why))
        stop.set()
        holder.join()
        out(attack="dohidle", idle_connections=2000, reopened=stats["reopened"],
            answered=sum(1 for x in results if x["answered"]), of=len(results),
            ms=[x["ms"] for x in results], failures=[x["why"] for x in results if x["why"]])
    finally:
        srv.stop()


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    binary = os.path.abspath(sys.argv[1])
    which = sys.argv[2:] or ["timewait", "dotflood", "dohidle"]
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    for name in which:
        {"timewait": attack_timewait, "dotflood": attack_dotflood,
         "dohidle": attack_dohidle}[name](binary)


if __name__ == "__main__":
    main()
