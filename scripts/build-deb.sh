#!/usr/bin/env bash
# Builds the Debian packages vhub (the hub, its service, user and config)
# and vnic (the client and its template unit) into target/debian/, and
# prints their paths, one per line. Install on Debian 12 with
#   sudo apt install ./target/debian/vhub_*.deb      # or dpkg -i
#
#   1. cargo build --release --no-default-features: links Debian's libssl3
#      instead of the vendored OpenSSL (the packages then depend on libssl3
#      and get its security updates);
#   2. `vhub generate man|completions` and vnic's write the man pages and
#      bash/zsh/fish completions to target/deb-assets/, next to the copies
#      of deploy/systemd's sysusers and tmpfiles files that cargo-deb wants
#      under their installed names;
#   3. cargo deb --no-build --strip for each (hub/Cargo.toml and
#      client/Cargo.toml, [package.metadata.deb]): --strip because the
#      release profile keeps full debug info (90-115 MB per binary) for perf.
#
# Needs cargo-deb (`cargo install cargo-deb --locked`), libssl-dev,
# pkg-config and dpkg-dev (dpkg-shlibdeps computes the dependencies).
# The build shares target/release with `cargo build --release` (only the
# OpenSSL crates and the binaries differ), so it leaves target/release/vhub
# and vnic linked to the system OpenSSL until the next default build.
# scripts/deb-check.sh installs the result into a throw-away root and
# checks it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null; then
    echo "build-deb.sh: cargo-deb missing: cargo install cargo-deb --locked" >&2
    exit 1
fi

# Everything but the packages' paths goes to stderr.
exec 3>&1 1>&2

bins=${CARGO_TARGET_DIR:-target}/release
cargo build --release --locked --no-default-features -p hub -p client --bin vhub --bin vnic

assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets"/{man,completions,sysusers.d,tmpfiles.d}
for b in vhub vnic; do
    "$bins/$b" generate man --out "$assets/man" >/dev/null
    "$bins/$b" generate completions --out "$assets/completions" >/dev/null
done
# -n: no name or time stamp in the .gz, so the package does not change
# when nothing did.
gzip -9n "$assets"/man/*.1
cp deploy/systemd/vhub.sysusers.conf "$assets/sysusers.d/vhub.conf"
cp deploy/systemd/vhub.tmpfiles.conf "$assets/tmpfiles.d/vhub.conf"

# cargo-deb warns about every asset outside target/release/ (ours are
# made above, not by Cargo) and about the release profile's debug info
# (--strip removes it): both say nothing here. The rest is shown.
quiet() {
    grep -v -e "Only source paths starting with exactly 'target/release/'" \
        -e 'the debug symbols may be bloated' -e 'debug = "line-tables-only"` or --separate-debug-symbols' \
        "$1" || true
}
debs=()
for crate in hub client; do
    # cargo-deb prints the package's path on stdout, warnings on stderr.
    if ! deb=$(cargo deb -p "$crate" --no-build --strip 2>"$assets/cargo-deb.log"); then
        cat "$assets/cargo-deb.log"
        exit 1
    fi
    quiet "$assets/cargo-deb.log"
    deb=${deb##*$'\n'}
    # Another build of the workspace (default features: vendored OpenSSL)
    # may have replaced target/release/<bin> between our build and
    # cargo-deb's copy: the package would not depend on libssl3 then.
    depends=$(dpkg-deb -f "$deb" Depends)
    if [[ $depends != *libssl3* ]]; then
        echo "build-deb.sh: $deb does not depend on libssl3 (Depends: $depends):" \
            "its binary is not the --no-default-features build; run this script again" >&2
        exit 1
    fi
    debs+=("$deb")
done
printf '%s\n' "${debs[@]}" >&3
