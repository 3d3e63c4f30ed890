#!/usr/bin/env bash
# The prometheus-operator CRDs the kube target applies (PrometheusRule, ServiceMonitor), from the
# prometheus-operator Go module's shipped files, into .kube-tools/share/crds/. A module download,
# no build: kept apart from build-kube-tools.sh so that a CRD change never rebuilds the binaries.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="v0.85.0"
dest="$root/.kube-tools/share/crds"
files=(monitoring.coreos.com_prometheusrules.yaml monitoring.coreos.com_servicemonitors.yaml)
stamp="$dest/.prometheus-operator-$version"
[[ -f "$stamp" ]] && exit 0
dir="$(cd /tmp && GOFLAGS= go mod download -json "github.com/prometheus-operator/prometheus-operator@$version" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
mkdir -p "$dest"
for f in "${files[@]}"; do install -m 0644 "$dir/example/prometheus-operator-crd/$f" "$dest/"; done
rm -f "$dest"/.prometheus-operator-* && touch "$stamp"
echo "kube-tools: prometheus-operator $version CRDs in $dest"
