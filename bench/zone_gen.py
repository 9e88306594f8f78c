#!/usr/bin/env python3
"""Writes a config directory whose one zone map holds NAMES names of VALUES distinct A values
each, for timing `sipsteer check` (and startup) on large record sets.

Usage: bench/zone_gen.py DIR [VALUES] [NAMES]      (120000 values at 1 name by default)
Then:  time target/release/sipsteer check --config DIR/sipsteer.yaml
"""
import os, sys

out = sys.argv[1]
values = int(sys.argv[2]) if len(sys.argv) > 2 else 120_000
names = int(sys.argv[3]) if len(sys.argv) > 3 else 1
os.makedirs(os.path.join(out, "zones"), exist_ok=True)
with open(os.path.join(out, "sipsteer.yaml"), "w") as f:
    f.write('listen: { dns: ["127.0.0.1:0"], admin: "off" }\nzones: zones\n'
            'health: { check: none }\n')
with open(os.path.join(out, "zones", "example.com.yaml"), "w") as f:
    f.write("zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\n"
            "ns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n")
    for n in range(names):
        f.write(f"  h{n}:\n    A:\n")
        for i in range(values):
            f.write(f"      - 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n")
