#!/usr/bin/env python3
"""Slow-header attack on the admin API, and what a liveness probe sees meanwhile.

usage: admin-slow.py SIPSTEER_BINARY [--attack-from 127.0.0.2] [--probe-from 127.0.0.1]
                     [--connections 128] [--probes 15]

Starts SIPSTEER_BINARY on a temporary config (DNS and the admin API on 127.0.0.1, a static
zone, no probes). The attacker opens CONNECTIONS connections to the admin API from one
loopback source and sends each an unfinished request head; a connection the server closes
(at the 5 s header timeout, or at once when it is shed) is opened again within 50 ms, so
each one is reopened about every 5 s. Meanwhile a prober like the kubelet's (1 s timeout) asks
`GET /healthz` once a second from another loopback source, PROBES times. Prints how many
probes got 200 and the admin shed counters from /metrics. Loopback only.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ZONE = """zone: example.com
soa: { primary: ns1, contact: hostmaster@example.com, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect(src, port, timeout):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def get(src, port, path, timeout=1.0):
    """One request; the status code, or None when it failed or timed out."""
    try:
        s = connect(src, port, timeout)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        return int(out.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return None


def get_body(src, port, path):
    try:
        s = connect(src, port, 5.0)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        return out.decode(errors="replace")
    except OSError as e:
        return f"error: {e}"


def attack(src, port, n, stop):
    """Holds `n` slow connections: one the server closes is opened again within 50 ms."""
    held = []
    while not stop.is_set():
        alive = []
        for s in held:
            try:
                if s.recv(1, socket.MSG_PEEK) == b"":
                    s.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            alive.append(s)
        held = alive
        while len(held) < n and not stop.is_set():
            try:
                s = connect(src, port, 1.0)
                s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
                s.setblocking(False)
                held.append(s)
            except OSError:
                break
        stop.wait(0.05)
    for s in held:
        s.close()


def wait_ready(port, deadline):
    while time.monotonic() < deadline:
        if get("127.0.0.1", port, "/healthz") == 200:
            return True
        time.sleep(0.1)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--attack-from", default="127.0.0.2")
    ap.add_argument("--probe-from", default="127.0.0.1")
    ap.add_argument("--connections", type=int, default=128)
    ap.add_argument("--probes", type=int, default=15)
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="admin-slow-")
    os.mkdir(os.path.join(work, "zones"))
    with open(os.path.join(work, "zones", "example.com.yaml"), "w") as f:
        f.write(ZONE)
    port = free_port()
    with open(os.path.join(work, "sipsteer.yaml"), "w") as f:
        f.write(
            f'listen: {{ dns: ["127.0.0.1:0"], admin: "127.0.0.1:{port}" }}\n'
            "zones: zones\nhealth: { check: none }\n"
        )
    log = open(os.path.join(work, "sipsteer.log"), "w")
    proc = subprocess.Popen(
        [a.binary, "serve", "--config", os.path.join(work, "sipsteer.yaml")],
        stdout=log,
        stderr=log,
    )
    try:
        if not wait_ready(port, time.monotonic() + 30):
            sys.exit("sipsteer did not answer /healthz within 30 s")
        stop = threading.Event()
        t = threading.Thread(
            target=attack, args=(a.attack_from, port, a.connections, stop)
        )
        t.start()
        time.sleep(1.0)
        ok = 0
        codes = []
        for _ in range(a.probes):
            started = time.monotonic()
            code = get(a.probe_from, port, "/healthz")
            codes.append(code)
            ok += code == 200
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        stop.set()
        t.join()
        print(
            f"/healthz from {a.probe_from} during {a.connections} slow connections from "
            f"{a.attack_from} (each reopened when closed): {ok}/{a.probes} answered 200"
        )
        print("codes:", " ".join("-" if c is None else str(c) for c in codes))
        metrics = get_body(a.probe_from, port, "/metrics")
        for line in metrics.splitlines():
            if line.startswith("sipsteer_admin_connections_shed_total"):
                print(line)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
