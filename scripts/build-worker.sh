#!/usr/bin/env bash
# The `[build] command` of both wrangler.toml files: installs what is
# missing (see tools.sh), then builds the Worker in the current directory.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
ensure_tools
exec worker-build --release "$@"
