#!/usr/bin/env bash
# Runs every test of every Go module in this repository with the race detector.
set -euo pipefail
cd "$(dirname "$0")"
status=0
for m in $(find . -name go.mod -not -path './.git/*' -exec dirname {} \; | sort); do
  echo "== go test -race ./... in $m"
  (cd "$m" && go test -race -count=1 ./...) || status=1
done
exit $status
