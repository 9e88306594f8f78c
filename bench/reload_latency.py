#!/usr/bin/env python3
"""Time from a zone map edit (atomic rename) to the new answer over UDP, with the real binary
started as documented (`--config sipsteer.yaml`, relative, from the config directory) and the
periodic rescan pushed out (`reload.rescan: 1h`), so only the file watcher can apply an edit.

Usage: bench/reload_latency.py             (from the repository root, after cargo build)
  BIN=path     the binary (target/debug/sipsteer)
  TRIALS=N     edits timed (10)
  BUSY=1       another zone map is rewritten every 100 ms throughout (a busy file)
  TIMEOUT=S    give up on one edit after S seconds (30)
  RESCAN=      leave `reload:` out (a binary without the key; its rescan then applies)
  ABSOLUTE=1   pass --config as an absolute path
"""
import os, socket, statistics, struct, subprocess, sys, tempfile, threading, time

BIN = os.path.abspath(os.environ.get("BIN", "target/debug/sipsteer"))
TRIALS = int(os.environ.get("TRIALS", "10"))
BUSY = os.environ.get("BUSY", "0") == "1"
TIMEOUT = float(os.environ.get("TIMEOUT", "30"))
RESCAN = os.environ.get("RESCAN", "1h")
ABSOLUTE = os.environ.get("ABSOLUTE", "0") == "1"


def zone(origin, www):
    return (f"zone: {origin}\nsoa: {{ primary: ns1, contact: hostmaster, serial: 1 }}\n"
            f"ns: [ns1]\nrecords:\n  ns1: {{ A: 192.0.2.53 }}\n  www: {{ A: {www} }}\n")


def replace(path, text):
    tmp = os.path.join(os.path.dirname(path), ".bench.tmp." + os.path.basename(path))
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def www_a(port):
    """The first A record of www.example.com, or None."""
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l for l in (b"www", b"example", b"com")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(q, ("127.0.0.1", port))
        r = s.recv(4096)
    except OSError:
        return None
    finally:
        s.close()
    if len(r) < 12 or struct.unpack(">H", r[6:8])[0] == 0:
        return None
    pos = len(q)  # the question is echoed as sent
    pos += 2 + 8  # owner pointer, type, class, ttl
    rdlen = struct.unpack(">H", r[pos:pos + 2])[0]
    return socket.inet_ntoa(r[pos + 2:pos + 2 + rdlen]) if rdlen == 4 else None


def main():
    work = tempfile.mkdtemp()
    os.makedirs(os.path.join(work, "zones"))
    port = free_port()
    with open(os.path.join(work, "sipsteer.yaml"), "w") as f:
        f.write(f'listen: {{ dns: ["127.0.0.1:{port}"], admin: "off" }}\nzones: zones\n'
                'health: { check: none }\n'
                + (f"reload: {{ rescan: {RESCAN} }}\n" if RESCAN else ""))
    replace(os.path.join(work, "zones", "example.com.yaml"), zone("example.com", "192.0.2.100"))
    busy_path = os.path.join(work, "zones", "busy.example.yaml")
    replace(busy_path, zone("busy.example", "192.0.2.9"))
    log = open(os.path.join(work, "serve.log"), "w")
    config = os.path.join(work, "sipsteer.yaml") if ABSOLUTE else "sipsteer.yaml"
    srv = subprocess.Popen([BIN, "serve", "--config", config], cwd=work, stderr=log,
                           stdout=subprocess.DEVNULL)
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            replace(busy_path, zone("busy.example", "192.0.2.9"))
            time.sleep(0.1)

    try:
        deadline = time.monotonic() + 30
        while www_a(port) != "192.0.2.100":
            if time.monotonic() > deadline:
                sys.exit("server did not start")
            time.sleep(0.05)
        time.sleep(0.5)  # the watcher starts just after the listeners
        if BUSY:
            threading.Thread(target=busy, daemon=True).start()
            time.sleep(0.5)
        times = []
        for n in range(1, TRIALS + 1):
            want = f"192.0.2.{100 + n}"
            replace(os.path.join(work, "zones", "example.com.yaml"), zone("example.com", want))
            t0 = time.monotonic()
            while www_a(port) != want and time.monotonic() - t0 < TIMEOUT:
                time.sleep(0.005)
            took = time.monotonic() - t0
            served = www_a(port) == want
            print(f"edit {n}: {took:.3f} s" + ("" if served else " (not served, gave up)"))
            times.append(took if served else float("inf"))
            time.sleep(1.5)
        print(f"{'busy' if BUSY else 'quiet'}: median {statistics.median(times):.3f} s, "
              f"max {max(times):.3f} s over {TRIALS} edits")
    finally:
        stop.set()
        srv.terminate()
        srv.wait()


main()
