#!/usr/bin/env bash
# Build the `kube` target's toolchain from Go modules into .kube-tools/ (git-ignored):
#   bin/etcd, bin/kube-apiserver, bin/kube-controller-manager, bin/kube-scheduler
#       one `go build` of tools/kube (k8s.io/kubernetes v1.37.2 + go.etcd.io/etcd/server/v3),
#       so the packages they share compile once;
#   bin/kwok                          tools/kwok (sigs.k8s.io/kwok), plus its stages in share/kwok/;
#   bin/pulumi-resource-kubernetes    tools/pulumi-kubernetes (the provider plugin), with the
#       schema-embed.json and terraform-mapping-embed.json its generate.go writes;
#   share/crds/                       the Gateway API CRDs the EKS builders' HTTPRoute needs.
# `make setup` never runs this: only `make kube-tools` (and what depends on it). A stamp of all
# inputs skips the rebuild when nothing changed. KUBE_TOOLS_GCFLAGS (e.g. "all=-N -l") is
# passed to every build, to measure unoptimised builds.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.kube-tools" # fixed: tools/pulumi-kubernetes/go.mod replaces the provider with out/src/provider-v4
bin="$out/bin"
k8s_version="v1.37.2"                                   # keep in step with tools/kube/go.mod
kwok_version="v0.8.0"                                   # keep in step with tools/kwok/go.mod
provider_version="v4.0.0-20260115033456-f47bc2d6f199"   # keep in step with tools/pulumi-kubernetes/go.mod
# The provider reports this version (the commit of the pseudo-version above).
provider_semver="4.0.0-alpha.0+f47bc2d6f199"
gateway_api_version="v1.6.3"
jobs="$(nproc)"

stamp_inputs() {
  for m in kube kwok pulumi-kubernetes; do cat "$root/tools/$m/go.mod" "$root/tools/$m/go.sum"; done
  cat "$0"
  echo "gcflags=${KUBE_TOOLS_GCFLAGS:-}"
  go version
}
stamp="$(stamp_inputs | sha256sum | cut -d' ' -f1)"
tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok pulumi-resource-kubernetes)
current=true
for t in "${tools[@]}"; do [[ -x "$bin/$t" ]] || current=false; done
if $current && [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" ]]; then
  echo "kube-tools: up to date ($out)"
  exit 0
fi
mkdir -p "$bin" "$out/share"
rm -f "$out/.stamp"

export GOFLAGS="-mod=readonly -trimpath"
build=(go build -p "$jobs")
[[ -n "${KUBE_TOOLS_GCFLAGS:-}" ]] && build+=(-gcflags "$KUBE_TOOLS_GCFLAGS")
mod_dir() { (cd /tmp && GOFLAGS= go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'); }

echo "kube-tools: building etcd and the Kubernetes $k8s_version control plane (one go build; the first takes long)"
v=k8s.io/component-base/version
(cd "$root/tools/kube" && "${build[@]}" -o "$bin/" \
  -ldflags "-s -w -X $v.gitVersion=$k8s_version -X $v.gitMajor=1 -X $v.gitMinor=37 -X $v.gitTreeState=clean" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler go.etcd.io/etcd/server/v3)
mv -f "$bin/server" "$bin/etcd" # go names the etcd main package after its module path: server/v3

echo "kube-tools: building kwok $kwok_version"
(cd "$root/tools/kwok" && "${build[@]}" -o "$bin/kwok" -ldflags "-s -w" sigs.k8s.io/kwok/cmd/kwok)
rm -rf "$out/share/kwok" && mkdir -p "$out/share/kwok"
kwok_dir="$(mod_dir "sigs.k8s.io/kwok@$kwok_version")"
cp "$kwok_dir"/kustomize/stage/node/fast/node-*.yaml "$kwok_dir"/kustomize/stage/pod/fast/pod-*.yaml "$out/share/kwok/"
chmod -R u+w "$out/share/kwok"

echo "kube-tools: building pulumi-resource-kubernetes ($provider_version)"
src="$out/src/provider-v4"
rm -rf "$src" && mkdir -p "$out/src"
cp -r "$(mod_dir "github.com/pulumi/pulumi-kubernetes/provider/v4@$provider_version")" "$src"
chmod -R u+w "$src"
cmd="$src/cmd/pulumi-resource-kubernetes"
(cd "$root/tools/pulumi-kubernetes" && "${build[@]}" -o "$out/src/generate" "$cmd/generate.go")
(cd "$cmd" && VERSION="$provider_semver" "$out/src/generate")
(cd "$root/tools/pulumi-kubernetes" && "${build[@]}" -o "$bin/pulumi-resource-kubernetes" \
  -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$provider_semver" \
  github.com/pulumi/pulumi-kubernetes/provider/v4/cmd/pulumi-resource-kubernetes)

rm -rf "$out/share/crds" && mkdir -p "$out/share/crds"
gw_dir="$(mod_dir "sigs.k8s.io/gateway-api@$gateway_api_version")"
install -m 0644 "$gw_dir/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" "$out/share/crds/"

echo "$stamp" > "$out/.stamp"
echo "kube-tools: built $("$bin/kube-apiserver" --version), etcd $("$bin/etcd" --version | head -1 | awk '{print $3}'), kwok $kwok_version"
