"""systemd/deploy.py (workstation) + box_release.py (box) end to end through a real sshd on
127.0.0.1, and bootstrap.sh in a root prefix.

The "box" is this machine: an unprivileged sshd (own host key, own
authorized_keys, port chosen at random) logs in as the current user; every
absolute path on the box is redirected under a temp dir with --remote-root, and
a fake `systemctl` first on the remote PATH records its calls and plays systemd
and the app (see FAKE_SYSTEMCTL). The box's dependency wheels come from a local
wheelhouse of tiny wheels built here, so nothing touches a package index. Needs
`sshd`, `ssh`, `ssh-keygen` (apt: openssh-server, openssh-client) and rsync
(apt: rsync) for the rsync path; skips, saying which, when they are missing.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "systemd" / "deploy.py"
BOX_RELEASE = ROOT / "systemd" / "box_release.py"
BOOTSTRAP = ROOT / "systemd" / "bootstrap.sh"
sys.path.insert(0, str(ROOT / "systemd"))
import deploy  # noqa: E402

sys.path.pop(0)

# A fake systemctl (first on the box's PATH): logs its arguments and plays systemd
# plus the app. `restart` starts a pretend service; `show` answers the properties
# the health check reads and (re)writes the status file the way the app would.
# The installed config picks the behaviour through a comment:
#   simulate_broken          active, never writes a status file
#   simulate_stalled         writes the status file, counters never grow
#   simulate_crashloop       dies and is restarted by systemd every 0.3 s (NRestarts, MainPID change)
#   simulate_restart_fails   `systemctl restart` itself fails (like a bad unit file setting)
# WatchdogSec/RestartSec are small here (as a drop-in would set them), so the
# health check's 2 x WatchdogSec + RestartSec is 0.5 s instead of 25 s.
FAKE_SYSTEMCTL = r"""#!{python}
import json, os, re, sys, time
ROOT, LOG = {root!r}, {log!r}
STATE = os.path.join(os.path.dirname(LOG), "systemd-state.json")
STATUS = os.path.join(ROOT, "run/saysee/status.json")
CONFIG = os.path.join(ROOT, "etc/saysee/config.toml")
args = sys.argv[1:]
with open(LOG, "a") as f:
    f.write(" ".join(args) + "\n")

def mode():
    try:
        text = open(CONFIG).read()
    except OSError:
        return "ok"
    m = re.search(r"simulate_(\w+)", text)
    return m.group(1) if m else "ok"

def load():
    try:
        return json.load(open(STATE))
    except (OSError, ValueError):
        return None

if "restart" in args:
    if mode() == "restart_fails":
        print("Failed to restart saysee.service: Unit saysee.service has a bad unit file setting.", file=sys.stderr)
        sys.exit(1)
    if os.path.exists(STATUS):
        os.unlink(STATUS)
    old = load()
    json.dump({{"t0": time.time(), "mode": mode(), "pid": (old["pid"] + 100) if old else 4000}}, open(STATE, "w"))
    sys.exit(0)
st = load()
if "show" in args or "is-active" in args:
    if st is None:
        active, pid, restarts, up = "inactive", 0, 0, 0.0
    else:
        up = time.time() - st["t0"]
        active, pid, restarts = "active", st["pid"], 0
        if st["mode"] == "crashloop":
            restarts = int(up / 0.3)
            pid += restarts
            up -= restarts * 0.3
        if st["mode"] != "broken":
            counters = {{"sound_windows": 0 if st["mode"] == "stalled" else 1 + int(up * 50), "errors": 0}}
            os.makedirs(os.path.dirname(STATUS), exist_ok=True)
            tmp = STATUS + ".tmp"
            json.dump({{"state": "running", "pid": pid, "uptime_s": up, "counters": counters}}, open(tmp, "w"))
            os.replace(tmp, STATUS)
    if "is-active" in args:
        print(active)
        sys.exit(0 if active == "active" else 3)
    print("\n".join(["ActiveState=" + active, "SubState=" + ("running" if pid else "dead"), "MainPID=%d" % pid,
                     "NRestarts=%d" % restarts, "WatchdogUSec=200ms", "RestartUSec=100ms"]))
sys.exit(0)
"""


def _need(*tools: str) -> dict[str, str]:
    found = {}
    for tool in tools:
        path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/local/sbin:/sbin")
        if not path:
            pkg = {"sshd": "openssh-server", "rsync": "rsync"}.get(tool, "openssh-client")
            pytest.skip(f"{tool} not found (apt-get install -y {pkg})")
        found[tool] = path
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """A throwaway sshd for the current user on 127.0.0.1."""

    def __init__(self, base: Path):
        tools = _need("sshd", "ssh", "ssh-keygen")
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o700)
        host_key, self.client_key = base / "host_ed25519", base / "client_ed25519"
        for key in (host_key, self.client_key):
            subprocess.run([tools["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (base / "authorized_keys").write_text((base / "client_ed25519.pub").read_text())
        os.chmod(base / "authorized_keys", 0o600)
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege-separation dir sshd insists on
        self.user = getpass.getuser()
        self.known_hosts = base / "known_hosts"
        self.proc = None
        for _ in range(3):  # the port could be taken between probe and bind
            self.port = _free_port()
            cfg = base / "sshd_config"
            cfg.write_text(
                f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {base / 'sshd.pid'}\n"
                f"AuthorizedKeysFile {base / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
                "PermitRootLogin prohibit-password\nLogLevel ERROR\nMaxStartups 50\n"
            )
            self.proc = subprocess.Popen([tools["sshd"], "-D", "-e", "-f", str(cfg)],
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return
            self.proc.kill()
            self.proc.wait()
        out = self.proc.stdout.read().decode(errors="replace") if self.proc and self.proc.stdout else ""
        pytest.skip(f"sshd did not start: {out.strip()[-300:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    @property
    def host(self) -> str:
        return f"{self.user}@127.0.0.1"

    def args(self) -> list[str]:
        return ["--port", str(self.port), "-i", str(self.client_key), "--ssh-config", "/dev/null",
                "--ssh-opt", "StrictHostKeyChecking=no", "--ssh-opt", f"UserKnownHostsFile={self.known_hosts}",
                "--ssh-opt", "IdentitiesOnly=yes", "--ssh-opt", "LogLevel=ERROR"]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The device wheel, built once for the module (pip wheel, as a real deploy does)."""
    return deploy.build_wheel(ROOT, tmp_path_factory.mktemp("wheel"))


def _tiny_wheel(out: Path, name: str, version: str, requires: list[str]) -> Path:
    src = out / f"src-{name}"
    (src / name.replace("-", "_")).mkdir(parents=True)
    (src / name.replace("-", "_") / "__init__.py").write_text(f"VERSION = {version!r}\n")
    deps = ", ".join(f'"{r}"' for r in requires)
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [{deps}]\n')
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(out), str(src)], check=True, capture_output=True)
    shutil.rmtree(src)
    return next(out.glob(f"{name.replace('-', '_')}-{version}-*.whl"))


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    """A local package index for the box's dependencies: a pure-Python dependency that
    itself wants numpy, and a stand-in numpy wheel (which the box must NOT get: apt's)."""
    house = tmp_path_factory.mktemp("wheelhouse")
    _tiny_wheel(house, "saysee-testdep", "1.0", ["numpy>=1.24"])
    _tiny_wheel(house, "saysee-testdep", "2.0", ["numpy>=1.24"])  # newer: the pin must hold 1.0
    _tiny_wheel(house, "numpy", "1.24.0", [])
    _tiny_wheel(house, "opencv-python-headless", "4.8.0", ["numpy>=1.21"])
    reqs = house / "box-requirements.txt"
    reqs.write_text("# test box\nsaysee-testdep==1.0\n")
    return house


class Box:
    """A fake box: a root prefix and a fake systemctl that logs into it."""

    def __init__(self, base: Path):
        self.root = base / "root"
        self.root.mkdir(parents=True)
        self.bin = base / "bin"
        self.bin.mkdir()
        self.log = base / "systemctl.log"
        self.log.touch()
        script = self.bin / "systemctl"
        script.write_text(FAKE_SYSTEMCTL.format(python=sys.executable, root=str(self.root), log=str(self.log)))
        script.chmod(0o755)

    @property
    def base(self) -> Path:
        return self.root / "opt" / "saysee"

    def current(self) -> str | None:
        link = self.base / "current"
        return Path(os.readlink(link)).name if link.is_symlink() else None

    def releases(self) -> list[str]:
        return sorted(p.name for p in (self.base / "releases").iterdir() if not p.name.startswith("."))

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def previous(self) -> str | None:
        link = self.base / "previous"
        return Path(os.readlink(link)).name if link.is_symlink() else None


def run_deploy(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEPLOY), *args], capture_output=True, text=True, timeout=timeout)


def deploy_args(sshd: Sshd, box: Box, wheel: Path, config: Path, wheelhouse: Path, *extra: str) -> list[str]:
    return [
        *sshd.args(), "--remote-root", str(box.root), "--remote-path-prefix", str(box.bin),
        "--remote-python", sys.executable, "--wheel", str(wheel), "--config", str(config),
        "--wheelhouse", str(wheelhouse), "--box-requirements", str(wheelhouse / "box-requirements.txt"),
        "--health-timeout", "1.5", "--health-poll", "0.05", "--status-max-age", "30", *extra,
    ]


def test_wheel_is_a_valid_pure_python_wheel(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "device/__init__.py" in names and "device/sound/recorder.py" in names
        assert not any(n.startswith(("training/", "export/")) for n in names)
        dist = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = zf.read(f"{dist}/METADATA").decode()
        assert "Requires-Dist: numpy>=1.24" in meta
        assert 'extra == "device"' in meta and "Provides-Extra: device" in meta
        assert "saysee = device.__main__:main" in zf.read(f"{dist}/entry_points.txt").decode()
        record = zf.read(f"{dist}/RECORD").decode().splitlines()
        assert len(record) == len(names)
    assert wheel.name.startswith("saysee-") and wheel.name.endswith("-py3-none-any.whl")


def test_dry_run_prints_every_step_and_touches_nothing(tmp_path):
    config = tmp_path / "box.toml"
    config.write_text("[app]\n")
    root = tmp_path / "root"
    root.mkdir()
    proc = run_deploy("--dry-run", "--config", str(config), "--remote-root", str(root), "pi@box1", "pi@box2 pi@box3")
    assert proc.returncode == 0, proc.stderr
    for host in ("pi@box1", "pi@box2", "pi@box3"):
        assert f"[{host}] plan for release" in proc.stdout
    for word in ("copy", "verify sha256", "venv", "flip", "restart", "health", "ROLLED BACK", "prune",
                 "pip download", "--require-hashes", "WatchdogSec", "last good release"):
        assert word in proc.stdout
    assert list(root.iterdir()) == []


def test_errors_are_one_line(tmp_path):
    proc = run_deploy("--config", str(tmp_path / "missing.toml"), "pi@box")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "missing.toml" in proc.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[app\n")
    proc = run_deploy("--config", str(bad), "pi@box")
    assert proc.returncode == 2 and "bad.toml: not valid TOML" in proc.stderr and "Traceback" not in proc.stderr


def test_config_is_validated_by_device_config_before_anything_is_built_or_copied(tmp_path):
    """Valid TOML with a bad key or value: the box would refuse it at start (restart, failed health
    check, rollback); deploy refuses it first, in one line naming the file and the key."""
    root = tmp_path / "root"
    root.mkdir()
    build = tmp_path / "build"
    for text, words in (("[app]\nmodes = [\"sound\"]\nbogus_key = 1\n", ("bogus_key",)),
                        ("[synth]\nbaud = 12345\n", ("synth", "baud", "12345"))):
        config = tmp_path / "typo.toml"
        config.write_text(text)
        # A host that does not exist: an ssh attempt would add an "unreachable" line.
        proc = run_deploy("--config", str(config), "--remote-root", str(root), "--build-dir", str(build),
                          "--connect-timeout", "1", "nobody@192.0.2.1")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "typo.toml" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
        assert all(w in lines[0] for w in words), lines[0]
        assert "unreachable" not in proc.stderr and "plan for release" not in proc.stdout
    assert list(root.iterdir()) == [] and not build.exists()


def test_unreachable_host_fails_in_one_line_and_shows_in_the_summary(tmp_path, wheel):
    _need("ssh")
    config = tmp_path / "box.toml"
    config.write_text("[app]\n")
    port = _free_port()  # nothing listens there
    proc = run_deploy("--config", str(config), "--wheel", str(wheel), "--port", str(port), "--ssh-config", "/dev/null",
                      "--connect-timeout", "3", "--remote-root", str(tmp_path), "nobody@127.0.0.1")
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and "nobody@127.0.0.1: host unreachable" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("nobody@127.0.0.1") and "FAILED" in last


def test_deploy_health_rollback_and_pruning(tmp_path, sshd, wheel, wheelhouse):
    """4 deploys to one box: ok (rsync), broken -> rolled back (tar), ok, ok -> 3 releases kept."""
    box = Box(tmp_path)
    good = tmp_path / "good.toml"
    good.write_text("# good config\n[app]\n")
    broken = tmp_path / "broken.toml"
    broken.write_text("# simulate_broken: the fake systemctl won't write a status file\n[app]\n")

    # 1. A healthy deploy.
    t0 = time.monotonic()
    p1 = run_deploy(*deploy_args(sshd, box, wheel, good, wheelhouse), sshd.host)
    assert p1.returncode == 0, p1.stdout + p1.stderr
    v1 = box.current()
    assert v1 and v1 in p1.stdout and "health: ok" in p1.stdout and "(rsync" in p1.stdout
    rel = box.base / "releases" / v1
    manifest = json.loads((rel / "manifest.json").read_text())
    assert manifest["version"] == v1
    assert deploy.verify_release(rel)["version"] == v1  # every sha256 still matches on the box
    assert {"config/config.toml", "systemd/saysee.service", "systemd/box_release.py", "systemd/bootstrap.sh"} <= set(
        manifest["files"])
    assert (box.root / "etc/saysee/config.toml").read_text() == good.read_text()
    assert (box.root / "etc/systemd/system/saysee.service").read_bytes() == (ROOT / "systemd/saysee.service").read_bytes()
    # The package really is installed in the release's venv.
    out = subprocess.run([str(rel / "venv/bin/python"), "-c", "import device, sys; print(device.__file__)"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert str(rel / "venv") in out.stdout, out.stderr
    # Pinned: the dependency came from the release's own wheels, at the pinned version (the
    # wheelhouse also has 2.0), hash-checked; the numpy it asks for is apt's, never a wheel.
    tag = deploy.platform_tag()
    pins = (rel / "wheels" / tag / "requirements.txt").read_text().splitlines()[1:]
    assert sorted(p.split("==")[0] for p in pins) == ["saysee", "saysee_testdep"]
    assert all(" --hash=sha256:" in p for p in pins)
    out = subprocess.run([str(rel / "venv/bin/python"), "-c", "import saysee_testdep as m; print(m.VERSION, m.__file__)"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.startswith("1.0 ") and str(rel / "venv") in out.stdout, out.stderr
    assert not list((rel / "venv").rglob("numpy*")) and not list((rel / "wheels").rglob("numpy*"))
    assert box.previous() is None
    calls = box.calls()
    assert any(c.startswith("restart") for c in calls) and "daemon-reload" in calls
    assert p1.stdout.strip().splitlines()[-1].split()[-1] == "ok"
    t_first = time.monotonic() - t0

    # 2. A release whose health check fails: rolled back to v1, non-zero exit.
    # (Versions carry a 1 s timestamp; every deploy takes longer than that.)
    p2 = run_deploy(*deploy_args(sshd, box, wheel, broken, wheelhouse, "--transport", "tar"), sshd.host)
    assert p2.returncode != 0
    assert "ROLLED BACK" in p2.stdout and "(tar" in p2.stdout
    assert box.current() == v1
    assert (box.root / "etc/saysee/config.toml").read_text() == good.read_text()  # config rolled back too
    assert (box.root / "run/saysee/status.json").is_file()  # v1 was restarted and is healthy
    v2 = [v for v in box.releases() if v != v1][0]
    assert (box.base / "releases" / v2 / "FAILED").is_file()
    summary = p2.stdout.strip().splitlines()[-1]
    assert summary.startswith(sshd.host) and "ROLLED BACK" in summary

    # 3 + 4. Two more good deploys: at most 3 releases, never current or previous.
    versions = []
    for _ in range(2):
        p = run_deploy(*deploy_args(sshd, box, wheel, good, wheelhouse), sshd.host)
        assert p.returncode == 0, p.stdout + p.stderr
        versions.append(box.current())
    v3, v4 = versions
    kept = box.releases()
    assert len(kept) <= 3, kept
    assert v4 in kept and v3 in kept and v2 not in kept  # the failed one goes first
    assert Path(os.readlink(box.base / "previous")).name == v3

    # 5. `--rollback`: back to v3 by hand, v4 becomes "previous".
    pr = run_deploy(*deploy_args(sshd, box, wheel, good, wheelhouse), "--rollback", sshd.host)
    assert pr.returncode == 0, pr.stdout + pr.stderr
    assert box.current() == v3 and Path(os.readlink(box.base / "previous")).name == v4
    print(f"first deploy took {t_first:.1f} s")


def test_checksum_mismatch_names_the_file(tmp_path, wheel):
    config = tmp_path / "c.toml"
    config.write_text("[app]\n")
    version, info = deploy.release_version(ROOT)
    staging = deploy.build_release(ROOT, config, tmp_path / "build", version, info, wheel=wheel)
    root = tmp_path / "root"
    releases = root / "opt/saysee/releases"
    releases.mkdir(parents=True)
    incoming = releases / f".incoming-{version}"
    shutil.copytree(staging, incoming)
    with open(incoming / "config/config.toml", "a") as f:
        f.write("# flipped bit\n")
    proc = subprocess.run([sys.executable, str(BOX_RELEASE), "activate", "--root", str(root), "--incoming",
                           incoming.name, "--version", version], capture_output=True, text=True, timeout=60)
    assert proc.returncode == deploy.EXIT_CHECKSUM
    assert proc.stderr.strip() == proc.stderr.strip().splitlines()[0]  # one line
    assert "checksum mismatch: config/config.toml" in proc.stderr
    assert not (releases / version).exists()  # never activated


def test_box_wheels_are_resolved_for_the_box_platform_and_pinned(tmp_path, wheel, wheelhouse):
    """A Pi's wheels are chosen on the workstation for *its* Python/CPU/glibc, once per release."""
    config = tmp_path / "c.toml"
    config.write_text("[app]\n")
    version, info = deploy.release_version(ROOT)
    release = deploy.build_release(ROOT, config, tmp_path / "build", version, info, wheel=wheel)
    reqs = wheelhouse / "box-requirements.txt"
    assert deploy.add_platform(release, "cp311-aarch64", "3.11", "aarch64", "2.36", reqs, sys.executable, wheelhouse)
    assert not deploy.add_platform(release, "cp311-aarch64", "3.11", "aarch64", "2.36", reqs, sys.executable,
                                   wheelhouse)  # already there: same bytes for every box of the release
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["platforms"] == {"cp311-aarch64": "wheels/cp311-aarch64/requirements.txt"}
    folder = release / "wheels" / "cp311-aarch64"
    assert sorted(p.name for p in folder.glob("*.whl")) == ["saysee_testdep-1.0-py3-none-any.whl"]
    pins = {ln.split("==")[0]: ln for ln in (folder / "requirements.txt").read_text().splitlines()[1:]}
    assert set(pins) == {"saysee", "saysee_testdep"}
    assert pins["saysee_testdep"] == ("saysee_testdep==1.0 --hash=sha256:"
                                      + deploy.sha256_file(folder / "saysee_testdep-1.0-py3-none-any.whl"))
    assert deploy.verify_release(release)["files"]["wheels/cp311-aarch64/requirements.txt"]
    assert deploy.pip_platforms("aarch64", "2.36")[:2] == ["manylinux_2_36_aarch64", "manylinux_2_35_aarch64"]
    assert "manylinux_2_17_aarch64" in deploy.pip_platforms("aarch64", "2.36")
    # A box whose platform the release lacks fails in one line, before anything switches.
    with pytest.raises(deploy.DeployError, match="no wheels for cp310-armv7l"):
        sys.path.insert(0, str(ROOT / "systemd"))
        try:
            import box_release
        finally:
            sys.path.pop(0)
        box_release.make_venv(release, manifest, "cp310-armv7l")


def test_prune_keeps_current_and_previous(tmp_path):
    box = deploy.Box(str(tmp_path))
    box.releases.mkdir(parents=True)
    for i, name in enumerate(["r1", "r2", "r3", "r4", "r5"]):
        (box.releases / name).mkdir()
        (box.releases / name / "manifest.json").write_text(json.dumps({"created": f"2024-01-0{i + 1}"}))
    box.point(box.current, "r1")  # an old release rolled back to
    box.point(box.previous, "r2")
    (box.releases / "r5" / "FAILED").write_text("x")
    removed = deploy.prune(box, 3)
    assert sorted(p.name for p in box.releases.iterdir()) == ["r1", "r2", "r4"]
    assert sorted(removed) == ["r3", "r5"]


def test_a_jetson_keeps_jetpacks_opencv_and_a_pi_gets_the_pinned_wheel(tmp_path, wheel, wheelhouse):
    config = tmp_path / "c.toml"
    config.write_text("[app]\n")
    version, info = deploy.release_version(ROOT)
    release = deploy.build_release(ROOT, config, tmp_path / "build", version, info, wheel=wheel)
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("saysee-testdep==1.0\nopencv-python-headless>=4.8\n")

    def pinned(tag: str) -> list[str]:
        text = (release / "wheels" / tag / "requirements.txt").read_text()
        return sorted(ln.split("==")[0] for ln in text.splitlines()[1:])

    pi = deploy.platform_tag("3.11", "aarch64", jetson=False)
    jetson = deploy.platform_tag("3.10", "aarch64", jetson=True)
    assert (pi, jetson) == ("cp311-aarch64", "cp310-aarch64-jetson")
    for tag, pyver in ((pi, "3.11"), (jetson, "3.10")):
        assert deploy.add_platform(release, tag, pyver, "aarch64", "2.35", reqs, sys.executable, wheelhouse)
    assert pinned(pi) == ["opencv_python_headless", "saysee", "saysee_testdep"]
    assert pinned(jetson) == ["saysee", "saysee_testdep"]  # JetPack's GStreamer OpenCV is not shadowed
    assert not list((release / "wheels" / jetson).glob("opencv*"))


# ------------------------------------------------------------------ bootstrap.sh


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_text(errors="replace")
        else:
            out[rel] = "<dir>"
    return out


def _fake_pi(root: Path, model: str) -> None:
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(model.encode() + b"\0")
    boot = root / "boot/firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text("# Pi OS\ndtparam=audio=on\n[cm4]\notg_mode=1\n")
    (boot / "cmdline.txt").write_text("console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootwait\n")


def _bootstrap(*args: str) -> subprocess.CompletedProcess:
    bash = shutil.which("bash")
    if not bash:
        pytest.skip("bash not found")
    return subprocess.run([bash, str(BOOTSTRAP), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("model,board_lines,gpio_pkg", [
    ("Raspberry Pi 5 Model B Rev 1.0", ["dtparam=uart0=on"], "python3-rpi-lgpio"),
    ("Raspberry Pi 4 Model B Rev 1.4", ["enable_uart=1", "dtoverlay=disable-bt"], "python3-rpi.gpio"),
])
def test_bootstrap_is_idempotent_in_a_root_prefix(tmp_path, model, board_lines, gpio_pkg):
    root = tmp_path / "root"
    _fake_pi(root, model)
    original_config = (root / "boot/firmware/config.txt").read_text()
    args = ("--root", str(root), "--din-midi", "--synth-usb", "1a86:7523")

    dry = _bootstrap(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would write" in dry.stdout and "would run" in dry.stdout
    assert (root / "boot/firmware/config.txt").read_text() == original_config
    assert not (root / "etc").exists()

    first = _bootstrap(*args)
    assert first.returncode == 0, first.stderr
    snap1 = _snapshot(root)
    second = _bootstrap(*args)
    assert second.returncode == 0, second.stderr
    assert _snapshot(root) == snap1, "a second run changed files"
    assert "wrote:" not in second.stdout and "backed up" not in second.stdout

    config_txt = (root / "boot/firmware/config.txt").read_text()
    for line in board_lines + ["[all]"]:
        assert config_txt.count(line + "\n") == (2 if line == "[all]" and False else 1), line
    assert config_txt.index("[cm4]") < config_txt.index("[all]")  # our lines are not inside [cm4]
    assert (root / "boot/firmware/config.txt.saysee-orig").read_text() == original_config
    assert "console=serial0" not in (root / "boot/firmware/cmdline.txt").read_text()
    assert (root / "etc/systemd/system/saysee.service").read_bytes() == (ROOT / "systemd/saysee.service").read_bytes()
    assert (root / "etc/udev/rules.d/99-saysee.rules").is_file()
    assert 'ATTRS{idVendor}=="1a86"' in (root / "etc/udev/rules.d/98-saysee-synth-local.rules").read_text()
    assert os.readlink(root / "etc/systemd/system/multi-user.target.wants/saysee.service") == \
        "/etc/systemd/system/saysee.service"
    # System commands are shown, not run, under a root prefix.
    assert gpio_pkg in first.stdout and "useradd --system" in first.stdout
    if "5" in model:
        assert "apt-get remove -y -q python3-rpi.gpio" in first.stdout
    # Which bootstrap.sh set the box up: a deploy whose release ships another one reruns it.
    stamp = (root / "etc/saysee/bootstrap.sha256").read_text().strip()
    assert stamp == deploy.sha256_file(BOOTSTRAP)
    assert not deploy.needs_bootstrap({"service_user": "998", "bootstrapped": stamp}, ROOT)
    assert deploy.needs_bootstrap({"service_user": "998", "bootstrapped": "0" * 64}, ROOT)  # an older one
    assert deploy.needs_bootstrap({"service_user": "", "bootstrapped": stamp}, ROOT)  # no saysee user yet
    # The box's pip installs only pinned wheels now: what the venv imports besides comes from apt.
    for pkg in ("python3-pygame", "python3-serial", "python3-numpy"):
        assert pkg in first.stdout, pkg


def _din_midi_rule(root: Path) -> list[str]:
    text = (root / "etc/udev/rules.d/98-saysee-din-midi.rules").read_text()
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


@pytest.mark.parametrize("model", ["Raspberry Pi 5 Model B Rev 1.0", "Raspberry Pi 4 Model B Rev 1.4"])
def test_din_midi_keeps_31250_baud_without_the_midi_clock_overlay(tmp_path, model):
    """pyserial sets 31250 exactly (termios2/BOTHER): a midi-uart0 overlay would turn the
    configured 31250 into ~25.4 kbaud. A box set up by the old script loses the overlay on a rerun."""
    root = tmp_path / "root"
    _fake_pi(root, model)
    old_block = ("\n# >>> saysee din-midi (bootstrap.sh --din-midi; edits inside are replaced) >>>\n[all]\n"
                 "enable_uart=1\ndtoverlay=disable-bt\ndtoverlay=midi-uart0\ndtoverlay=midi-uart0-pi5\n"
                 "# <<< saysee din-midi <<<\n")
    with open(root / "boot/firmware/config.txt", "a") as f:
        f.write(old_block)
    p = _bootstrap("--root", str(root), "--din-midi", "--no-apt")
    assert p.returncode == 0, p.stderr
    config_txt = (root / "boot/firmware/config.txt").read_text()
    assert "midi-uart0" not in config_txt and config_txt.count("# >>> saysee din-midi") == 1
    assert "baud = 31250" in p.stdout and "38400" not in p.stdout
    # The config's baud (31250) is what the wire gets: the device default agrees.
    from device.config import SynthConfig
    assert SynthConfig().baud == 31250


@pytest.mark.parametrize("model", ["Raspberry Pi 5 Model B Rev 1.0", "Raspberry Pi 3 Model B Plus Rev 1.3"])
def test_din_midi_udev_rule_names_ttyAMA0_without_the_serial0_alias(tmp_path, model):
    """On a Pi 5 serial0 is the debug UART (ttyAMA10): a rule keyed on it never matched the
    header UART. The rule is plain, for the UART --din-midi enabled, and written only then."""
    root = tmp_path / "root"
    _fake_pi(root, model)
    assert _bootstrap("--root", str(root), "--no-apt").returncode == 0
    assert not (root / "etc/udev/rules.d/98-saysee-din-midi.rules").exists()  # no DIN MIDI asked: no UART rule
    p = _bootstrap("--root", str(root), "--din-midi", "--no-apt")
    assert p.returncode == 0, p.stderr
    assert _din_midi_rule(root) == [
        'SUBSYSTEM=="tty", KERNEL=="ttyAMA0", SYMLINK+="saysee-synth", GROUP="dialout", MODE="0660"']
    # No other rule claims the UART, through the alias or by name.
    for rules in (root / "etc/udev/rules.d").glob("*.rules"):
        if rules.name != "98-saysee-din-midi.rules":
            active = [ln for ln in rules.read_text().splitlines() if not ln.startswith("#")]
            assert not [ln for ln in active if "serial0" in ln or "ttyAMA" in ln], rules.name


def test_bootstrap_rejects_bad_options(tmp_path):
    p = _bootstrap("--root", str(tmp_path), "--synth-usb", "nope")
    assert p.returncode != 0 and "VID:PID" in p.stderr and p.stderr.count("\n") == 1
    p = _bootstrap("--root", str(tmp_path), "--board", "other", "--din-midi", "--no-apt")
    assert p.returncode != 0 and "--din-midi" in p.stderr


def test_bootstrap_on_a_jetson_lets_the_service_write_its_pwm_and_pins_jetson_gpio(tmp_path):
    """The unit's ProtectKernelTunables=yes makes /sys/class/pwm read-only: Jetson.GPIO's hardware PWM would fail."""
    root = tmp_path / "root"
    (root / "proc/device-tree").mkdir(parents=True)
    r = _bootstrap("--root", str(root), "--board", "jetson")
    assert r.returncode == 0, r.stderr
    dropin = (root / "etc/systemd/system/saysee.service.d/jetson-pwm.conf").read_text()
    assert "[Service]\nProtectKernelTunables=no\n" in dropin
    assert "Jetson.GPIO==2.1.13" in r.stdout
    pi = tmp_path / "pi"
    _fake_pi(pi, "Raspberry Pi 4 Model B Rev 1.4")
    assert _bootstrap("--root", str(pi)).returncode == 0
    assert not (pi / "etc/systemd/system/saysee.service.d").exists()  # a Pi keeps the full hardening
