#!/usr/bin/env bash
# Runs inside the arm64 Bookworm root (tools/arm64/test-arm64.sh puts it at
# /opt/saysee-check with src/, wheels/ and a read-only ro/).
#
#   run-inside.sh pi5    everything, on an emulated Cortex-A76
#   run-inside.sh pi4    after pi5: classify again on a Cortex-A72, same answers
#
# Each step prints "ok" or "FAIL" with what went wrong; every step runs, the exit
# code is the number of failed steps, and the last line counts them.
set -uo pipefail
BOARD="${1:-pi5}"

CHECK=/opt/saysee-check
SRC=$CHECK/src
VENV=$CHECK/venv
PY=$VENV/bin/python
SYS=/usr/lib/python3/dist-packages
export PYTHONDONTWRITEBYTECODE=1 SAYSEE_HOME=/opt/saysee/current
# Never the pip wheel's SDL, never a window: the dummy driver unless a step says otherwise.
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
passed=0
failed=()

step() {  # step NAME COMMAND...: run, time, record
    local name="$1" start=$SECONDS rc
    shift
    echo "=== $name"
    "$@"
    rc=$?
    if [[ $rc == 0 ]]; then
        echo "--- ok: $name ($((SECONDS - start)) s)"
        passed=$((passed + 1))
    else
        echo "--- FAIL: $name (exit $rc, $((SECONDS - start)) s)"
        failed+=("$name")
    fi
}

echo "arm64 root ($BOARD, QEMU_CPU=${QEMU_CPU:-}): $(uname -m), $(. /etc/os-release; echo "$PRETTY_NAME"), $(python3 --version)"

finish() {
    if ((${#failed[@]})); then
        echo "failed steps ($BOARD):"
        printf '  %s\n' "${failed[@]}"
    fi
    echo "arm64: ${passed} passed, ${#failed[@]} failed"
    exit $(( ${#failed[@]} > 100 ? 100 : ${#failed[@]} ))
}

if [[ $BOARD == pi4 ]]; then
    same_on_pi4() {
        [[ -s $CHECK/classify-pi5.txt ]] || { echo "no Pi 5 classify output to compare with"; return 1; }
        cd / && "$PY" -m device classify /opt/saysee/current/assets/demo/sounds.wav > "$CHECK/classify-pi4.txt" || return 1
        # Top-1 label per window: int8 kernels differ between the cores, the decision must not.
        if ! diff <(awk '{print $1, $2}' "$CHECK/classify-pi5.txt") <(awk '{print $1, $2}' "$CHECK/classify-pi4.txt"); then
            echo "top-1 classes differ between the Pi 5 (<) and Pi 4 (>) CPUs"
            return 1
        fi
        echo "$(($(wc -l < "$CHECK/classify-pi4.txt") - 1)) windows, same top-1 class on both CPUs"
    }
    step "python -m device classify on a Pi 4 CPU (Cortex-A72) = on a Pi 5 CPU" same_on_pi4
    finish
fi

install() {
    python3 -m venv --system-site-packages "$VENV" || return 1
    # As a deploy does, offline: the project's wheel and systemd/box-requirements.txt
    # (numpy, pygame and pyserial stay the distribution's), then rpi-lgpio standing
    # in for Pi OS's python3-rpi-lgpio.
    "$PY" -m pip install -q --no-index --find-links "$CHECK/wheels" \
        "$CHECK"/wheels/saysee-*.whl -r "$SRC/systemd/box-requirements.txt" &&
    "$PY" -m pip install -q --no-index --find-links "$CHECK/wheels" rpi-lgpio &&
    "$PY" -m pip list --format=freeze 2>/dev/null | sed 's/^/  /'
}
step "install the device package and aarch64 wheels offline into a --system-site-packages venv" install

system_packages() {
    # Finding 1: the box must use the distribution's pygame (system SDL2), and numpy 1.x from apt.
    ( cd / && "$PY" - <<'EOF'
import sys
import numpy, pygame, serial, ai_edge_litert, device
SYS = "/usr/lib/python3/dist-packages/"
for mod in (numpy, pygame, serial):
    print(f"{mod.__name__} {getattr(mod, '__version__', getattr(mod, 'VERSION', '?'))} from {mod.__file__}")
    if not mod.__file__.startswith(SYS):
        sys.exit(f"{mod.__name__} imported from {mod.__file__}, not the distribution's {SYS}")
if not numpy.__version__.startswith("1."):
    sys.exit(f"numpy {numpy.__version__}: the box runs Bookworm's numpy 1.x")
for mod in (ai_edge_litert, device):
    print(f"{mod.__name__} from {mod.__file__}")
    if "/opt/saysee-check/venv/" not in mod.__file__:
        sys.exit(f"{mod.__name__} imported from {mod.__file__}, not the venv the wheel went into")
EOF
    )
}
step "numpy 1.x, pygame, pyserial from apt; ai_edge_litert and device from the venv" system_packages

sdl_kmsdrm() {
    # The SDL that pygame really loaded (from the process's own maps), asked for its drivers.
    ( cd / && "$PY" - <<'EOF'
import ctypes, os, sys
import pygame
libs = sorted({line.split()[-1] for line in open("/proc/self/maps") if "libSDL2-2.0" in line})
if not libs:
    sys.exit("pygame loaded no libSDL2-2.0 (see /proc/self/maps)")
sdl = ctypes.CDLL(libs[0])
sdl.SDL_GetVideoDriver.restype = ctypes.c_char_p
drivers = [sdl.SDL_GetVideoDriver(i).decode() for i in range(sdl.SDL_GetNumVideoDrivers())]
print(f"pygame {pygame.version.ver} on SDL {'.'.join(map(str, pygame.get_sdl_version()))} ({libs[0]}); "
      f"video drivers: {', '.join(drivers)}")
if not libs[0].startswith("/usr/lib/"):
    sys.exit(f"pygame uses {libs[0]}, not the system SDL2")
if "KMSDRM" not in drivers:
    sys.exit("this SDL has no KMSDRM video driver: no screen on Pi OS Lite")
os.environ["SDL_VIDEODRIVER"] = "kmsdrm"
try:
    pygame.display.init()
    print(f"kmsdrm opened: {pygame.display.get_driver()}")
except pygame.error as e:  # no /dev/dri here: expected, shown for the log
    print(f"kmsdrm init here (no GPU): {e}")
EOF
    )
}
step "pygame's SDL has the KMSDRM driver" sdl_kmsdrm

lgpio_lg_wd() {
    # Finding 2: lgpio (behind rpi-lgpio's RPi.GPIO) makes a FIFO in the working
    # directory at import; the unit's is read-only. With LG_WD it goes there instead.
    local wd=/run/saysee-lgwd out
    mkdir -p "$wd"
    cd "$CHECK/ro" || return 1
    # rpi-lgpio reads the board revision from the device tree; off a Pi it takes it
    # from RPI_LGPIO_REVISION (here a Pi 5, 4 GB).
    if out="$(env -u LG_WD RPI_LGPIO_REVISION=c04170 "$PY" -c 'import RPi.GPIO' 2>&1)"; then
        echo "note: RPi.GPIO imported from a read-only cwd without LG_WD (lgpio no longer needs a writable cwd?)"
    else
        echo "without LG_WD, from a read-only cwd (expected to fail): $(tail -n1 <<<"$out")"
    fi
    LG_WD="$wd" RPI_LGPIO_REVISION=c04170 "$PY" - "$wd" <<'EOF'
import glob, os, sys
import RPi.GPIO as GPIO
import lgpio
wd = sys.argv[1]
fifos = glob.glob(os.path.join(wd, ".lgd-nfy*"))
print(f"RPi.GPIO from {GPIO.__file__} (rpi-lgpio), lgpio {getattr(lgpio, 'LGPIO_PY_VERSION', 0):#x}; FIFOs in LG_WD: {fifos}")
if not fifos:
    sys.exit(f"lgpio created no .lgd-nfy FIFO in LG_WD={wd}")
EOF
    local rc=$?
    ((rc)) && { cd /; return $rc; }
    # The project's own import path, as under the unit: LG_WD unset, the service's
    # RuntimeDirectory in $RUNTIME_DIRECTORY, a read-only working directory.
    mkdir -p /run/saysee
    env -u LG_WD RUNTIME_DIRECTORY=/run/saysee RPI_LGPIO_REVISION=c04170 "$PY" - <<'EOF'
import glob, sys
from device.hardware import leds
if not hasattr(leds, "import_gpio"):
    sys.exit("device.hardware.leds.import_gpio is gone: update tools/arm64/run-inside.sh")
gpio = leds.import_gpio("RPi.GPIO")
fifos = glob.glob("/run/saysee/.lgd-nfy*")
print(f"device.hardware.leds imported {gpio.__name__} with LG_WD={leds.os.environ.get('LG_WD')}; FIFOs: {fifos}")
if not fifos:
    sys.exit("the project's GPIO import made no lgpio FIFO in its RuntimeDirectory /run/saysee")
EOF
    rc=$?
    cd / || return 1
    return $rc
}
step "RPi.GPIO (rpi-lgpio) imports from a read-only cwd: with LG_WD, and through device.hardware.leds" lgpio_lg_wd

device_tests() {
    # The source tree (tests import it), on the runtime the box uses, less what
    # can't run under the emulator (emulator-limits.txt says why for each).
    local deselect=() id
    ids() { sed 's/#.*//; s/[[:space:]]*$//; /^[[:space:]]*$/d' "$1"; }
    while read -r id; do deselect+=(--deselect "$id"); done < <(ids "$CHECK/emulator-slow.txt")
    echo "$((${#deselect[@]} / 2)) ids of emulator-slow.txt deselected (pure numpy sweeps, run by make test-device)"
    if "$PY" -c 'import os, pty, serial; serial.Serial(os.ttyname(pty.openpty()[1]), 31250).close()' 2>/dev/null; then
        echo "note: 31250 baud opens here; running the tests emulator-limits.txt lists too"
    else
        local before=${#deselect[@]}
        while read -r id; do deselect+=(--deselect "$id"); done < <(ids "$CHECK/emulator-limits.txt")
        echo "31250 baud can't be set under this emulator: $(((${#deselect[@]} - before) / 2)) ids of emulator-limits.txt deselected"
    fi
    cd "$SRC" && SAYSEE_TFLITE_RUNTIME=ai_edge_litert "$PY" -m pytest -q -p no:cacheprovider \
        -m 'device_venv and not hardware' -rf --durations=15 "${deselect[@]}"
}
step "device-side tests (pytest -m device_venv) on ai_edge_litert" device_tests

device_check() {
    cd / && "$PY" -m device check
}
step "python -m device check" device_check

classify() {
    cd / && "$PY" -m device classify /opt/saysee/current/assets/demo/sounds.wav > "$CHECK/classify-pi5.txt"
    local rc=$?
    cat "$CHECK/classify-pi5.txt"
    return $rc
}
step "python -m device classify assets/demo/sounds.wav" classify

run_sim() {
    local out=/tmp/saysee-sim
    mkdir -p "$out"
    cat > "$out/sim.toml" <<EOF
[app]
status_file = "$out/status.json"
[sound]
model = "/opt/saysee/current/models/sound.tflite"
[mic]
playlist = ["/opt/saysee/current/assets/demo/sounds.wav"]
[synth]
baud = 115200   # a USB-serial synth's rate: qemu-user can't set 31250 (emulator-limits.txt)
EOF
    local rc
    cd / && timeout 120 "$PY" -m device run --sim --seconds 10 --config "$out/sim.toml" --out "$out/out" \
        2> "$out/stderr.log"
    rc=$?
    cat "$out/stderr.log"
    ((rc == 0)) || return $rc
    # The virtual synth on its pty, through pyserial (the status file is written after it closed).
    grep -q "synth: connected" "$out/stderr.log" \
        || { echo "the virtual synth never connected (no 'synth: connected' in the log)"; return 1; }
    "$PY" - "$out/status.json" <<'EOF'
import json, sys
path = sys.argv[1]
try:
    status = json.load(open(path))
except (OSError, ValueError) as e:
    sys.exit(f"{path}: {e}")
print(json.dumps({k: status.get(k) for k in ("state", "first_inference_s", "last_event", "counters", "backends")}))
inferences = status.get("counters", {}).get("sound_inferences", 0)
if status.get("first_inference_s") is None and not inferences:
    sys.exit(f"{path}: no inference in 10 s of the simulated box")
EOF
}
step "10 s python -m device run --sim (demo playlist)" run_sim

finish
