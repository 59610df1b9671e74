#!/usr/bin/env bash
# The test command of the README and of CI. Runs every test of the workspace
# (privileged tests need root: they create their own network namespaces and
# skip, saying why, when not root), then the legacy-cipher build's TLS tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# --no-fail-fast: one failing test binary does not hide the others' results.
cargo test --workspace --locked --no-fail-fast "$@"
# RC4-SHA/RC4-MD5 exist only in a build with the legacy-ciphers feature
# (vendored OpenSSL with weak-crypto + legacy). Test that build too.
cargo test -p certs --features legacy-ciphers --locked "$@"
