#!/usr/bin/env bash
# `npm run bench -- …`: the benchmark on the Node version the project targets (the one the
# suite runs on, scripts/node-env.sh), not whatever Node is first on PATH. Builds dist/ first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/node-env.sh
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
exec node bench/run.mjs "$@"
