#!/usr/bin/env bash
# Install the Pulumi resource plugins the AWS stacks need, at the versions of the Python
# SDKs pinned in requirements.lock (automatic plugin download is off in scripts/env.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=../env.sh
. "$root/scripts/env.sh"
for package in pulumi-aws pulumi-kubernetes; do
  version="$("$root/.venv/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$package")"
  pulumi plugin install resource "${package#pulumi-}" "$version"
done
