#!/usr/bin/env bash
# Records the error text of real Terraform (bin/terraform, v1.5.7) that the
# diagnostics parser is tested against. Run from anywhere:
#   internal/provision/testdata/diagnostics/record.sh
# The "already exists" text comes from a local-exec provisioner that prints
# an AlreadyExists error the way a gRPC provider reports one (the Nebius
# provider is not reachable from here); everything around it — the box,
# "with <address>,", "on <file> line <n>", the -json diagnostic with its
# "address" — is Terraform's own.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
tf="${SOPILOT_TERRAFORM:-$repo/bin/terraform}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/cli.tfrc" <<'EOF'
disable_checkpoint = true
provider_installation {
  direct {
    exclude = ["*/*/*"]
  }
}
EOF
export TF_CLI_CONFIG_FILE="$work/cli.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1

# Seed problem 4: provider-defined functions on Terraform 1.5.7 (as a user
# sees it in a terminal: colour and box).
cp -r "$here/../provider-functions" "$work/pf"
(cd "$work/pf" && "$tf" init -input=false >/dev/null 2>"$here/missing-newline.txt" || true)

# Seed problem 7: a module directory that is not there.
cp -r "$here/../missing-module" "$work/mm"
(cd "$work/mm" && "$tf" init -input=false -no-color >/dev/null 2>"$here/unreadable-module.txt" || true)

# Seed problem 8: resources that already exist.
cp -r "$here/../already-exists" "$work/ae"
(cd "$work/ae" && "$tf" init -input=false >/dev/null &&
  { "$tf" apply -input=false -auto-approve >/dev/null 2>"$here/already-exists.txt" || true; } &&
  rm -f terraform.tfstate* &&
  { "$tf" apply -input=false -auto-approve -json >"$here/already-exists.jsonl" 2>/dev/null || true; })

# A successful apply's -json stream, for the progress parser.
mkdir -p "$work/ok"
cat >"$work/ok/main.tf" <<'EOF'
resource "terraform_data" "a" {
  input = 1
}
resource "terraform_data" "b" {
  for_each = toset(["training", "inference"])
  input    = each.key
}
output "slurm_login_ip" {
  value = "203.0.113.10"
}
EOF
(cd "$work/ok" && "$tf" init -input=false >/dev/null &&
  "$tf" plan -input=false -json -out=tfplan >"$here/plan-ok.jsonl" &&
  "$tf" apply -input=false -json tfplan >"$here/apply-ok.jsonl")

# Importing over an address that is already managed.
(cd "$work/ok" && { "$tf" import -input=false -no-color terraform_data.a some-id >/dev/null 2>"$here/already-managed.txt" || true; })
# Strip the run-specific temp directory from the recordings.
sed -i "s#$work#/tmp/work#g" "$here"/*.txt "$here"/*.jsonl
