#!/usr/bin/env python3
"""A fake Prometheus for bench/prom-load.sh: answers every instant query
(GET /api/v1/query) with one vector of SERIES series, the last of them named like the
bench's servers (label server="rI/sJ"; --servers-first puts them first), the others named
like no server, and logs the
monotonic time and query of every request to LOG. Listens on 127.0.0.1 only."""

import argparse
import http.server
import time
import urllib.parse


def body(series, regions, per_region, first):
    items = []
    servers = min(series, regions * per_region)
    for k in range(series):
        i = k if first else k - (series - servers)
        if 0 <= i < servers:
            name = f"r{i // per_region}/s{i % per_region}"
        else:
            name = f"other{k}"
        items.append(
            '{"metric":{"server":"%s"},"value":[1732550000,"500"]}' % name
        )
    text = '{"status":"success","data":{"resultType":"vector","result":[%s]}}' % ",".join(items)
    return text.encode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--series", type=int, default=100000)
    p.add_argument("--regions", type=int, default=100)
    p.add_argument("--per-region", type=int, default=100)
    p.add_argument("--log", required=True)
    p.add_argument("--servers-first", action="store_true")
    a = p.parse_args()
    reply = body(a.series, a.regions, a.per_region, a.servers_first)
    log = open(a.log, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            qs = urllib.parse.urlparse(self.path).query
            query = urllib.parse.parse_qs(qs).get("query", [""])[0]
            log.write("%.6f\t%s\n" % (time.monotonic(), query))
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the reader stopped early (a cap) or went away

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print("fake prometheus: %d series, %d bytes per reply, port %d" % (a.series, len(reply), a.port), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
