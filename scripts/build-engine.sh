#!/usr/bin/env bash
# Build the Pulumi engine (CLI + Python language host) from Go modules into bin/.
#
# Versions are pinned by tools/pulumi/go.mod (CLI) and tools/pulumi-language-python/go.mod
# (language host). The Python shims ship inside the sdk/v3 module of the release that
# matches the pulumi Python SDK pinned in pyproject.toml; they are copied from the Go
# module cache, never committed. A stamp of all inputs skips the rebuild when nothing
# changed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/bin"
actionlint_version="v1.7.12" # checks .github/workflows in the test suite
cli_version="v3.274.1"       # keep in step with tools/pulumi/go.mod
shim_sdk_version="v3.272.0"  # = the pulumi Python SDK in pyproject.toml
mkdir -p "$bin"

stamp_inputs() {
  cat "$root/tools/pulumi/go.mod" "$root/tools/pulumi/go.sum" \
      "$root/tools/pulumi-language-python/go.mod" "$root/tools/pulumi-language-python/go.sum" "$0"
  go version
}
stamp="$(stamp_inputs | sha256sum | cut -d' ' -f1)"
if [[ -f "$bin/.engine-stamp" && "$(cat "$bin/.engine-stamp")" == "$stamp" \
      && -x "$bin/pulumi" && -x "$bin/pulumi-language-python" \
      && -x "$bin/actionlint" && -x "$bin/pulumi-language-python-exec" && -x "$bin/pulumi-resource-pulumi-python" ]]; then
  echo "engine: up to date ($("$bin/pulumi" version))"
  exit 0
fi

export GOFLAGS="-mod=readonly -trimpath"
echo "engine: building pulumi $cli_version (first build takes several minutes)"
(cd "$root/tools/pulumi" && go build -o "$bin/pulumi" \
  -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli_version" \
  github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
echo "engine: building pulumi-language-python"
(cd "$root/tools/pulumi-language-python" && go build -o "$bin/pulumi-language-python" -ldflags "-s -w" \
  github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python)

sdk_dir="$(cd /tmp && GOFLAGS= go mod download -json "github.com/pulumi/pulumi/sdk/v3@$shim_sdk_version" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
install -m 0755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" "$bin/pulumi-resource-pulumi-python"
echo "engine: installing actionlint $actionlint_version"
(cd /tmp && GOFLAGS= GOBIN="$bin" go install "github.com/rhysd/actionlint/cmd/actionlint@$actionlint_version")
echo "$stamp" > "$bin/.engine-stamp"
echo "engine: built $("$bin/pulumi" version)"
