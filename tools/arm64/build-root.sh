#!/usr/bin/env bash
# An arm64 Debian Bookworm root (the Raspberry Pi OS base) for `make test-arm64`.
#
#   bash tools/arm64/build-root.sh CACHE_DIR     -> prints the root's path on the last line
#
# 1. installs its tools with apt when missing (mmdebstrap, qemu-user-static,
#    binfmt-support, arch-test): needs root, like the chroot that uses the root;
# 2. mounts binfmt_misc and registers qemu-aarch64 (flag F, so a chroot finds
#    the interpreter), or says in one line why arm64 binaries can't run here;
# 3. builds the root with mmdebstrap from what systemd/bootstrap.sh installs with
#    apt plus pytest for the checks, cached in
#    CACHE_DIR/root-<hash of package list and this script>: a changed list or
#    script builds a new root (and removes the old ones), an unchanged one is reused.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${1:?usage: build-root.sh CACHE_DIR}"
SUITE=bookworm
MIRROR="${ARM64_MIRROR:-http://deb.debian.org/debian}"
# Only what the checks need on top of the box's own list (pygame, pyserial, numpy
# must come from bootstrap.sh's list: the check fails if it stops naming them).
EXTRA_PKGS=(python3-pytest)

say() { echo "test-arm64: $*" >&2; }
die() { echo "test-arm64: $*" >&2; exit 1; }

# ------------------------------------------------------------------ 1. tools
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
[[ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P || -x /usr/bin/qemu-aarch64-static ]] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v arch-test >/dev/null || need+=(arch-test)   # mmdebstrap needs it for a foreign --arch
command -v unshare >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        die "needs root and apt-get to install ${need[*]} (or install them yourself and run as root)"
    fi
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[[ $(id -u) == 0 ]] || die "needs root (mmdebstrap --mode=root, chroot and mounts)"

# ------------------------------------------------------------------ 2. binfmt
BINFMT=/proc/sys/fs/binfmt_misc
if [[ ! -e $BINFMT/register ]]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null \
        || die "cannot mount binfmt_misc on $BINFMT (a container without that privilege?): arm64 binaries can't run here"
fi
if [[ ! -e $BINFMT/qemu-aarch64 ]]; then
    update-binfmts --enable qemu-aarch64 2>/dev/null || true
fi
if [[ ! -e $BINFMT/qemu-aarch64 && -f /usr/lib/binfmt.d/qemu-aarch64.conf ]]; then
    # What systemd-binfmt would do with the same file.
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > "$BINFMT/register" 2>/dev/null || true
fi
[[ -e $BINFMT/qemu-aarch64 ]] || die "cannot register qemu-aarch64 with binfmt_misc: arm64 binaries can't run here"
grep -qx enabled "$BINFMT/qemu-aarch64" || echo 1 > "$BINFMT/qemu-aarch64"
# Without F the kernel looks for the interpreter inside the chroot, which has none.
grep -q '^flags:.*F' "$BINFMT/qemu-aarch64" \
    || die "qemu-aarch64 is registered without the F (fix-binary) flag: re-register it from /usr/lib/binfmt.d/qemu-aarch64.conf"

# ------------------------------------------------------------------ 3. root
# What the box gets from apt, read from bootstrap.sh itself so the two can't drift.
scratch="$(mktemp -d)"
plan="$(bash "$REPO/systemd/bootstrap.sh" --root "$scratch" --dry-run --board other 2>&1)" \
    || die "systemd/bootstrap.sh --dry-run failed: $(tail -n1 <<<"$plan")"
rm -rf "$scratch"
apt_line="$(grep -m1 -- 'apt-get install' <<<"$plan" || true)"
[[ -n "$apt_line" ]] || die "systemd/bootstrap.sh --dry-run printed no 'apt-get install' line to take the package list from"
read -r -a boot_pkgs <<<"${apt_line##*--no-install-recommends}"
mapfile -t PKGS < <(printf '%s\n' "${boot_pkgs[@]}" "${EXTRA_PKGS[@]}" | sort -u)
key="$( { printf '%s\n' "$SUITE" "$MIRROR" "${PKGS[@]}"; cat "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-16)"
ROOT="$CACHE/root-$key"

mkdir -p "$CACHE"
if [[ -f "$ROOT/.saysee-complete" ]]; then
    say "arm64 root cached: $ROOT"
else
    for old in "$CACHE"/root-*; do
        [[ -e "$old" && "$old" != "$ROOT" ]] || continue
        # Never delete through a mount left behind by a killed run.
        if grep -q " $old/" /proc/self/mounts; then die "$old: still has mounts; unmount them first"; fi
        say "removing old root $old"
        rm -rf --one-file-system "$old"
    done
    rm -rf --one-file-system "$ROOT.tmp"
    say "building the arm64 Bookworm root (once per package list; 4-7 min on 2 cores): ${PKGS[*]}"
    start=$SECONDS
    mmdebstrap --mode=root --variant=apt --arch=arm64 --format=directory \
        --aptopt='APT::Install-Recommends "false"' \
        --include="$(IFS=,; echo "${PKGS[*]}")" \
        --customize-hook='chroot "$1" apt-get clean' \
        "$SUITE" "$ROOT.tmp" "$MIRROR" >"$CACHE/mmdebstrap.log" 2>&1 \
        || { tail -n 20 "$CACHE/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $CACHE/mmdebstrap.log)"; }
    printf '%s\n' "${PKGS[@]}" > "$ROOT.tmp/.saysee-packages"
    touch "$ROOT.tmp/.saysee-complete"
    mv "$ROOT.tmp" "$ROOT"
    say "built $ROOT in $((SECONDS - start)) s"
fi
chroot "$ROOT" /bin/true || die "$ROOT: an arm64 binary does not run under qemu (binfmt registration?)"
echo "$ROOT"
