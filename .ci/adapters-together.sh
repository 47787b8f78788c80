#!/usr/bin/env bash
# Builds one program that imports every adapter (and the OTel log sink's
# module apart), as an application using several frameworks would: their
# requirements must resolve together. ADK v1.2.0 builds only with
# OpenTelemetry before v1.47, so no adapter may require v1.47 or newer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
adapters=$(cd "$root/agentguard/adapters" && ls -d */ | tr -d /)
{
  echo "module example.com/together"
  echo
  echo "go 1.26.0"
  echo
  echo "replace github.com/agentguard/go-sdk => $root"
  for a in $adapters; do
    echo "replace github.com/agentguard/go-sdk/agentguard/adapters/$a => $root/agentguard/adapters/$a"
  done
} > "$dir/go.mod"
{
  echo "package main"
  echo
  echo "import ("
  for a in $adapters; do
    echo "	_ \"github.com/agentguard/go-sdk/agentguard/adapters/$a\""
  done
  echo ")"
  echo
  echo "func main() {}"
} > "$dir/main.go"
cd "$dir"
for a in $adapters; do
  go mod edit -require "github.com/agentguard/go-sdk/agentguard/adapters/$a@v0.0.0"
done
go mod edit -require github.com/agentguard/go-sdk@v0.0.0
go mod tidy >/dev/null
go build -o /dev/null .
echo "ok: $(echo $adapters | wc -w) adapters build together with $(go list -m go.opentelemetry.io/otel)"
