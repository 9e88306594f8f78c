#!/usr/bin/env python3
"""Time from a renewed certificate's rename to new DNS over TLS and DNS over HTTPS handshakes
showing it, with the real binary started as documented (`--config sipsteer.yaml` from the
config directory). Certificates come from a CA made with openssl for the run; the handshakes
are Python's ssl, one new connection per check, every 10 ms; a figure includes the
handshake that saw the new certificate.

Usage: bench/cert_renewal.py              (from the repository root, after cargo build)
  BIN=path    the binary (target/debug/sipsteer)
  TRIALS=N    renewals timed (5)
  MODE=...    how the renewal lands:
              rename   key.pem then cert.pem written beside and renamed over (default)
              certbot  live/*.pem symlinks re-pointed into archive/ (unlink + symlink)
              k8s      a Secret volume: ..data swapped to a new timestamped directory
              dirlink  live -> vN, a directory symlink renamed over (no file event reaches
                       the watched directories)
  RESCAN=S    reload.rescan (1h, so only the watcher and the certificate check count;
              empty leaves `reload:` out for a binary without the key)
"""
import os, shutil, socket, ssl, statistics, subprocess, sys, tempfile, time

BIN = os.path.abspath(os.environ.get("BIN", "target/debug/sipsteer"))
TRIALS = int(os.environ.get("TRIALS", "5"))
MODE = os.environ.get("MODE", "rename")
RESCAN = os.environ.get("RESCAN", "1h")
PATHS = {
    "rename": ("cert.pem", "key.pem"),
    "certbot": ("live/fullchain.pem", "live/privkey.pem"),
    "k8s": ("secret/tls.crt", "secret/tls.key"),
    "dirlink": ("live/cert.pem", "live/key.pem"),
}


def sh(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_ca(d):
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench ca", cwd=d)


def make_leaf(d, n):
    """leafN.pem and leafN.key in `d`; returns the certificate's DER."""
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", f"leaf{n}.key", "-out", f"leaf{n}.csr", "-subj", f"/CN=leaf {n}", cwd=d)
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", f"leaf{n}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
       "-set_serial", str(n), "-days", "2", "-extfile", "ext", "-out", f"leaf{n}.pem", cwd=d)
    return subprocess.run(["openssl", "x509", "-in", f"leaf{n}.pem", "-outform", "DER"], cwd=d,
                          check=True, capture_output=True).stdout


def served(ca, port, alpn):
    """The leaf certificate a new handshake shows (None when the handshake fails)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols([alpn])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                return t.getpeercert(binary_form=True)
    except OSError:
        return None


def copy(src, dst):
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())


def replace(src, path):
    copy(src, path + ".new")
    os.rename(path + ".new", path)


def install(work, n):
    """Puts leaf `n` in place the way MODE says."""
    leaf = lambda ext: os.path.join(work, f"leaf{n}.{ext}")
    if MODE == "rename":
        replace(leaf("key"), os.path.join(work, "key.pem"))
        replace(leaf("pem"), os.path.join(work, "cert.pem"))
    elif MODE == "certbot":
        archive, live = os.path.join(work, "archive"), os.path.join(work, "live")
        os.makedirs(archive, exist_ok=True)
        os.makedirs(live, exist_ok=True)
        for kind, ext in (("fullchain", "pem"), ("privkey", "key")):
            copy(leaf(ext), os.path.join(archive, f"{kind}{n}.pem"))
        for kind in ("fullchain", "privkey"):
            link = os.path.join(live, f"{kind}.pem")
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(f"../archive/{kind}{n}.pem", link)
    elif MODE == "dirlink":
        d = os.path.join(work, f"v{n}")
        os.makedirs(d)
        copy(leaf("pem"), os.path.join(d, "cert.pem"))
        copy(leaf("key"), os.path.join(d, "key.pem"))
        os.symlink(f"v{n}", os.path.join(work, "live.new"))
        os.rename(os.path.join(work, "live.new"), os.path.join(work, "live"))
    elif MODE == "k8s":
        d = os.path.join(work, "secret")
        ts = os.path.join(d, f"..ts{n}")
        os.makedirs(ts)
        for name, ext in (("tls.crt", "pem"), ("tls.key", "key")):
            copy(leaf(ext), os.path.join(ts, name))
            if not os.path.lexists(os.path.join(d, name)):
                os.symlink(f"..data/{name}", os.path.join(d, name))
        os.symlink(f"..ts{n}", os.path.join(d, "..data_tmp"))
        os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))
        if n > 0:
            shutil.rmtree(os.path.join(d, f"..ts{n - 1}"))


def main():
    work = tempfile.mkdtemp()
    os.makedirs(os.path.join(work, "zones"))
    ca = os.path.join(work, "ca.pem")
    make_ca(work)
    ders = [make_leaf(work, n) for n in range(TRIALS + 1)]
    cert, key = PATHS[MODE]
    dns, dot, doh = free_port(), free_port(), free_port()
    with open(os.path.join(work, "sipsteer.yaml"), "w") as f:
        f.write(f'listen: {{ dns: ["127.0.0.1:{dns}"], admin: "off", tls: ["127.0.0.1:{dot}"], '
                f'https: ["127.0.0.1:{doh}"] }}\nzones: zones\nhealth: {{ check: none }}\n'
                f"tls: {{ certificate: {cert}, key: {key} }}\n"
                + (f"reload: {{ rescan: {RESCAN} }}\n" if RESCAN else ""))
    with open(os.path.join(work, "zones", "example.com.yaml"), "w") as f:
        f.write("zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\n"
                "ns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n")
    install(work, 0)
    log = open(os.path.join(work, "serve.log"), "w")
    srv = subprocess.Popen([BIN, "serve", "--config", "sipsteer.yaml"], cwd=work, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while served(ca, dot, "dot") != ders[0]:
            if time.monotonic() > deadline:
                sys.exit("server did not start")
            time.sleep(0.05)
        times = []
        for n in range(1, TRIALS + 1):
            time.sleep(1.5)
            install(work, n)
            t0 = time.monotonic()
            seen = {}
            while len(seen) < 2 and time.monotonic() - t0 < 30:
                for name, port, alpn in (("dot", dot, "dot"), ("doh", doh, "h2")):
                    if name not in seen and served(ca, port, alpn) == ders[n]:
                        seen[name] = time.monotonic() - t0
                time.sleep(0.01)
            if len(seen) < 2:
                print(f"renewal {n}: not served within 30 s")
            else:
                print(f"renewal {n}: dot {seen['dot']:.3f} s, doh {seen['doh']:.3f} s")
            times.append(max(seen.values()) if len(seen) == 2 else float("inf"))
        print(f"{MODE}: median {statistics.median(times):.3f} s, max {max(times):.3f} s "
              f"over {TRIALS} renewals")
    finally:
        srv.terminate()
        srv.wait()


main()
