#!/usr/bin/env python3
"""Deploy Say-and-See to one or more boxes over ssh: the workstation side.

``make deploy HOST=pi@box`` runs::

    python3 systemd/deploy.py [--config config/default.toml] [--dry-run] HOST [HOST...]

1. validates the config with ``device.config.load_config`` (one line naming the
   file and key, exit 2, nothing built or copied);
2. builds a release folder: the ``device`` package as a wheel (``pip wheel``),
   ``models/``, ``assets/``, the config, the unit file, udev rule, bootstrap
   script, ``box_release.py`` and ``manifest.json`` (sha256 of every file;
   version ``<pyproject version>-<git short hash>-<UTC timestamp>``);
3. per host: probes it over ssh (Python version, CPU, glibc; one line if
   unreachable), downloads the box's dependency wheels for that platform once per
   release (``pip download --only-binary=:all: --platform ...`` into
   ``wheels/<cp311-aarch64>/`` with a requirements file pinning each by sha256),
   copies the release to ``/opt/saysee/releases/.incoming-<version>`` (rsync when
   both ends have it, else tar over ssh) and runs ``box_release.py activate``
   on the box, echoing its progress lines. That script (the box side) installs
   offline, switches, health-checks and rolls back; see its docstring.

Every absolute path on the box can be redirected under ``--remote-root`` (tests
deploy into a temp dir through a real sshd, with a fake ``systemctl``).
Needs Python 3.11 (``tomllib``) or ``tomli``, and pip in ``--build-python``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 workstations (Ubuntu 22.04)
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

# The layout and the file format are the box side's; one definition for both ends.
from box_release import (  # noqa: F401  (re-exported: tests and the unit check read them here)
    CONFIG_PATH, EXIT_CHECKSUM, EXIT_FAILED, EXIT_INSTALL, EXIT_OK, EXIT_ROLLED_BACK, EXIT_USAGE, FAILED_MARK,
    GOOD_MARK, INSTALL_DIR, JETSON_MARK, KEEP_RELEASES, MANIFEST, POLL_S, REL_BOOTSTRAP, REL_CONFIG, REL_SELF, REL_UDEV, REL_UNIT,
    REL_WHEELS, REQUIREMENTS, RESULT_TAG, SERVICE, SERVICE_USER, START_TIMEOUT_S, STATUS_MAX_AGE_S, STATUS_PATH,
    UDEV_RULE_PATH, UNIT_PATH, Box, DeployError, platform_tag, prune, rooted, sha256_file, verify_release)

REPO = Path(__file__).resolve().parents[1]
BOOTSTRAP_STAMP = "/etc/saysee/bootstrap.sha256"  # written by bootstrap.sh
BOX_REQUIREMENTS = REPO / "systemd" / "box-requirements.txt"

# Packages every supported box gets from apt (bootstrap.sh): never installed from a
# wheel, so the venv sees the system's build (picamera2 is compiled against apt's
# numpy 1.x; the pip pygame's SDL has no KMSDRM).
APT_PROVIDED = frozenset({"numpy", "pygame", "pyserial", "pyaudio", "picamera2", "rpi_gpio", "rpi_lgpio",
                          "jetson_gpio"})
# On a Jetson, JetPack's OpenCV (GStreamer, CUDA) stays; elsewhere the pip wheel is used.
JETPACK_PROVIDED = frozenset({"opencv_python", "opencv_python_headless", "opencv_contrib_python",
                              "opencv_contrib_python_headless"})


def _log(msg: str) -> None:
    print(msg, flush=True)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _last_line(data: bytes | str) -> str:
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # rsync and tar end with "error in file IO (code 11)" / "Exiting with failure status": say the cause.
    full = [ln for ln in lines if "No space left on device" in ln]
    if full:
        return f"no space left on the box's disk ({full[0]}); free some, or deploy with a lower --keep"
    return lines[-1] if lines else "(no message)"


# =====================================================================================
# Release folder
# =====================================================================================


def _load_toml(path: Path) -> dict:
    if tomllib is None:
        raise DeployError("deploy.py needs Python 3.11+ or the tomli package (pip install tomli)", EXIT_USAGE)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise DeployError(f"{path}: cannot read ({e.strerror})", EXIT_USAGE) from None
    except tomllib.TOMLDecodeError as e:
        raise DeployError(f"{path}: not valid TOML ({e})", EXIT_USAGE) from None


def _project(repo: Path) -> dict:
    return _load_toml(repo / "pyproject.toml").get("project", {})


def git_revision(repo: Path) -> tuple[str, str, bool]:
    """(short hash, full hash, dirty); ("nogit", "", False) outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        full = git("rev-parse", "HEAD")
        short = git("rev-parse", "--short=7", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return short, full, dirty
    except (OSError, subprocess.CalledProcessError):
        return "nogit", "", False


def release_version(repo: Path, now: _dt.datetime | None = None) -> tuple[str, dict]:
    """``0.1.0-c25b1d2-20240612T101530Z`` (``.dirty`` after the hash for uncommitted changes)."""
    base = str(_project(repo).get("version", "0"))
    short, full, dirty = git_revision(repo)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    rev = short + (".dirty" if dirty else "")
    info = {"base": base, "git_commit": full, "git_dirty": dirty, "timestamp": stamp,
            "created": now.isoformat(timespec="seconds"), "rev": rev}
    return f"{base}-{rev}-{stamp}", info


def _pip(python: str, *args: str, what: str) -> None:
    cmd = [python, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise DeployError(f"{python}: not found (--build-python)", EXIT_USAGE) from None
    if proc.returncode != 0:
        # pip ends with generic hints; the line that names the problem says "error:".
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines()]
        named = [ln for ln in lines if re.match(r"(?i)^error:", ln) and "subprocess-exited-with-error" not in ln
                 and "metadata-generation-failed" not in ln]
        msg = named[0] if named else _last_line(proc.stderr or proc.stdout)
        if "No module named pip" in proc.stderr:
            msg += "; pass --build-python with a Python that has pip (make deploy uses .venv)"
        raise DeployError(f"{what} failed: {msg}", EXIT_INSTALL)


def build_wheel(repo: Path, out_dir: Path, python: str = sys.executable) -> Path:
    """The ``device`` package as a wheel, built by ``pip wheel`` with the project's own build backend.

    Only ``device`` goes to the box (training/export import TensorFlow): the
    build runs on a copy of the checkout holding just pyproject.toml, the README
    it names and ``device/``, so the package finder finds nothing else.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="saysee-wheel-src-") as tmp:
        src = Path(tmp)
        shutil.copy2(repo / "pyproject.toml", src / "pyproject.toml")
        readme = _project(repo).get("readme")
        if isinstance(readme, str) and (repo / readme).is_file():
            shutil.copy2(repo / readme, src / readme)
        if not (repo / "device" / "__init__.py").is_file():
            raise DeployError(f"{repo / 'device'}: not a Python package (no __init__.py)", EXIT_USAGE)
        shutil.copytree(repo / "device", src / "device",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
        # The build backend from this Python when it has one (setuptools, plus `wheel`
        # before setuptools 70.1): no network, and fast. Else pip fetches it.
        probe = ("import importlib.util as u, sys; sys.exit(not (u.find_spec('setuptools') and "
                 "(u.find_spec('wheel') or u.find_spec('setuptools.command.bdist_wheel'))))")
        isolation = [] if subprocess.run([python, "-c", probe], capture_output=True
                                         ).returncode else ["--no-build-isolation"]
        before = set(out_dir.glob("*.whl"))
        _pip(python, "wheel", "--no-deps", *isolation, "-q", "-w", str(out_dir), str(src), what="pip wheel (device)")
    built = sorted(set(out_dir.glob("saysee-*.whl")) - before) or sorted(out_dir.glob("saysee-*.whl"))
    if not built:
        raise DeployError(f"pip wheel wrote no saysee wheel into {out_dir}", EXIT_INSTALL)
    return built[-1]


def _release_sources(repo: Path, config: Path) -> list[tuple[Path, str]]:
    """(source file, path inside the release) for everything but the wheels and manifest."""
    items: list[tuple[Path, str]] = [(config, REL_CONFIG)]
    for rel in (REL_UNIT, REL_UDEV, REL_BOOTSTRAP, REL_SELF):
        src = repo / rel
        if src.is_file():
            items.append((src, rel))
        elif rel != REL_UDEV:
            raise DeployError(f"{src}: missing (needed in every release)", EXIT_USAGE)
    for folder in ("models", "assets"):
        root = repo / folder
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(repo)
                # *.keras: float weights for fine-tuning on the workstation; the box runs the .tflite only.
                if path.is_file() and path.suffix != ".keras" and \
                        not any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
                    items.append((path, rel.as_posix()))
    readme = repo / "README.md"
    if readme.is_file():
        items.append((readme, "README.md"))
    return items


def check_config(config: Path) -> None:
    """Validate the config exactly as the box will (``device.config.load_config``), before anything moves.

    A typo caught here costs one line; on the box it would cost a restart, a
    failed health check and a rollback.
    """
    if not config.is_file():
        raise DeployError(f"{config}: no such config file (pass CONFIG=path)", EXIT_USAGE)
    added = str(REPO) not in sys.path
    if added:
        sys.path.insert(0, str(REPO))
    try:
        from device.config import load_config
        from device.errors import SaySeeError
    except ImportError as e:
        raise DeployError(f"cannot validate {config}: {e} (deploy.py needs Python 3.11+ or tomli)", EXIT_USAGE) from None
    finally:
        if added:
            sys.path.remove(str(REPO))
    try:
        load_config(config)
    except SaySeeError as e:
        raise DeployError(str(e), EXIT_USAGE) from None


def _write_manifest(rel_dir: Path, manifest: dict) -> None:
    files = {}
    for path in sorted(p for p in rel_dir.rglob("*") if p.is_file() and p.name != MANIFEST):
        files[path.relative_to(rel_dir).as_posix()] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    manifest["files"] = files
    (rel_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (rel_dir / MANIFEST).chmod(0o644)


def _fix_modes(rel_dir: Path) -> None:
    # Explicit modes: the box runs the service as `saysee`, which must read all of
    # it, whatever umask the workstation had.
    for path in rel_dir.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o755 if path.suffix in (".sh", ".py") and path.parent.name == "systemd" else 0o644)


def build_release(repo: Path, config: Path, out_dir: Path, version: str, info: dict,
                  wheel: Path | None = None, python: str = sys.executable) -> Path:
    """Write the release folder ``out_dir/<version>`` with ``manifest.json``; return it.

    Dependency wheels per box platform are added later by ``add_platform``.
    """
    check_config(config)
    rel_dir = out_dir / version
    if rel_dir.exists():
        shutil.rmtree(rel_dir)
    rel_dir.mkdir(parents=True)
    wheels = rel_dir / REL_WHEELS
    if wheel is not None:
        if not wheel.is_file():
            raise DeployError(f"{wheel}: no such wheel", EXIT_USAGE)
        wheels.mkdir()
        shutil.copyfile(wheel, wheels / wheel.name)
        built = wheels / wheel.name
    else:
        built = build_wheel(repo, wheels, python)
    for src, rel in _release_sources(repo, config):
        dst = rel_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    _fix_modes(rel_dir)
    project = _project(repo)
    manifest = {
        "name": project.get("name", "saysee"),
        "version": version,
        "created": info["created"],
        "git_commit": info["git_commit"],
        "git_dirty": info["git_dirty"],
        "requires_python": project.get("requires-python", ""),
        "wheel": built.relative_to(rel_dir).as_posix(),
        "config": REL_CONFIG,
        "platforms": {},
    }
    _write_manifest(rel_dir, manifest)
    return rel_dir


def _wheel_name_version(path: Path) -> tuple[str, str]:
    parts = path.name[:-len(".whl")].split("-")
    return parts[0], parts[1]


def pip_platforms(arch: str, glibc: str) -> list[str]:
    """``--platform`` values for a box: every manylinux its glibc runs, newest first (unknown glibc: 2.17)."""
    m = re.match(r"2\.(\d+)", glibc or "")
    minor = int(m.group(1)) if m else 17
    tags = [f"manylinux_2_{v}_{arch}" for v in range(max(minor, 17), 16, -1)]
    return tags + [f"manylinux2014_{arch}", f"linux_{arch}"]


def add_platform(release: Path, tag: str, pyver: str, arch: str, glibc: str, requirements: Path,
                 python: str = sys.executable, wheelhouse: Path | None = None) -> bool:
    """Download the box's dependency wheels for one platform into ``wheels/<tag>/`` (once per release).

    Resolved here, on the workstation, for the box's Python, CPU and glibc;
    what apt provides is dropped; ``requirements.txt`` pins every wheel (ours
    included) by version and sha256 for the box's offline, hash-checked install.
    Returns False when the release already had this platform.
    """
    manifest = json.loads((release / MANIFEST).read_text())
    if tag in manifest.get("platforms", {}):
        return False
    dest = release / REL_WHEELS / tag
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    if not requirements.is_file():
        raise DeployError(f"{requirements}: no such requirements file (--box-requirements)", EXIT_USAGE)
    wanted = [ln for ln in requirements.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if wanted:
        abi = "cp" + pyver.replace(".", "")
        args = ["download", "-q", "--only-binary=:all:", "--python-version", pyver, "--implementation", "cp",
                "--abi", abi, "--abi", "abi3", "--abi", "none", "-d", str(dest), "-r", str(requirements)]
        for plat in pip_platforms(arch, glibc):
            args += ["--platform", plat]
        if wheelhouse is not None:
            args += ["--no-index", "--find-links", str(wheelhouse)]
        _pip(python, *args, what=f"pip download for {tag}")
    lines = []
    provided = APT_PROVIDED | (JETPACK_PROVIDED if tag.endswith("-jetson") else frozenset())
    for whl in sorted(dest.glob("*.whl")) + [release / manifest["wheel"]]:
        name, version = _wheel_name_version(whl)
        if _norm(name) in provided:
            whl.unlink()  # the box's system package is used instead
            continue
        lines.append(f"{name}=={version} --hash=sha256:{sha256_file(whl)}")
    (dest / REQUIREMENTS).write_text(
        f"# {tag}: every wheel this release installs on such a box, pinned (deploy.py add_platform)\n"
        + "\n".join(lines) + "\n")
    _fix_modes(release)
    manifest.setdefault("platforms", {})[tag] = (dest / REQUIREMENTS).relative_to(release).as_posix()
    _write_manifest(release, manifest)
    return True


# =====================================================================================
# ssh, copy, per-host deploy
# =====================================================================================


class Ssh:
    """How to reach one host: ``ssh`` argv building plus run helpers.

    ``BatchMode=yes`` so a missing key fails in one line instead of prompting
    (``make deploy`` may run unattended); ``ConnectTimeout`` so a box that is off
    fails fast.
    """

    def __init__(self, host: str, port: int | None = None, identity: str | None = None,
                 options: tuple[str, ...] = (), config_file: str | None = None,
                 connect_timeout: int = 10) -> None:
        self.host = host
        self.base = ["ssh"]
        if config_file:
            self.base += ["-F", config_file]
        if port:
            self.base += ["-p", str(port)]
        if identity:
            self.base += ["-i", identity]
        self.base += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}",
                      "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        for opt in options:
            self.base += ["-o", opt]

    def argv(self, command: str) -> list[str]:
        # "--" keeps a host like "-oProxyCommand=..." from being read as an option.
        return self.base + ["--", self.host, command]

    def rsync_rsh(self) -> str:
        return shlex.join(self.base)

    def run(self, command: str, input: bytes | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(self.argv(command), input=input, capture_output=True, timeout=timeout)
        except FileNotFoundError:
            raise DeployError("ssh not found on this workstation (apt-get install openssh-client)", EXIT_USAGE) from None
        except subprocess.TimeoutExpired:
            raise DeployError(f"{self.host}: ssh command timed out after {timeout:.0f} s") from None
        if proc.returncode == 255:
            raise DeployError(f"{self.host}: {_ssh_problem(proc.stderr)}")
        return proc


def _ssh_problem(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Warning: Permanently added")]
    last = lines[-1] if lines else "ssh failed"
    if "Permission denied" in last:
        return f"ssh login refused ({last}); check the user and key (--identity)"
    if "Host key verification failed" in last:
        return f"host key unknown or changed ({last}); ssh to it once by hand or pass --ssh-opt StrictHostKeyChecking=accept-new"
    return f"host unreachable ({last})"


def _remote_env_prefix(path_prefix: str | None) -> str:
    return f"PATH={shlex.quote(path_prefix)}:\"$PATH\"; export PATH; " if path_prefix else ""


def probe(ssh: Ssh, python: str, path_prefix: str | None) -> dict[str, str]:
    """One round trip: who we are on the box, its Python/CPU/glibc, whether rsync and sudo are there."""
    py = shlex.quote(python)
    script = (
        _remote_env_prefix(path_prefix)
        + 'echo "uid=$(id -u)"; echo "user=$(id -un)"; '
        + f'echo "python=$(command -v {py} 2>/dev/null)"; '
        + f'{py} -c "import sys; print(\'pyver=%d.%d\' % sys.version_info[:2])" 2>/dev/null; '
        + 'echo "rsync=$(command -v rsync 2>/dev/null)"; '
        + 'if sudo -n true 2>/dev/null; then echo sudo=1; else echo sudo=0; fi; '
        + f'echo "service_user=$(id -u {SERVICE_USER} 2>/dev/null)"; echo "arch=$(uname -m)"; '
        + f'echo "bootstrapped=$(cat {BOOTSTRAP_STAMP} 2>/dev/null)"; '
        + 'echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed "s/^glibc //")"; '
        + f'if [ -e {JETSON_MARK} ]; then echo jetson=1; fi'
    )
    proc = ssh.run(script, timeout=60)
    out: dict[str, str] = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    if "uid" not in out:
        raise DeployError(f"{ssh.host}: unexpected answer from the remote shell: {proc.stdout[-200:]!r}")
    return out


def needs_bootstrap(info: dict[str, str], release: Path) -> bool:
    """A box not set up yet, or set up by another bootstrap.sh than this release's (its apt list changed)."""
    if not info.get("service_user"):
        return True
    return info.get("bootstrapped", "") != sha256_file(release / REL_BOOTSTRAP)


def _python_ok(pyver: str, requires: str) -> bool:
    m = re.search(r">=\s*(\d+)\.(\d+)", requires or "")
    if not m or not pyver:
        return True
    have = tuple(int(x) for x in pyver.split("."))
    return have >= (int(m.group(1)), int(m.group(2)))


def _tar_stream(src: Path) -> bytes:
    buf = io.BytesIO()

    def reset(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=path.relative_to(src).as_posix(), recursive=False, filter=reset)
    return buf.getvalue()


def upload(ssh: Ssh, local: Path, remote_dir: str, transport: str, sudo: str,
           remote_has_rsync: bool) -> str:
    """Copy the release folder's contents into ``remote_dir``; returns the transport used."""
    use_rsync = transport == "rsync" or (
        transport == "auto" and remote_has_rsync and shutil.which("rsync") is not None)
    if transport == "rsync" and not remote_has_rsync:
        raise DeployError(f"{ssh.host}: rsync not installed on the box (use --transport tar)")
    q = shlex.quote(remote_dir)
    proc = ssh.run(f"{sudo}rm -rf {q} && {sudo}mkdir -p {q}", timeout=120)
    if proc.returncode != 0:
        raise DeployError(f"{ssh.host}: cannot create {remote_dir}: {_last_line(proc.stderr)}")
    if use_rsync:
        # --omit-dir-times: the upload folder's age is the upload's (the box clears uploads abandoned over an
        # hour ago), not the build's, which may be older when one build goes to many hosts.
        cmd = ["rsync", "-rlpt", "--omit-dir-times", "--delete", "--partial", "-e", ssh.rsync_rsh()]
        if sudo:
            cmd += ["--rsync-path", f"{sudo}rsync"]
        cmd += [f"{local}/", f"{ssh.host}:{remote_dir}/"]
        proc = subprocess.run(cmd, capture_output=True)
        if proc.returncode != 0:
            raise DeployError(f"{ssh.host}: rsync failed: {_last_line(proc.stderr)}")
        return "rsync"
    data = _tar_stream(local)
    proc = ssh.run(f"{sudo}tar -x -z --no-same-owner -f - -C {q}", input=data, timeout=1800)
    if proc.returncode != 0:
        raise DeployError(f"{ssh.host}: tar over ssh failed: {_last_line(proc.stderr)}")
    return "tar"


class HostResult:
    """The outcome for one host, one row of the summary table."""

    def __init__(self, host: str, version: str, result: str, message: str = "") -> None:
        self.host, self.version, self.result, self.message = host, version, result, message

    @property
    def ok(self) -> bool:
        return self.result == "ok"


def _health_args(args: argparse.Namespace) -> list[str]:
    return ["--start-timeout", str(args.health_timeout), "--poll", str(args.health_poll),
            "--status-max-age", str(args.status_max_age)]


def _remote_command(args: argparse.Namespace, sudo: str, script: Path, remote_args: list[str]) -> str:
    # sudo resets PATH, so the test PATH prefix goes through `env`, after sudo.
    env = f"env PATH={shlex.quote(args.remote_path_prefix)}:\"$PATH\" " if args.remote_path_prefix else ""
    return (f"{sudo}{env}{shlex.quote(args.remote_python)} {shlex.quote(str(script))} "
            + " ".join(shlex.quote(a) for a in remote_args))


def deploy_host(host: str, release: Path, version: str, args: argparse.Namespace) -> HostResult:
    ssh = Ssh(host, args.port, args.identity, tuple(args.ssh_opt), args.ssh_config, args.connect_timeout)
    tag = f"[{host}]"
    info = probe(ssh, args.remote_python, args.remote_path_prefix)
    if not info.get("python"):
        raise DeployError(f"{host}: {args.remote_python} not found on the box (install python3, or pass --remote-python)")
    manifest = json.loads((release / MANIFEST).read_text())
    if not _python_ok(info.get("pyver", ""), manifest.get("requires_python", "")):
        raise DeployError(f"{host}: the box has Python {info.get('pyver')}, saysee needs "
                          f"{manifest['requires_python']} (install a newer python3 and pass --remote-python)")
    sudo = _sudo_for(ssh, info, args.remote_root)
    bootstrap = args.bootstrap == "always" or (
        args.bootstrap == "auto" and args.remote_root == "/" and needs_bootstrap(info, release))

    plat = platform_tag(info.get("pyver", ""), info.get("arch", ""), info.get("jetson") == "1")
    t0 = time.monotonic()
    if add_platform(release, plat, info.get("pyver", ""), info.get("arch", ""), info.get("glibc", ""),
                    args.box_requirements, args.build_python, args.wheelhouse):
        n = len((release / REL_WHEELS / plat / REQUIREMENTS).read_text().splitlines()) - 1
        _log(f"{tag} resolved {n} pinned wheels for {plat} (glibc {info.get('glibc') or '?'}, "
             f"{time.monotonic() - t0:.1f} s)")

    releases = rooted(args.remote_root, INSTALL_DIR) / "releases"
    incoming = f".incoming-{version}"
    t0 = time.monotonic()
    used = upload(ssh, release, str(releases / incoming), args.transport, sudo, bool(info.get("rsync")))
    _log(f"{tag} copied release {version} ({used}, {time.monotonic() - t0:.1f} s)")

    remote_args = [
        "activate", "--root", args.remote_root, "--incoming", incoming, "--version", version,
        "--manifest-sha256", sha256_file(release / MANIFEST), "--keep", str(args.keep), *_health_args(args),
    ]
    if bootstrap:
        remote_args.append("--bootstrap")
    command = _remote_command(args, sudo, releases / incoming / REL_SELF, remote_args)
    result, rc, last = _stream_remote(ssh, command, tag)
    if result is None:
        if rc == 255:
            raise DeployError(f"{host}: connection lost during activation ({last})")
        return HostResult(host, version, "FAILED", f"remote step exited {rc}: {last}")
    status = result.get("result")
    if status == "ok":
        return HostResult(host, version, "ok", result.get("message", ""))
    if status == "rolled-back":
        return HostResult(host, version, "ROLLED BACK", result.get("message", ""))
    return HostResult(host, version, "FAILED", result.get("message", ""))


def _stream_remote(ssh: Ssh, command: str, tag: str) -> tuple[dict | None, int, str]:
    """Run a box-side step, echoing its lines live; (result record, exit code, last line)."""
    result = None
    try:
        proc = subprocess.Popen(ssh.argv(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        raise DeployError("ssh not found on this workstation (apt-get install openssh-client)", EXIT_USAGE) from None
    assert proc.stdout is not None
    last = ""
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        if line.startswith(RESULT_TAG):
            with contextlib.suppress(ValueError):
                result = json.loads(line[len(RESULT_TAG):])
            continue
        if line.strip():
            last = line.strip()
        _log(f"{tag} {line}")
    return result, proc.wait(), last


def _sudo_for(ssh: Ssh, info: dict[str, str], remote_root: str) -> str:
    if info["uid"] != "0" and remote_root == "/":
        if info.get("sudo") != "1":
            raise DeployError(f"{ssh.host}: user {info.get('user')} is not root and has no passwordless sudo")
        return "sudo -n "
    return ""


def rollback_host(host: str, args: argparse.Namespace) -> HostResult:
    """Flip a box back to its previous good release (``--rollback``), using the box's own box_release.py."""
    ssh = Ssh(host, args.port, args.identity, tuple(args.ssh_opt), args.ssh_config, args.connect_timeout)
    info = probe(ssh, args.remote_python, args.remote_path_prefix)
    sudo = _sudo_for(ssh, info, args.remote_root)
    script = rooted(args.remote_root, INSTALL_DIR) / "current" / REL_SELF
    command = _remote_command(args, sudo, script, ["rollback", "--root", args.remote_root, *_health_args(args)])
    result, rc, last = _stream_remote(ssh, command, f"[{host}]")
    if result is None:
        return HostResult(host, "-", "FAILED", f"rollback exited {rc}: {last}")
    ok = result.get("result") == "ok"
    return HostResult(host, result.get("version") or "-", "ok" if ok else "FAILED", result.get("message", ""))


def plan_lines(host: str, version: str, args: argparse.Namespace, n_files: int) -> list[str]:
    r = args.remote_root
    rel = rooted(r, INSTALL_DIR) / "releases" / version
    cur = rooted(r, INSTALL_DIR) / "current"
    return [
        f"[{host}] plan for release {version}:",
        f"  1. ssh probe {host} (uid, {args.remote_python} version, CPU, glibc, rsync, sudo)",
        f"  2. pip download the wheels of {args.box_requirements.name} for the box's platform (once per release),"
        " pinned by sha256",
        f"  3. copy {n_files} files -> {host}:{rel.parent}/.incoming-{version} (transport: {args.transport})",
        f"  4. verify sha256 of every file against {MANIFEST}, rename to {rel}",
        f"  5. {args.remote_python} -m venv --system-site-packages {rel}/venv; pip install --no-index --no-deps "
        "--require-hashes (offline)",
        f"     (bootstrap.sh first: {args.bootstrap}; auto = the box has no saysee user, or another"
        " bootstrap.sh set it up)",
        f"  6. install {rooted(r, CONFIG_PATH)}, {rooted(r, UNIT_PATH)}, {rooted(r, UDEV_RULE_PATH)}",
        f"  7. flip {cur} -> releases/{version} (symlink + rename, atomic)",
        f"  8. systemctl daemon-reload; systemctl restart {SERVICE}",
        f"  9. health: active, same pid and NRestarts for 2 x WatchdogSec + RestartSec (from the unit), and"
        f" {rooted(r, STATUS_PATH)} shows inference progress (start allowance {args.health_timeout:g} s)",
        " 10. on failure (a failing restart too): flip back to the last good release, restart it, report"
        " ROLLED BACK, exit non-zero",
        f" 11. prune: keep the {args.keep} newest releases (never current or previous)",
    ]


def print_summary(results: list[HostResult]) -> None:
    rows = [("host", "version", "result")] + [
        (r.host, r.version or "-", r.result + (f" {r.message}" if r.result == "ROLLED BACK" else
                                               f": {r.message}" if r.message and not r.ok else ""))
        for r in results]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    _log("")
    for h, v, res in rows:
        _log(f"{h:<{w0}}  {v:<{w1}}  {res}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deploy.py",
        description="Deploy Say-and-See to boxes over ssh (release folder, health check, rollback).")
    p.add_argument("hosts", nargs="+", metavar="HOST", help="user@host (several: deployed one after another)")
    p.add_argument("--config", default="config/default.toml", help="config file installed as " + CONFIG_PATH)
    p.add_argument("--dry-run", action="store_true", help="print the plan; build nothing, touch nothing")
    p.add_argument("--rollback", action="store_true",
                   help="no deploy: flip each host back to its previous good release, restart, health-check")
    p.add_argument("--remote-root", default=os.environ.get("SAYSEE_REMOTE_ROOT", "/"),
                   help="prefix for every absolute path on the box (tests); default /")
    p.add_argument("--remote-python", default="python3", help="python on the box (creates the venv)")
    p.add_argument("--remote-path-prefix", default=None,
                   help="directory prepended to PATH for remote commands (tests: a fake systemctl)")
    p.add_argument("--port", type=int, default=None, help="ssh port")
    p.add_argument("-i", "--identity", default=None, help="ssh identity (private key) file")
    p.add_argument("--ssh-opt", action="append", default=[], metavar="OPT",
                   help="extra ssh -o option, e.g. StrictHostKeyChecking=accept-new (repeatable)")
    p.add_argument("--ssh-config", default=None, help="ssh config file (-F)")
    p.add_argument("--connect-timeout", type=int, default=10, help="ssh ConnectTimeout seconds")
    p.add_argument("--transport", choices=("auto", "rsync", "tar"), default="auto",
                   help="rsync when both ends have it (auto), else tar over ssh")
    p.add_argument("--build-python", default=sys.executable,
                   help="Python whose pip builds the wheel and downloads the box's wheels (default: this one)")
    p.add_argument("--box-requirements", type=Path, default=BOX_REQUIREMENTS,
                   help="what pip installs on the box besides saysee (default systemd/box-requirements.txt)")
    p.add_argument("--wheelhouse", type=Path, default=None,
                   help="take the box's dependency wheels from this folder only, not from the package index")
    p.add_argument("--wheel", type=Path, default=None, help="use this prebuilt saysee wheel instead of building one")
    p.add_argument("--build-dir", type=Path, default=None, help="keep the release folder here (default: a temp dir)")
    p.add_argument("--keep", type=int, default=KEEP_RELEASES, help="releases to keep on the box (min 2)")
    p.add_argument("--health-timeout", type=float, default=START_TIMEOUT_S,
                   help="seconds for the service to become active and to show progress")
    p.add_argument("--health-poll", type=float, default=POLL_S, help="seconds between two health looks")
    p.add_argument("--status-max-age", type=float, default=STATUS_MAX_AGE_S, help="max age of status.json in seconds")
    p.add_argument("--bootstrap", choices=("auto", "always", "never"), default="auto",
                   help="run bootstrap.sh on the box first (auto: when user saysee is missing or the box was "
                        "set up by another version of bootstrap.sh)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    args.keep = max(2, args.keep)
    hosts = [h for hs in args.hosts for h in hs.split()]
    if not args.remote_root.startswith("/"):
        print(f"deploy: error: --remote-root {args.remote_root!r}: must be an absolute path", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.rollback:
            if args.dry_run:
                for host in hosts:
                    _log(f"[{host}] plan: flip {rooted(args.remote_root, INSTALL_DIR)}/current to its previous "
                         f"good release, restart {SERVICE}, health-check")
                return EXIT_OK
            results = []
            for host in hosts:
                try:
                    results.append(rollback_host(host, args))
                except DeployError as e:
                    print(f"deploy: error: {e}", file=sys.stderr, flush=True)
                    results.append(HostResult(host, "-", "FAILED", str(e)))
            print_summary(results)
            return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
        config = Path(args.config)
        check_config(config)
        version, info = release_version(REPO)
        if args.dry_run:
            n = len(_release_sources(REPO, config)) + 2  # + wheel + manifest
            for host in hosts:
                for line in plan_lines(host, version, args, n):
                    _log(line)
            _log("dry run: nothing was built, copied or changed")
            return EXIT_OK
        with contextlib.ExitStack() as stack:
            out = args.build_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="saysee-release-")))
            release = build_release(REPO, config, out, version, info, wheel=args.wheel, python=args.build_python)
            n_files = len(json.loads((release / MANIFEST).read_text())["files"])
            _log(f"built release {version} ({n_files} files) in {release}")
            results = []
            for host in hosts:
                try:
                    res = deploy_host(host, release, version, args)
                except DeployError as e:
                    msg = str(e)
                    res = HostResult(host, version, "FAILED", msg[len(host) + 2:] if msg.startswith(host + ": ") else msg)
                    print(f"deploy: error: {e}", file=sys.stderr, flush=True)
                else:
                    if not res.ok:
                        sep = " " if res.result == "ROLLED BACK" else ": "
                        print(f"deploy: error: {host}: {res.result}{sep}{res.message}", file=sys.stderr, flush=True)
                results.append(res)
            print_summary(results)
            return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
    except DeployError as e:
        print(f"deploy: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("deploy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
