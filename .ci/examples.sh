#!/usr/bin/env bash
# Deployable examples: the Kubernetes manifest's ConfigMaps, laid out as the pod sees them,
# pass `sipsteer check`; the manifest mounts them as directories (no subPath, so edits reach
# the pod), gives the probes a startup allowance and owns the state directory for its uid.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SIPSTEER_BIN:-}" ]; then cargo build --release --quiet; fi
BIN=${SIPSTEER_BIN:-$PWD/target/release/sipsteer}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass+1)); echo "ok   $name"; else fail=$((fail+1)); echo "FAIL $name"; fi; }

K=examples/kubernetes/daemonset.yaml
python3 - "$K" "$WORK" <<'PY'
import os, sys, yaml
manifest, work = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(manifest)) if d]
maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
ds = next(d for d in docs if d["kind"] == "DaemonSet")
pod = ds["spec"]["template"]["spec"]
c = pod["containers"][0]
mounts = {m["name"]: m for m in c["volumeMounts"]}
vols = {v["name"]: v for v in pod["volumes"]}
assert not any("subPath" in m for m in c["volumeMounts"]), "a subPath mount never sees ConfigMap edits"
# Lay the ConfigMaps out where the pod mounts them, under work/.
for name, m in mounts.items():
    cm = vols[name].get("configMap")
    if cm:
        d = work + m["mountPath"]
        os.makedirs(d, exist_ok=True)
        for k, v in maps[cm["name"]].items():
            open(os.path.join(d, k), "w").write(v)
config = next(a for a in c["args"] if a.endswith(".yaml"))
text = open(work + config).read()
for p in ("/etc/sipsteer/", "/var/lib/sipsteer/"):
    text = text.replace(p, work + p)
# No GeoLite2 database here: the sample CSV stands in for it.
text = text.replace("/var/lib/geoip/GeoLite2-City.mmdb", os.path.abspath("geoip/sample.csv"))
open(work + config, "w").write(text)
open(work + "/config-path", "w").write(work + config)
assert "startupProbe" in c and c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 120, "startup allowance"
uid = c["securityContext"]["runAsUser"]
init = " ".join(pod["initContainers"][0]["command"])
assert f"chown {uid}:{uid} /var/lib/sipsteer" in init, "state dir owned by the container uid"
df = open("Dockerfile").read()
assert f"USER {uid}:{uid}" in df, "Dockerfile runs as the manifest's uid"
PY
check "kubernetes manifest: mounts, probes, state owner, uid" true
# The pod gets its token from the Secret.
check "kubernetes ConfigMaps: sipsteer check" env SIPSTEER_ADMIN_TOKEN=from-the-secret "$BIN" check --config "$(cat "$WORK/config-path")"

echo "examples: $pass passed, $fail failed"
[ "$fail" = 0 ]
