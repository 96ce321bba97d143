# shellcheck shell=bash
# Sourced by the build, run and test scripts. Installs what the Worker build
# needs and is not on the machine, and is quick when everything is there:
#   - the wasm32-unknown-unknown Rust target
#   - worker-build at WORKER_BUILD_VERSION
#   - wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock
#   - the npm packages (wrangler, its esbuild and workerd, binaryen's wasm-opt)
# worker-build would download wasm-bindgen, wasm-opt and esbuild from GitHub;
# the *_BIN variables point it at the copies installed here instead.

WORKER_BUILD_VERSION=0.8.7
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
# No telemetry calls from wrangler: the machines here reach only package registries.
export WRANGLER_SEND_METRICS=false

ensure_tools() {
  local lock_dir="${TMPDIR:-/tmp}/clerk-sync-tools.lock"
  # Two builds started together (the relay and the API) must not both install.
  exec 9>"$lock_dir"
  flock 9

  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    echo "tools: adding the wasm32-unknown-unknown target" >&2
    rustup target add wasm32-unknown-unknown >&2
  fi

  local component
  for component in clippy rustfmt; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      rustup component add "$component" >&2
    fi
  done

  if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
    echo "tools: installing worker-build $WORKER_BUILD_VERSION (a few minutes, once)" >&2
    cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked >&2
  fi

  local bindgen
  bindgen=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' "$ROOT/Cargo.lock")
  if [ -z "$bindgen" ]; then
    echo "tools: no wasm-bindgen version in Cargo.lock" >&2
    return 1
  fi
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$bindgen" ]; then
    echo "tools: installing wasm-bindgen-cli $bindgen (a few minutes, once)" >&2
    # Not --locked: its lock file names a crate version the registry no longer serves.
    cargo install wasm-bindgen-cli --version "$bindgen" --force >&2
  fi

  if [ ! -x "$ROOT/node_modules/.bin/wrangler" ] || [ ! -x "$ROOT/node_modules/binaryen/bin/wasm-opt" ]; then
    echo "tools: npm ci" >&2
    (cd "$ROOT" && npm ci --no-audit --no-fund >&2)
  fi

  flock -u 9

  export WASM_BINDGEN_BIN
  WASM_BINDGEN_BIN=$(command -v wasm-bindgen)
  export WASM_OPT_BIN="$ROOT/node_modules/binaryen/bin/wasm-opt"
  export ESBUILD_BIN="$ROOT/node_modules/esbuild/bin/esbuild"
}
