#!/usr/bin/env bash
# `make test-arm64`: does the device side install and run on arm64 Debian Bookworm
# (the Raspberry Pi OS base: system numpy 1.24, the distribution's pygame on a
# system SDL2 with KMSDRM), under qemu-user-static?
#
#   bash tools/arm64/test-arm64.sh      (root; env ARM64_CACHE, ARM64_MIRROR, PYTHON)
#
# The host builds (or reuses) the root, downloads the aarch64 wheels the box gets
# from PyPI and builds the project's wheel from this working tree; the root then
# installs them offline into a --system-site-packages venv, as a deploy does, and
# runs tools/arm64/run-inside.sh: device-side tests, `device check`, `classify`, a
# 10 s `run --sim`, and regression checks for the pygame/SDL and lgpio findings.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# Outside the clone by default, so CI's fresh clone reuses the root a previous run built.
CACHE="${ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/saysee-arm64}"
PYTHON="${PYTHON:-python3}"
# What a deploy installs from PyPI on top of apt: systemd/box-requirements.txt. Plus
# rpi-lgpio, a Pi 5's RPi.GPIO: Pi OS has it as python3-rpi-lgpio, Debian has not.
BOX_REQS="$REPO/systemd/box-requirements.txt"
EXTRA_WHEELS=(rpi-lgpio)
[[ -f "$BOX_REQS" ]] || { echo "test-arm64: $BOX_REQS: missing (what the box installs with pip)" >&2; exit 1; }
# Bookworm has glibc 2.36: every manylinux tag up to it installs there.
PLATFORMS=(--platform manylinux2014_aarch64)
for minor in $(seq 17 36); do PLATFORMS+=(--platform "manylinux_2_${minor}_aarch64"); done

t0=$SECONDS
say() { echo "test-arm64: $*" >&2; }
die() { echo "test-arm64: $*" >&2; exit 1; }

ROOT="$(bash "$HERE/build-root.sh" "$CACHE" | tail -n1)"
[[ -d "$ROOT" ]] || exit 1

# ------------------------------------------------------------------ wheels (host)
# numpy is the system one (python3-numpy); pin the download to it so pip download
# resolves against what the box has instead of fetching numpy 2.
sys_numpy="$(chroot "$ROOT" dpkg-query -W -f='${Version}' python3-numpy | sed 's/^[0-9]*://; s/-.*//')"
wkey="$( { cat "$BOX_REQS"; printf '%s\n' "${EXTRA_WHEELS[@]}" "numpy==$sys_numpy" "${PLATFORMS[@]}"; } | sha256sum | cut -c1-16)"
WHEELS="$CACHE/wheels-$wkey"
if [[ ! -f "$WHEELS/.complete" ]]; then
    rm -rf "$CACHE"/wheels-*
    mkdir -p "$WHEELS"
    say "downloading aarch64 wheels: systemd/box-requirements.txt ${EXTRA_WHEELS[*]}"
    printf 'numpy==%s\n' "$sys_numpy" > "$WHEELS/constraints.txt"
    "$PYTHON" -m pip download -q --dest "$WHEELS" "${PLATFORMS[@]}" --python-version 3.11 \
        --implementation cp --abi cp311 --abi abi3 --abi none --only-binary=:all: \
        -c "$WHEELS/constraints.txt" -r "$BOX_REQS" "${EXTRA_WHEELS[@]}" \
        2> >(grep -v '^WARNING: Location' >&2) \
        || die "pip download of the aarch64 wheels failed (systemd/box-requirements.txt ${EXTRA_WHEELS[*]})"
    touch "$WHEELS/.complete"
fi

# ------------------------------------------------------------------ stage the run
RUN="$ROOT/opt/saysee-check"
rm -rf --one-file-system "$RUN"
mkdir -p "$RUN/src" "$RUN/wheels" "$RUN/ro"
# This working tree as git sees it (tracked + untracked, not ignored): no venvs, no caches.
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$REPO" ls-files -z --cached --others --exclude-standard \
        | tar -C "$REPO" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$RUN/src" -xf -
else
    tar -C "$REPO" --exclude='./.venv*' --exclude=./.git -cf - . | tar -C "$RUN/src" -xf -
fi
cp "$WHEELS"/*.whl "$RUN/wheels/"
cp "$HERE/run-inside.sh" "$HERE/emulator-limits.txt" "$HERE/emulator-slow.txt" "$RUN/"
# The project's wheel, built from a scratch copy so the tree stays clean.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
cp -a "$RUN/src/." "$build/"
"$PYTHON" -m pip wheel -q --no-deps -w "$RUN/wheels" "$build" 2> >(grep -v '^WARNING: Location' >&2) \
    || die "building the project's wheel failed (pip wheel --no-deps .)"
# The emulated CPU is a real board's, in both halves: qemu's default "max" CPU has
# every extension, XNNPACK (inside every TFLite runtime) then picks int8 kernels that
# qemu 7.2 gets wrong (every window came out "drilling"), and qemu-user shows arm64
# programs the host's x86 /proc/cpuinfo, from which XNNPACK's cpuinfo finds no ARM
# core and segfaults (or, with a faked file naming another core, runs instructions
# the emulated one lacks). So: QEMU_CPU plus a matching /proc/cpuinfo per board.
cpuinfo() {  # cpuinfo VARIANT PART REVISION FEATURES
    local i
    for ((i = 0; i < $(getconf _NPROCESSORS_CONF); i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
            "$i" "$4" "$1" "$2" "$3"
    done
}
cpuinfo 0x4 0xd0b 1 "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" \
    > "$RUN/cpuinfo-cortex-a76"   # Raspberry Pi 5
cpuinfo 0x0 0xd08 3 "fp asimd evtstrm crc32 cpuid" > "$RUN/cpuinfo-cortex-a72"   # Raspberry Pi 4
# A deployed box's layout: models/ and assets/ under /opt/saysee/current (SAYSEE_HOME).
mkdir -p "$ROOT/opt/saysee"
ln -sfn /opt/saysee-check/src "$ROOT/opt/saysee/current"
say "host side ready in $((SECONDS - t0)) s; running inside the arm64 root"

# ------------------------------------------------------------------ run inside
# enter CPU ARGS...: run-inside.sh ARGS in the root, on that emulated CPU. A private
# mount namespace: every mount disappears when the run ends, even if it is killed,
# so the cached root never keeps a mount.
enter() {
    local cpu="$1"
    shift
    timeout "${ARM64_TIMEOUT:-2400}" unshare --mount --propagation private -- bash -c '
        set -e
        R="$1" CPU="$2"
        shift 2
        mount -t proc proc "$R/proc"
        mount --bind "$R/opt/saysee-check/cpuinfo-$CPU" "$R/proc/cpuinfo"
        mount --rbind /dev "$R/dev"          # ptys for the virtual synth, /dev/shm
        mount --rbind /sys "$R/sys"
        mount -t tmpfs tmpfs "$R/tmp"
        mount -t tmpfs tmpfs "$R/run"
        # A read-only working directory, like the unit under ProtectSystem=strict.
        mount --bind "$R/opt/saysee-check/ro" "$R/opt/saysee-check/ro"
        mount -o remount,bind,ro "$R/opt/saysee-check/ro"
        exec chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 TERM=dumb QEMU_CPU="$CPU" bash /opt/saysee-check/run-inside.sh "$@"
    ' _ "$ROOT" "$cpu" "$@"
}
rc=0 rc4=0
enter cortex-a76 pi5 || rc=$?
# A Pi 4 (Cortex-A72, no dot product): the same model must give the same answers.
enter cortex-a72 pi4 || rc4=$?
if [[ $rc == 124 || $rc4 == 124 ]]; then say "timed out after ${ARM64_TIMEOUT:-2400} s"; fi
((rc)) || rc=$rc4
say "total $((SECONDS - t0)) s"
exit $rc
