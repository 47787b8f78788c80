#!/usr/bin/env bash
# Builds SPIRE's spire-server and spire-agent from source with the Go
# toolchain, once, into a cache directory, and prints that directory.
#
#   .ci/spire.sh            # build if absent, print the bin directory
#   AGENTGUARD_SPIRE_BIN=/path .ci/spire.sh
#
# The integration test in identity/spire_test.go looks for the binaries in
# $AGENTGUARD_SPIRE_BIN, then in the default cache directory below.
set -euo pipefail

version=v1.13.3
bin=${AGENTGUARD_SPIRE_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/agentguard/spire-$version/bin}

if [ -x "$bin/spire-server" ] && [ -x "$bin/spire-agent" ]; then
  echo "$bin"
  exit 0
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(
  cd "$scratch"
  go mod init agentguard.invalid/spirebuild >&2
  go get -tool "github.com/spiffe/spire/cmd/spire-server@$version" >&2
  go get -tool "github.com/spiffe/spire/cmd/spire-agent@$version" >&2
  mkdir -p "$bin"
  GOBIN="$bin" go install github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent >&2
)
echo "$bin"
