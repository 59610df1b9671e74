#!/usr/bin/env bash
# Builds the Debian packages (scripts/build-deb.sh) and installs them into a
# throw-away root: an overlay over this machine's / whose writes go to a
# tmpfs, in private mount, PID and network namespaces. In that root:
#
#   - dpkg -i vhub vnic (maintainer scripts: sysusers, tmpfiles, enable);
#   - vhub --version, vnic --version; both link the system's libssl.so.3
#     and carry no debug info and no symbol table (stripped);
#   - dpkg -L lists what the packages should hold, nothing else;
#     /etc/vhub/vhub.toml is a conffile; vhub.service is enabled;
#   - the vhub user and group exist, /etc/vhub and /var/lib/vhub have their
#     owners and modes (sysusers and tmpfiles ran);
#   - systemd-analyze verify of the installed units, without a warning;
#   - man vhub / man vnic render, every page without a groff warning; the
#     bash completions load;
#   - vhub.service's ExecStart, started as systemd would (its User, Group,
#     Environment, UMask, AmbientCapabilities and CapabilityBoundingSet,
#     read from the installed unit; systemd is not PID 1 here), serves
#     https://127.0.0.1/ and /healthz on the installed config's ports (free:
#     the network namespace is new), creates its key 0600, and exits 0 on
#     SIGTERM;
#   - dpkg --purge removes both cleanly.
#
# The host must not change: its dpkg database, users and groups and the
# packages' paths are compared before and after. Everything the check
# mounts or starts lives in the namespaces and dies with them.
#
# Run by scripts/test.sh. Like the Rust tests (test-support), it skips
# when it cannot run here (not root, a tool missing), saying why and
# appending the reason to VHUB_SKIP_LOG; under VHUB_TEST_STRICT=1 (CI)
# that is a failure instead.
set -euo pipefail
cd "$(dirname "$0")/.."
self=$PWD/scripts/deb-check.sh

fail() {
    echo "deb-check: FAILED: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------
# Inside the namespaces: $2 is an empty directory for the root, then the
# packages. Runs as PID 1 of the new PID namespace: when it exits, every
# process it started is killed, and its mounts go with the mount namespace.
if [[ ${1:-} == --inside ]]; then
    work=$2
    shift 2
    mount -t tmpfs -o mode=0755 tmpfs "$work"
    mkdir "$work"/{upper,ovl,root,log}
    r=$work/root
    mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/ovl" "$r"
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mount -t tmpfs -o mode=0755 tmpfs "$r/run"
    mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
    ip link set lo up

    in_root() {
        chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
    }
    ok() { echo "deb-check: ok: $*"; }

    pkgs=()
    for deb in "$@"; do
        cp "$deb" "$r/tmp/"
        pkgs+=("/tmp/${deb##*/}")
    done
    in_root dpkg -i "${pkgs[@]}" || fail "dpkg -i ${pkgs[*]}"
    ok "dpkg -i ${pkgs[*]##*/}"

    version=$(dpkg-deb -f "$1" Version)
    version=${version%-*}
    for b in vhub vnic; do
        out=$(in_root "$b" --version) || fail "$b --version"
        [[ $out == *"$version"* ]] || fail "$b --version does not say $version: $out"
        # .debug_gdb_scripts is loaded (it names Rust's gdb pretty-printers),
        # not debug info: strip keeps it.
        sections=$(in_root readelf -S --wide "/usr/bin/$b")
        if grep -E '\.debug_|\.symtab' <<<"$sections" | grep -v '\.debug_gdb_scripts'; then
            fail "/usr/bin/$b is not stripped (sections above)"
        fi
        in_root readelf -d "/usr/bin/$b" | grep -q 'NEEDED.*\[libssl\.so\.3\]' ||
            fail "/usr/bin/$b does not link the system's libssl.so.3"
        ok "$b --version: ${out%%$'\n'*}; stripped; links libssl.so.3 ($(in_root stat -c %s "/usr/bin/$b") bytes)"
    done

    # What each package holds, besides directories: exactly these, plus
    # the subcommands' man pages.
    declare -A expected=(
        [vhub]="/usr/bin/vhub /etc/vhub/vhub.toml
                /usr/lib/systemd/system/vhub.service
                /usr/lib/sysusers.d/vhub.conf /usr/lib/tmpfiles.d/vhub.conf
                /usr/share/man/man1/vhub.1.gz
                /usr/share/bash-completion/completions/vhub
                /usr/share/zsh/vendor-completions/_vhub
                /usr/share/fish/vendor_completions.d/vhub.fish
                /usr/share/doc/vhub/copyright /usr/share/doc/vhub/README.md"
        [vnic]="/usr/bin/vnic /usr/lib/systemd/system/vnic@.service
                /usr/share/man/man1/vnic.1.gz
                /usr/share/bash-completion/completions/vnic
                /usr/share/zsh/vendor-completions/_vnic
                /usr/share/fish/vendor_completions.d/vnic.fish
                /usr/share/doc/vnic/copyright /usr/share/doc/vnic/README.md"
    )
    for p in vhub vnic; do
        listed=$(in_root dpkg -L "$p")
        files=()
        while read -r f; do
            [[ -d $r$f ]] || files+=("$f")
        done <<<"$listed"
        for f in ${expected[$p]}; do
            printf '%s\n' "${files[@]}" | grep -qxF "$f" || fail "dpkg -L $p does not list $f:"$'\n'"$listed"
        done
        for f in "${files[@]}"; do
            [[ " ${expected[$p]//$'\n'/ } " == *" $f "* || $f == /usr/share/man/man1/$p-*.1.gz ]] ||
                fail "dpkg -L $p lists $f, which the package should not hold"
        done
        ok "dpkg -L $p: ${#files[@]} files, as expected"
    done
    conffiles=$(in_root dpkg-query -W -f='${Conffiles}' vhub)
    [[ $conffiles == *" /etc/vhub/vhub.toml "* ]] || fail "/etc/vhub/vhub.toml is not a conffile: $conffiles"
    [[ -L $r/etc/systemd/system/multi-user.target.wants/vhub.service ]] ||
        fail "vhub.service was not enabled by the postinst (deb-systemd-helper)"
    ok "/etc/vhub/vhub.toml is a conffile; vhub.service is enabled"

    user=$(in_root getent passwd vhub) || fail "no user vhub: systemd-sysusers did not run"
    IFS=: read -r _ _ uid _ _ home shell <<<"$user"
    ((uid < 1000)) && [[ $home == /var/lib/vhub && $shell == */nologin ]] ||
        fail "user vhub is not a system user with home /var/lib/vhub and no shell: $user"
    in_root getent group vhub >/dev/null || fail "no group vhub"
    for want in "/etc/vhub 750 root:vhub" "/var/lib/vhub 700 vhub:vhub"; do
        read -r path mode owner <<<"$want"
        got=$(in_root stat -c '%a %U:%G' "$path") || fail "$path missing: systemd-tmpfiles did not run"
        [[ $got == "$mode $owner" ]] || fail "$path is $got, not $mode $owner"
    done
    ok "user vhub ($user); /etc/vhub 0750 root:vhub, /var/lib/vhub 0700 vhub:vhub"

    # The tool must complain about a broken unit here, or its silence means
    # nothing. The template gets an instance name, as systemctl gives it.
    printf '[Service]\nExecStrat=/bin/true\nExecStart=/bin/true\n' >"$r/tmp/bad.service"
    warnings=$(in_root systemd-analyze verify /tmp/bad.service 2>&1) || true
    [[ $warnings == *ExecStrat* ]] || fail "systemd-analyze verify does not report unknown keys here: $warnings"
    cp "$r/lib/systemd/system/vnic@.service" "$r/tmp/vnic@office.service"
    for unit in /lib/systemd/system/vhub.service /tmp/vnic@office.service; do
        warnings=$(in_root systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $warnings"
        [[ -z $warnings ]] || fail "systemd-analyze verify $unit warns: $warnings"
    done
    ok "systemd-analyze verify vhub.service vnic@.service: no warnings"

    for p in vhub vnic; do
        page=$(in_root env MANWIDTH=80 MANPAGER=cat man "$p" 2>&1) || fail "man $p: $page"
        grep -q '^NAME' <<<"$page" && grep -q "^ *$p" <<<"$page" || fail "man $p renders no NAME section: $page"
        for f in $(in_root dpkg -L "$p" | grep '^/usr/share/man/man1/'); do
            warnings=$(in_root env MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null) || fail "man -l $f: $warnings"
            [[ -z $warnings ]] || fail "man -l $f: groff warns: $warnings"
        done
        complete=$(in_root bash -c "source /usr/share/bash-completion/completions/$p; complete -p $p") ||
            fail "the bash completion of $p does not load"
        [[ $complete == *" $p" ]] || fail "the bash completion of $p: $complete"
        ok "man $p renders ($(wc -l <<<"$page") lines), all its pages without warnings; $complete"
    done

    # vhub.service's command as systemd would run it, from the installed
    # unit: the fields it sets for the process, mapped to setpriv.
    unit=$r/lib/systemd/system/vhub.service
    field() {
        local v
        v=$(sed -n "s/^$1=//p" "$unit")
        [[ -n $v ]] || fail "vhub.service has no $1="
        echo "$v"
    }
    exec_start=$(field ExecStart)
    caps=$(field AmbientCapabilities)
    caps=${caps,,}
    caps=+${caps// /,+}
    bounding=$(field CapabilityBoundingSet)
    bounding=${bounding,,}
    bounding=-all,+${bounding// /,+}
    setpriv=(setpriv --reuid="$(field User)" --regid="$(field Group)" --init-groups
        --inh-caps="${caps//cap_/}" --ambient-caps="${caps//cap_/}"
        --bounding-set="${bounding//cap_/}" --no-new-privs)
    config=$r/etc/vhub/vhub.toml
    port() { sed -n "s/^$1 *= *\"[^\"]*:\([0-9]*\)\".*/\1/p" "$config"; }
    https=$(port listen)
    metrics=$(port metrics_listen)
    [[ -n $https && -n $metrics ]] || fail "no listen / metrics_listen port in /etc/vhub/vhub.toml"
    # The README's way to add a user on a packaged hub (sudo -u vhub).
    in_root setpriv --reuid=vhub --regid=vhub --init-groups -- \
        vhub user add alice -c /etc/vhub/vhub.toml --password-file - <<<"deb-check-password" >/dev/null ||
        fail "vhub user add as user vhub"
    users=$(in_root stat -c '%U %a' /var/lib/vhub/users.toml) || fail "vhub user add wrote no /var/lib/vhub/users.toml"
    [[ $users == "vhub 600" ]] || fail "/var/lib/vhub/users.toml is $users, not vhub 600"
    # shellcheck disable=SC2086 # ExecStart and Environment are word lists
    chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin $(field Environment) \
        "${setpriv[@]}" -- sh -c "umask $(field UMask) && cd / && exec $exec_start" \
        >"$work/log/vhub" 2>&1 &
    pid=$!
    for ((i = 0; i < 200; i++)); do
        curl -sk -o /dev/null "https://127.0.0.1:$https/" && break
        kill -0 "$pid" 2>/dev/null || fail "$exec_start exited: $(cat "$work/log/vhub")"
        sleep 0.1
    done
    code=$(curl -sk -o "$work/log/page" -w '%{http_code} %{content_type}' "https://127.0.0.1:$https/") ||
        fail "curl -k https://127.0.0.1:$https/: no answer in 20 s: $(cat "$work/log/vhub")"
    [[ $code == "200 text/html"* ]] || fail "https://127.0.0.1:$https/ answered $code"
    health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics/healthz") || true
    [[ $health == 200 ]] || fail "http://127.0.0.1:$metrics/healthz answered $health"
    key=$(in_root stat -c '%a %U' /var/lib/vhub/ca.key) || fail "no /var/lib/vhub/ca.key"
    [[ $key == "600 vhub" ]] || fail "/var/lib/vhub/ca.key is $key, not 600 vhub"
    kill -TERM "$pid"
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && fail "vhub did not exit within 15 s of SIGTERM (TimeoutStopSec)"
    rc=0
    wait "$pid" || rc=$?
    ((rc == 0)) || fail "vhub exited with status $rc on SIGTERM: $(cat "$work/log/vhub")"
    ok "vhub user add as vhub: users.toml $users; $exec_start as $(field User) (ambient $caps):" \
        "https://127.0.0.1:$https/ $code, /healthz 200, ca.key 600 vhub; SIGTERM: exit 0"

    in_root dpkg --purge vnic vhub || fail "dpkg --purge vnic vhub"
    for f in /usr/bin/vhub /usr/bin/vnic /etc/vhub/vhub.toml /etc/systemd/system/multi-user.target.wants/vhub.service; do
        [[ ! -e $r$f && ! -L $r$f ]] || fail "$f is left after dpkg --purge"
    done
    ok "dpkg --purge vnic vhub"
    exit 0
fi

# ---------------------------------------------------------------------------
# Outside: can it run here?
skip_or_fail() {
    local line="SKIP scripts/deb-check.sh: $1"
    if [[ -n ${VHUB_TEST_STRICT:-} && ${VHUB_TEST_STRICT} != 0 ]]; then
        fail "did not run: $1 (VHUB_TEST_STRICT=1: a test that cannot run is a failure, not a skip)"
    fi
    echo "$line" >&2
    if [[ -n ${VHUB_SKIP_LOG:-} ]]; then
        echo "$line" >>"$VHUB_SKIP_LOG"
    fi
    exit 0
}

started=$(date +%s)
[[ $(id -u) == 0 ]] || skip_or_fail "needs root (a mount namespace with an overlay over /, chroot, dpkg -i in it)"
command -v cargo-deb >/dev/null || skip_or_fail "cargo-deb missing: cargo install cargo-deb --locked"
for tool in dpkg-shlibdeps:dpkg-dev pkg-config:pkg-config man:man-db groff:groff-base \
    systemd-analyze:systemd systemd-sysusers:systemd curl:curl readelf:binutils \
    unshare:util-linux setpriv:util-linux ip:iproute2; do
    command -v "${tool%%:*}" >/dev/null || skip_or_fail "${tool%%:*} missing: apt-get install ${tool#*:}"
done
pkg-config --exists openssl || skip_or_fail "the system OpenSSL's headers missing: apt-get install libssl-dev"
grep -qw overlay /proc/filesystems || skip_or_fail "no overlay file system in this kernel (modprobe overlay)"
probe=$(unshare --mount --fork sh -c 'mount -t tmpfs tmpfs /mnt' 2>&1) ||
    skip_or_fail "cannot mount in a new mount namespace here: $probe"

# What the check must not change on this machine.
host_state() {
    local p
    dpkg-query -W -f='${Package} ${Status}\n' vhub vnic 2>&1 || true
    getent passwd vhub || echo "no user vhub"
    getent group vhub || echo "no group vhub"
    for p in /usr/bin/vhub /usr/bin/vnic /etc/vhub /var/lib/vhub /usr/lib/systemd/system/vhub.service \
        /usr/lib/systemd/system/vnic@.service /usr/lib/sysusers.d/vhub.conf /usr/lib/tmpfiles.d/vhub.conf \
        /etc/systemd/system/multi-user.target.wants/vhub.service; do
        if [[ -e $p || -L $p ]]; then echo "present $p"; else echo "absent $p"; fi
    done
    sha256sum /etc/passwd /etc/group /etc/shadow /etc/gshadow /var/lib/dpkg/status
}
before=$(host_state)
if grep -q '^present\|^vhub:' <<<"$before" || dpkg-query -W vhub vnic >/dev/null 2>&1; then
    skip_or_fail "vhub or vnic is installed on this machine: an install leaking out of the check could not be told apart"
fi

debs_out=$(scripts/build-deb.sh) || fail "scripts/build-deb.sh"
mapfile -t debs <<<"$debs_out"
((${#debs[@]} == 2)) || fail "scripts/build-deb.sh printed ${#debs[@]} packages, not 2: ${debs[*]}"
for i in "${!debs[@]}"; do
    debs[i]=$(realpath "${debs[i]}")
done
built=$(date +%s)
for deb in "${debs[@]}"; do
    echo "deb-check: $deb: $(stat -c %s "$deb") bytes; Depends: $(dpkg-deb -f "$deb" Depends)"
done

work=$(mktemp -d /tmp/vhub-deb-check.XXXXXX)
trap 'rmdir "$work"' EXIT
# --kill-child: if this script is killed, so is everything in the namespaces.
rc=0
unshare --mount --pid --net --fork --kill-child -- "$self" --inside "$work" "${debs[@]}" || rc=$?

after=$(host_state)
if [[ $after != "$before" ]]; then
    diff <(echo "$before") <(echo "$after") >&2 || true
    fail "this machine changed during the check (above: before, after)"
fi
((rc == 0)) || fail "in the throw-away root (above)"
echo "deb-check: ok: this machine unchanged (dpkg database, users, groups, the packages' paths)"
echo "deb-check: passed: build $((built - started)) s, install and checks $(($(date +%s) - built)) s"
