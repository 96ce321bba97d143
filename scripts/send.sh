#!/usr/bin/env bash
# `npm run send -- <user.created|user.updated|user.deleted|payload.json> [--id ID] [--url URL]`:
# signs a Clerk payload with the dev signing secret exactly as Svix does and
# posts it to the local relay (http://127.0.0.1:8788, started by `npm run dev`).
# See examples/send.rs.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
# npm runs scripts from the package root; a relative payload path is taken
# from where `npm run` was typed.
cd "${INIT_CWD:-$PWD}"
exec cargo run --quiet --manifest-path "$ROOT/Cargo.toml" --example send -- "$@"
