#!/usr/bin/env bash
# Builds the Debian packages vhub (the hub, its service, user and config)
# and vnic (the client and its template unit) into target/debian/, and
# prints their paths, one per line. Install on Debian 12 with
#   sudo apt install ./target/debian/vhub_*.deb      # or dpkg -i
#
#   1. cargo build --profile deb --no-default-features: the release profile
#      without debug info, stripped (release keeps 90-115 MB of it per
#      binary, for perf), linked to Debian's libssl3 instead of the
#      vendored OpenSSL (the packages then depend on libssl3 and get its
#      security updates);
#   2. `vhub generate man|completions` and vnic's write the man pages and
#      bash/zsh/fish completions to target/deb-assets/, next to the copies
#      of deploy/systemd's sysusers and tmpfiles files that cargo-deb wants
#      under their installed names;
#   3. cargo deb --no-build for each (hub/Cargo.toml and client/Cargo.toml,
#      [package.metadata.deb]).
#
# The deb profile is defined here (CARGO_PROFILE_DEB_*, read by cargo and
# cargo-deb alike) and builds into target/deb/: half the time of a release
# build with debug info, and target/release/ stays the default build.
#
# Needs cargo-deb (`cargo install cargo-deb --locked`), libssl-dev,
# pkg-config and dpkg-dev (dpkg-shlibdeps computes the dependencies).
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

export CARGO_PROFILE_DEB_INHERITS=release CARGO_PROFILE_DEB_DEBUG=false CARGO_PROFILE_DEB_STRIP=true
bins=${CARGO_TARGET_DIR:-target}/deb
cargo build --profile deb --locked --no-default-features -p hub -p client --bin vhub --bin vnic

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

debs=()
for crate in hub client; do
    # cargo-deb prints the package's path on stdout, warnings on stderr;
    # it warns about every asset outside target/release/ (ours are made
    # above, not by Cargo), which says nothing here.
    if ! deb=$(cargo deb -p "$crate" --no-build --profile deb 2>"$assets/cargo-deb.log"); then
        cat "$assets/cargo-deb.log"
        exit 1
    fi
    grep -v "Only source paths starting with exactly 'target/release/'" "$assets/cargo-deb.log" || true
    deb=${deb##*$'\n'}
    depends=$(dpkg-deb -f "$deb" Depends)
    if [[ $depends != *libssl3* ]]; then
        echo "build-deb.sh: $deb does not depend on libssl3 (Depends: $depends):" \
            "its binary links no system OpenSSL" >&2
        exit 1
    fi
    debs+=("$deb")
done
printf '%s\n' "${debs[@]}" >&3
