# Source this file (`. scripts/env.sh`) to run `pulumi` and `llmops` from the repository
# by hand, exactly as `make` does. Nothing here touches your home directory.
_llmops_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export LLMOPS_ROOT="$_llmops_root"
# .kube-tools/bin (`make kube-tools`): the kube target's control plane and the pulumi-kubernetes provider plugin.
export PATH="$_llmops_root/bin:$_llmops_root/.venv/bin:$_llmops_root/.kube-tools/bin:$PATH"
export PULUMI_HOME="$_llmops_root/.pulumi/home"
# Local file backend: state lives in a git-ignored folder. AWS stacks log in to S3 instead
# (see README, "Backends and secrets"); set PULUMI_BACKEND_URL before sourcing to override.
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$_llmops_root/.pulumi/state}"
case "$PULUMI_BACKEND_URL" in file://*) mkdir -p "${PULUMI_BACKEND_URL#file://}" ;; esac
# Dev-only passphrase for the local stack's secrets provider. Override it for anything real.
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-llmops-local-dev-only}"
export PULUMI_SKIP_UPDATE_CHECK=true
# Provider plugins are never downloaded: the local target needs none, and AWS stacks
# install theirs explicitly in CI (`pulumi plugin install`).
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# Models and data are offline by design on this machine; real deployments load from the hub.
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE-1}"
export TRANSFORMERS_NO_ADVISORY_WARNINGS=1
unset _llmops_root
