#!/usr/bin/env python3
"""Deploy Say-and-See to one or more boxes over ssh, with health check and rollback.

Workstation side (``make deploy HOST=pi@box``)::

    python3 systemd/deploy.py [--config config/default.toml] [--dry-run] HOST [HOST...]

1. builds a release folder: the ``device`` package as a wheel, ``models/``,
   ``assets/``, the config, the unit file, udev rule, bootstrap script, this
   script, and ``manifest.json`` (sha256 of every file; version
   ``<pyproject version>-<git short hash>-<UTC timestamp>``);
2. per host: probes it over ssh (one line if unreachable), copies the release to
   ``/opt/saysee/releases/.incoming-<version>`` (rsync when both ends have it,
   else tar over ssh), then runs *this same file* on the box
   (``deploy.py remote activate``), which
3. verifies every checksum, renames the folder to ``releases/<version>``, builds
   ``venv`` (``--system-site-packages``, so apt's picamera2/numpy/GPIO are
   seen) and installs the wheel, installs the config, unit and udev rule, flips
   ``/opt/saysee/current`` atomically, restarts the service and health-checks it
   (``systemctl is-active`` and ``/run/saysee/status.json`` rewritten since the
   restart and fresh, holding for a settle period). On failure it flips back to
   the previous release, restarts it and says ROLLED BACK (exit non-zero).
   The last 3 releases are kept (never the current or previous one).

Every absolute path on the box can be redirected under ``--remote-root`` (tests
deploy into a temp dir through a real sshd). Only the standard library is used,
on both ends; the box side also runs on Python 3.8 so it can say clearly when
the box's Python is too old.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as _dt
import hashlib
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
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

# --- the layout on the box (the unit file refers to these; tests check they agree) ---
SERVICE = "saysee"
SERVICE_USER = "saysee"
INSTALL_DIR = "/opt/saysee"
CONFIG_PATH = "/etc/saysee/config.toml"
UNIT_PATH = "/etc/systemd/system/saysee.service"
UDEV_RULE_PATH = "/etc/udev/rules.d/99-saysee.rules"
STATUS_PATH = "/run/saysee/status.json"
KEEP_RELEASES = 3

# Inside a release folder.
MANIFEST = "manifest.json"
REL_CONFIG = "config/config.toml"
REL_UNIT = "systemd/saysee.service"
REL_UDEV = "systemd/99-saysee.rules"
REL_BOOTSTRAP = "systemd/bootstrap.sh"
REL_SELF = "systemd/deploy.py"
FAILED_MARK = "FAILED"
RESULT_TAG = "SAYSEE-RESULT "

REPO = Path(__file__).resolve().parents[1]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CHECKSUM, EXIT_ROLLED_BACK, EXIT_INSTALL = 3, 4, 5


class DeployError(Exception):
    """A problem the user must fix; printed as one line naming the host or file."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _log(msg: str) -> None:
    print(msg, flush=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def rooted(root: str | os.PathLike, path: str) -> Path:
    """``path`` (absolute, as on a real box) redirected under ``root``."""
    return Path(root) / path.lstrip("/")


# =====================================================================================
# Workstation side: version, wheel, release folder
# =====================================================================================


_TOML_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'')


def _strip_comment(line: str) -> str:
    # Mask strings (same length) so a '#' inside one isn't taken for a comment.
    masked = _TOML_STRING.sub(lambda m: "x" * len(m.group(0)), line)
    cut = masked.find("#")
    return (line if cut < 0 else line[:cut]).strip()


def _mini_toml(text: str) -> dict:
    """Just enough TOML for pyproject.toml on Python < 3.11 (no tomllib): tables,
    strings and arrays of strings. Ubuntu 22.04's python3 is 3.10, and `make
    deploy` must work there too."""
    data: dict = {}
    table = data
    lines = [_strip_comment(ln) for ln in text.splitlines()]
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        m = re.match(r"^\[([^\[\]]+)\]$", line)
        if m:
            table = data
            for part in m.group(1).strip().split("."):
                table = table.setdefault(part.strip().strip('"'), {})
            continue
        m = re.match(r'^("[^"]+"|[A-Za-z0-9_.-]+)\s*=\s*(.*)$', line)
        if not m:
            continue
        key, value = m.group(1).strip('"'), m.group(2)
        if value.startswith("["):
            def depth(v: str) -> int:
                bare = _TOML_STRING.sub("", v)
                return bare.count("[") - bare.count("]")

            while depth(value) > 0 and i < len(lines):  # a multi-line array
                value += " " + lines[i]
                i += 1
            table[key] = [a or b for a, b in _TOML_STRING.findall(value)]
        else:
            sm = _TOML_STRING.match(value)
            table[key] = (sm.group(1) or sm.group(2)) if sm else value
    return data


def _load_toml(path: Path) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]
    try:
        if tomllib is None:
            return _mini_toml(path.read_text())
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise DeployError(f"{path}: cannot read ({e.strerror})", EXIT_USAGE) from None
    except Exception as e:  # tomllib.TOMLDecodeError, without naming a module that may be absent
        raise DeployError(f"{path}: not valid TOML ({e})", EXIT_USAGE) from None


def _read_pyproject(repo: Path) -> dict:
    return _load_toml(repo / "pyproject.toml")


def git_revision(repo: Path) -> Tuple[str, str, bool]:
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


def release_version(repo: Path, now: Optional[_dt.datetime] = None) -> Tuple[str, dict]:
    """``0.1.0-c25b1d2-20240612T101530Z`` (``.dirty`` after the hash for uncommitted changes)."""
    project = _read_pyproject(repo).get("project", {})
    base = str(project.get("version", "0"))
    short, full, dirty = git_revision(repo)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    rev = short + (".dirty" if dirty else "")
    info = {"base": base, "git_commit": full, "git_dirty": dirty, "timestamp": stamp,
            "created": now.isoformat(timespec="seconds"), "rev": rev}
    return f"{base}-{rev}-{stamp}", info


def _wheel_record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _requires_dist(project: dict, extras: Tuple[str, ...]) -> List[str]:
    lines = [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    for extra in extras:
        for dep in project.get("optional-dependencies", {}).get(extra, []):
            req, _, marker = dep.partition(";")
            cond = f'extra == "{extra}"'
            if marker.strip():
                cond = f"({marker.strip()}) and {cond}"
            lines.append(f"Requires-Dist: {req.strip()}; {cond}")
    return lines


def build_wheel(repo: Path, out_dir: Path, local_version: str | None = None,
                packages: Tuple[str, ...] = ("device",)) -> Path:
    """A pure-Python wheel of the box-side packages, built with the standard library.

    Only ``device`` goes to the box (training/export import TensorFlow). Built by
    hand so ``make deploy`` needs neither pip, setuptools nor network on the
    workstation; ``--wheel`` accepts one from ``pip wheel --no-deps .`` instead.
    ``local_version`` (PEP 440 local label, e.g. ``20240612t101530z.gc25b1d2``)
    makes ``importlib.metadata.version("saysee")`` on the box name the release.
    """
    project = _read_pyproject(repo).get("project", {})
    name = project.get("name", "saysee")
    dist = re.sub(r"[-_.]+", "_", name).lower()
    version = str(project.get("version", "0"))
    if local_version:
        version += "+" + re.sub(r"[^A-Za-z0-9.]+", ".", local_version).strip(".").lower()
    extras = tuple(project.get("optional-dependencies", {}).keys())
    extras_for_box = tuple(e for e in extras if e in ("device", "pi"))

    files: List[Tuple[str, bytes]] = []
    for pkg in packages:
        pkg_dir = repo / pkg
        if not (pkg_dir / "__init__.py").is_file():
            raise DeployError(f"{pkg_dir}: not a Python package (no __init__.py)", EXIT_USAGE)
        for path in sorted(pkg_dir.rglob("*")):
            rel = path.relative_to(repo)
            if not path.is_file() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
                continue
            if any(part.startswith(".") for part in rel.parts):
                continue
            files.append((rel.as_posix(), path.read_bytes()))

    distinfo = f"{dist}-{version}.dist-info"
    meta = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {project.get('description', '')}",
    ]
    if project.get("requires-python"):
        meta.append(f"Requires-Python: {project['requires-python']}")
    meta += _requires_dist(project, ())
    for extra in extras_for_box:
        meta.append(f"Provides-Extra: {extra}")
    meta += _requires_dist({"optional-dependencies": project.get("optional-dependencies", {})},
                           extras_for_box)
    files.append((f"{distinfo}/METADATA", ("\n".join(meta) + "\n").encode()))
    files.append((f"{distinfo}/WHEEL", b"Wheel-Version: 1.0\nGenerator: saysee-deploy\n"
                  b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    scripts = project.get("scripts", {})
    if scripts:
        ep = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
        files.append((f"{distinfo}/entry_points.txt", ep.encode()))
    record = "".join(f"{p},{_wheel_record_hash(d)},{len(d)}\n" for p, d in files)
    record += f"{distinfo}/RECORD,,\n"
    files.append((f"{distinfo}/RECORD", record.encode()))

    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files:
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return wheel


def _release_sources(repo: Path, config: Path) -> List[Tuple[Path, str]]:
    """(source file, path inside the release) for everything but the wheel and manifest."""
    items: List[Tuple[Path, str]] = [(config, REL_CONFIG)]
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
                if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
                    items.append((path, rel.as_posix()))
    readme = repo / "README.md"
    if readme.is_file():
        items.append((readme, "README.md"))
    return items


def _check_config(config: Path) -> None:
    """The config must exist and parse here, before anything is copied anywhere.

    Full validation (keys, ranges) is the box's job at start-up; a TOML syntax
    error is caught now so a typo never costs a restart and a rollback.
    """
    if not config.is_file():
        raise DeployError(f"{config}: no such config file (pass CONFIG=path)", EXIT_USAGE)
    _load_toml(config)


def build_release(repo: Path, config: Path, out_dir: Path, version: str, info: dict,
                  wheel: Optional[Path] = None) -> Path:
    """Write the release folder ``out_dir/<version>`` with ``manifest.json``; return it."""
    _check_config(config)
    rel_dir = out_dir / version
    if rel_dir.exists():
        shutil.rmtree(rel_dir)
    rel_dir.mkdir(parents=True)
    wheels = rel_dir / "wheels"
    if wheel is not None:
        if not wheel.is_file():
            raise DeployError(f"{wheel}: no such wheel", EXIT_USAGE)
        wheels.mkdir()
        shutil.copyfile(wheel, wheels / wheel.name)
        built = wheels / wheel.name
    else:
        local = f"{info['timestamp']}.g{info['rev']}"
        built = build_wheel(repo, wheels, local_version=local)
    for src, rel in _release_sources(repo, config):
        dst = rel_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    # Explicit modes: the box runs the service as `saysee`, which must read all of
    # it, whatever umask the workstation had.
    for path in rel_dir.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o755 if path.suffix in (".sh", ".py") and path.parent.name == "systemd" else 0o644)
    files = {}
    for path in sorted(p for p in rel_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(rel_dir).as_posix()
        files[rel] = {"sha256": _sha256(path), "size": path.stat().st_size}
    project = _read_pyproject(repo).get("project", {})
    manifest = {
        "name": project.get("name", "saysee"),
        "version": version,
        "created": info["created"],
        "git_commit": info["git_commit"],
        "git_dirty": info["git_dirty"],
        "requires_python": project.get("requires-python", ""),
        "wheel": built.relative_to(rel_dir).as_posix(),
        "config": REL_CONFIG,
        "files": files,
    }
    (rel_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (rel_dir / MANIFEST).chmod(0o644)
    return rel_dir


# =====================================================================================
# Workstation side: ssh, copy, per-host deploy
# =====================================================================================


class Ssh:
    """How to reach one host: ``ssh`` argv building plus run helpers.

    ``BatchMode=yes`` so a missing key fails in one line instead of prompting
    (``make deploy`` may run unattended); ``ConnectTimeout`` so a box that is off
    fails fast.
    """

    def __init__(self, host: str, port: Optional[int] = None, identity: Optional[str] = None,
                 options: Tuple[str, ...] = (), config_file: Optional[str] = None,
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

    def argv(self, command: str) -> List[str]:
        # "--" keeps a host like "-oProxyCommand=..." from being read as an option.
        return self.base + ["--", self.host, command]

    def rsync_rsh(self) -> str:
        return shlex.join(self.base)

    def run(self, command: str, input: Optional[bytes] = None, timeout: float = 600) -> subprocess.CompletedProcess:
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


def _remote_env_prefix(path_prefix: Optional[str]) -> str:
    return f"PATH={shlex.quote(path_prefix)}:\"$PATH\"; export PATH; " if path_prefix else ""


def probe(ssh: Ssh, python: str, path_prefix: Optional[str]) -> Dict[str, str]:
    """One round trip: who we are on the box, whether python/rsync/sudo are there."""
    py = shlex.quote(python)
    script = (
        _remote_env_prefix(path_prefix)
        + 'echo "uid=$(id -u)"; echo "user=$(id -un)"; '
        + f'echo "python=$(command -v {py} 2>/dev/null)"; '
        + f'{py} -c "import sys; print(\'pyver=%d.%d\' % sys.version_info[:2])" 2>/dev/null; '
        + 'echo "rsync=$(command -v rsync 2>/dev/null)"; '
        + 'if sudo -n true 2>/dev/null; then echo sudo=1; else echo sudo=0; fi; '
        + f'echo "service_user=$(id -u {SERVICE_USER} 2>/dev/null)"; echo "arch=$(uname -m)"'
    )
    proc = ssh.run(script, timeout=60)
    out: Dict[str, str] = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    if "uid" not in out:
        raise DeployError(f"{ssh.host}: unexpected answer from the remote shell: {proc.stdout[-200:]!r}")
    return out


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
        cmd = ["rsync", "-rlpt", "--delete", "--partial", "-e", ssh.rsync_rsh()]
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


def _last_line(data: bytes | str) -> str:
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"


class HostResult:
    """The outcome for one host, one row of the summary table."""

    def __init__(self, host: str, version: str, result: str, message: str = "") -> None:
        self.host, self.version, self.result, self.message = host, version, result, message

    @property
    def ok(self) -> bool:
        return self.result == "ok"


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
        args.bootstrap == "auto" and args.remote_root == "/" and not info.get("service_user"))

    releases = rooted(args.remote_root, INSTALL_DIR) / "releases"
    incoming = f".incoming-{version}"
    t0 = time.monotonic()
    used = upload(ssh, release, str(releases / incoming), args.transport, sudo, bool(info.get("rsync")))
    _log(f"{tag} copied release {version} ({used}, {time.monotonic() - t0:.1f} s)")

    remote_self = shlex.quote(str(releases / incoming / REL_SELF))
    remote_args = [
        "remote", "activate", "--root", args.remote_root, "--incoming", incoming, "--version", version,
        "--manifest-sha256", _sha256(release / MANIFEST), "--keep", str(args.keep),
        "--health-timeout", str(args.health_timeout), "--status-max-age", str(args.status_max_age),
        "--settle", str(args.health_settle), "--pip-args", args.pip_args,
    ]
    if bootstrap:
        remote_args.append("--bootstrap")
    # sudo resets PATH, so the test PATH prefix goes through `env`, after sudo.
    env = f"env PATH={shlex.quote(args.remote_path_prefix)}:\"$PATH\" " if args.remote_path_prefix else ""
    command = (f"{sudo}{env}{shlex.quote(args.remote_python)} {remote_self} "
               + " ".join(shlex.quote(a) for a in remote_args))
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


def _stream_remote(ssh: Ssh, command: str, tag: str) -> Tuple[Optional[dict], int, str]:
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


def _sudo_for(ssh: Ssh, info: Dict[str, str], remote_root: str) -> str:
    if info["uid"] != "0" and remote_root == "/":
        if info.get("sudo") != "1":
            raise DeployError(f"{ssh.host}: user {info.get('user')} is not root and has no passwordless sudo")
        return "sudo -n "
    return ""


def rollback_host(host: str, args: argparse.Namespace) -> HostResult:
    """Flip a box back to its previous release (``--rollback``), using the box's own deploy.py."""
    ssh = Ssh(host, args.port, args.identity, tuple(args.ssh_opt), args.ssh_config, args.connect_timeout)
    info = probe(ssh, args.remote_python, args.remote_path_prefix)
    sudo = _sudo_for(ssh, info, args.remote_root)
    script = rooted(args.remote_root, INSTALL_DIR) / "current" / REL_SELF
    env = f"env PATH={shlex.quote(args.remote_path_prefix)}:\"$PATH\" " if args.remote_path_prefix else ""
    remote_args = ["remote", "rollback", "--root", args.remote_root, "--health-timeout", str(args.health_timeout),
                   "--status-max-age", str(args.status_max_age), "--settle", str(args.health_settle)]
    command = (f"{sudo}{env}{shlex.quote(args.remote_python)} {shlex.quote(str(script))} "
               + " ".join(shlex.quote(a) for a in remote_args))
    result, rc, last = _stream_remote(ssh, command, f"[{host}]")
    if result is None:
        return HostResult(host, "-", "FAILED", f"rollback exited {rc}: {last}")
    ok = result.get("result") == "ok"
    return HostResult(host, result.get("version") or "-", "ok" if ok else "FAILED", result.get("message", ""))


def plan_lines(host: str, version: str, args: argparse.Namespace, n_files: int) -> List[str]:
    r = args.remote_root
    rel = rooted(r, INSTALL_DIR) / "releases" / version
    cur = rooted(r, INSTALL_DIR) / "current"
    pip = f" {args.pip_args}" if args.pip_args else ""
    return [
        f"[{host}] plan for release {version}:",
        f"  1. ssh probe {host} (uid, {args.remote_python}, rsync, sudo)",
        f"  2. copy {n_files} files -> {host}:{rel.parent}/.incoming-{version} (transport: {args.transport})",
        f"  3. verify sha256 of every file against {MANIFEST}, rename to {rel}",
        f"  4. {args.remote_python} -m venv --system-site-packages {rel}/venv; pip install{pip} <wheel>[device]",
        f"     (first-time setup with bootstrap.sh: {args.bootstrap})",
        f"  5. install {rooted(r, CONFIG_PATH)}, {rooted(r, UNIT_PATH)}, {rooted(r, UDEV_RULE_PATH)}",
        f"  6. flip {cur} -> releases/{version} (symlink + rename, atomic)",
        f"  7. systemctl daemon-reload; systemctl restart {SERVICE}",
        f"  8. health: systemctl is-active {SERVICE} and {rooted(r, STATUS_PATH)} rewritten since the restart,"
        f" < {args.status_max_age:g} s old, holding {args.health_settle:g} s (give up after {args.health_timeout:g} s)",
        "  9. on failure: flip back to the previous release, restart it, report ROLLED BACK, exit non-zero",
        f" 10. prune: keep the {args.keep} newest releases (never current or previous)",
    ]


def print_summary(results: List[HostResult]) -> None:
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
                   help="no deploy: flip each host back to its previous release, restart, health-check")
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
    p.add_argument("--pip-args", default=os.environ.get("SAYSEE_PIP_ARGS", ""),
                   help="extra pip install arguments on the box (env SAYSEE_PIP_ARGS)")
    p.add_argument("--offline", action="store_true",
                   help="install only the wheel, no index, no dependencies (= --pip-args '--no-index --no-deps')")
    p.add_argument("--wheel", type=Path, default=None, help="use this prebuilt wheel instead of building one")
    p.add_argument("--build-dir", type=Path, default=None, help="keep the release folder here (default: a temp dir)")
    p.add_argument("--keep", type=int, default=KEEP_RELEASES, help="releases to keep on the box (min 2)")
    p.add_argument("--health-timeout", type=float, default=60.0, help="seconds to wait for a healthy service")
    p.add_argument("--health-settle", type=float, default=5.0, help="seconds health must hold (catches crash loops)")
    p.add_argument("--status-max-age", type=float, default=15.0, help="max age of status.json in seconds")
    p.add_argument("--bootstrap", choices=("auto", "always", "never"), default="auto",
                   help="run bootstrap.sh on the box first (auto: when user saysee is missing)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["remote"]:
        return remote_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.offline:
        args.pip_args = (args.pip_args + " --no-index --no-deps").strip()
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
                         f"release, restart {SERVICE}, health-check")
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
        _check_config(config)
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
            release = build_release(REPO, config, out, version, info, wheel=args.wheel)
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


# =====================================================================================
# Box side: `deploy.py remote activate|health|rollback` (runs from the release folder)
# =====================================================================================


class Box:
    """The install layout on one box, every path under ``root`` (``/`` for real)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.base = rooted(root, INSTALL_DIR)
        self.releases = self.base / "releases"
        self.current = self.base / "current"
        self.previous = self.base / "previous"
        self.config = rooted(root, CONFIG_PATH)
        self.unit = rooted(root, UNIT_PATH)
        self.udev = rooted(root, UDEV_RULE_PATH)

    @property
    def status(self) -> Path:
        """The status file the app writes: ``[app] status_file`` of the installed config."""
        path = STATUS_PATH
        try:
            import tomllib  # the box's Python may be older: then the default

            with open(self.config, "rb") as f:
                path = str(tomllib.load(f).get("app", {}).get("status_file", STATUS_PATH)) or STATUS_PATH
        except Exception:  # missing/unparsable config: the app would not start anyway
            pass
        return rooted(self.root, path) if path.startswith("/") else self.base / "current" / path

    @property
    def is_real(self) -> bool:
        return os.path.realpath(self.root) == "/"

    def target(self, link: Path) -> Optional[str]:
        """Release name a symlink points at (``releases/<name>``), or None."""
        try:
            dest = os.readlink(link)
        except OSError:
            return None
        name = Path(dest).name
        return name if (self.releases / name).is_dir() else None

    def point(self, link: Path, release: str) -> None:
        """Atomically repoint ``link`` at ``releases/<release>``: a new symlink, then rename(2)."""
        tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(f"releases/{release}", tmp)  # relative: works under any root prefix
        os.replace(tmp, link)  # rename() never follows the old link: atomic swap
        _fsync_dir(link.parent)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _install_file(src: Path, dst: Path, mode: int = 0o644) -> bool:
    """Copy atomically if the content differs; True if it changed."""
    data = src.read_bytes()
    if dst.is_file() and dst.read_bytes() == data:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, dst)
    _fsync_dir(dst.parent)
    return True


def _say(msg: str) -> None:
    print(msg, flush=True)


def _result(result: str, **fields) -> None:
    print(RESULT_TAG + json.dumps(dict(result=result, **fields)), flush=True)


def _systemctl(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise DeployError("systemctl not found on the box (is this a systemd system?)") from None
    except subprocess.TimeoutExpired:
        raise DeployError(f"systemctl {' '.join(args)} timed out") from None
    if check and proc.returncode != 0:
        raise DeployError(f"systemctl {' '.join(args)} failed: {_last_line(proc.stderr or proc.stdout)}")
    return proc


def verify_release(folder: Path, manifest_sha256: Optional[str] = None) -> dict:
    """Check every file in ``manifest.json``; DeployError naming the first bad file."""
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise DeployError(f"{mpath}: manifest missing (incomplete upload?)", EXIT_CHECKSUM)
    if manifest_sha256 and _sha256(mpath) != manifest_sha256:
        raise DeployError(f"checksum mismatch: {MANIFEST} (corrupted upload)", EXIT_CHECKSUM)
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
    except (ValueError, KeyError) as e:
        raise DeployError(f"{mpath}: not a valid manifest ({e})", EXIT_CHECKSUM) from None
    for rel, meta in sorted(files.items()):
        path = folder / rel
        if not path.is_file():
            raise DeployError(f"checksum mismatch: {rel} is missing", EXIT_CHECKSUM)
        got = _sha256(path)
        if got != meta["sha256"]:
            raise DeployError(f"checksum mismatch: {rel} (expected {meta['sha256'][:12]}…, got {got[:12]}…)",
                              EXIT_CHECKSUM)
    return manifest


def make_venv(folder: Path, manifest: dict, pip_args: str) -> None:
    """``venv`` with system site packages (apt's numpy, picamera2, GPIO) + the wheel."""
    venv = folder / "venv"
    # --without-pip: ensurepip costs seconds on a Pi; the pip that python3-pip
    # put in the system site packages installs into the venv just as well.
    proc = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise DeployError(f"{venv}: python3 -m venv failed ({_last_line(proc.stderr)}); "
                          "install python3-venv (bootstrap.sh does)", EXIT_INSTALL)
    py = str(venv / "bin" / "python")
    if subprocess.run([py, "-c", "import pip"], capture_output=True).returncode != 0:
        proc = subprocess.run([py, "-m", "ensurepip", "--default-pip"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise DeployError(f"{venv}: no pip (install python3-pip or python3-venv; bootstrap.sh does): "
                              f"{_last_line(proc.stderr)}", EXIT_INSTALL)
    wheel = folder / manifest["wheel"]
    cmd = [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-warn-script-location",
           *shlex.split(pip_args)]
    # Pin the system's numpy (apt's, which picamera2 is built against): if some
    # dependency wants another one, pip fails here, in one line, instead of
    # shadowing it in the venv and breaking the camera at run time.
    system_numpy = subprocess.run([sys.executable, "-c", "import numpy; print(numpy.__version__)"],
                                  capture_output=True, text=True, cwd="/")
    if system_numpy.returncode == 0 and system_numpy.stdout.strip():
        constraints = folder / "constraints.txt"
        constraints.write_text(f"numpy=={system_numpy.stdout.strip()}\n")
        cmd += ["-c", str(constraints)]
    cmd.append(f"{wheel}[device]")
    _say(f"  venv: pip install {wheel.name}[device] {pip_args}".rstrip())
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        for line in (proc.stdout + proc.stderr).strip().splitlines()[-15:]:
            _say(f"  pip: {line}")
        raise DeployError(f"pip install {wheel.name} failed: {_last_line(proc.stderr or proc.stdout)}", EXIT_INSTALL)
    # The box must be able to import what it will run, before we switch to it.
    proc = subprocess.run([py, "-c", "import device.__main__"], capture_output=True, text=True, cwd=str(folder))
    if proc.returncode != 0:
        raise DeployError(f"the new venv cannot import device: {_last_line(proc.stderr)}", EXIT_INSTALL)


def activate(box: Box, release: str) -> None:
    """Install one release's config/unit/udev rule, flip ``current``, restart."""
    folder = box.releases / release
    running = box.target(box.current)
    cfg_src = folder / REL_CONFIG
    if box.config.is_file() and running and running != release:
        shipped = box.releases / running / REL_CONFIG
        # Hand edits on the box would be overwritten: keep a copy, say where.
        if shipped.is_file() and shipped.read_bytes() != box.config.read_bytes():
            keep = box.config.with_name(f"config.toml.local-{time.strftime('%Y%m%dT%H%M%S')}")
            shutil.copy2(box.config, keep)
            _say(f"  config: {box.config} had local edits; saved them as {keep.name}")
    _install_file(cfg_src, box.config, 0o644)
    _install_file(folder / REL_UNIT, box.unit, 0o644)
    if (folder / REL_UDEV).is_file() and _install_file(folder / REL_UDEV, box.udev, 0o644):
        if box.is_real and shutil.which("udevadm"):
            subprocess.run(["udevadm", "control", "--reload-rules"], capture_output=True)
            subprocess.run(["udevadm", "trigger", "--subsystem-match=tty"], capture_output=True)
    box.point(box.current, release)
    _say(f"  switch: {box.current} -> releases/{release}")
    # Always: also picks up a unit someone edited by hand since the last deploy.
    _systemctl("daemon-reload", check=True)
    _systemctl("enable", "--quiet", SERVICE)
    # --no-block: a start that never sends READY=1 must not hang us for
    # TimeoutStartSec; the health poll below decides.
    _systemctl("restart", "--no-block", SERVICE, check=True)
    _say(f"  restart: systemctl restart {SERVICE}")


def check_health(box: Box, since: float, max_age: float) -> Tuple[bool, str]:
    """One look: the unit is active and the app rewrote its status file since ``since``."""
    state = _systemctl("is-active", SERVICE)
    st = (state.stdout or "").strip() or f"exit {state.returncode}"
    if state.returncode != 0:
        return False, f"service not active ({st})"
    try:
        mtime = box.status.stat().st_mtime
    except FileNotFoundError:
        return False, f"{box.status} not written"
    now = time.time()
    if mtime < since - 0.5:
        return False, f"{box.status} is older than the restart"
    if now - mtime > max_age:
        return False, f"{box.status} is stale ({now - mtime:.0f} s > {max_age:g} s)"
    try:
        json.loads(box.status.read_text())
    except (OSError, ValueError) as e:
        return False, f"{box.status} unreadable ({e})"
    return True, f"active, status {max(0.0, now - mtime):.1f} s old"


def wait_healthy(box: Box, since: float, timeout: float, settle: float, max_age: float) -> Tuple[bool, str]:
    """Poll until healthy for ``settle`` seconds straight, or ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    healthy_since: Optional[float] = None
    why = "not checked"
    while True:
        ok, why = check_health(box, since, max_age)
        now = time.monotonic()
        if ok:
            healthy_since = healthy_since if healthy_since is not None else now
            if now - healthy_since >= settle:
                return True, why
        else:
            healthy_since = None  # a crash loop flickers: start the settle over
        if now >= deadline:
            return False, why
        time.sleep(min(0.5, max(0.05, settle / 4)) if ok else 0.3)


def _journal_tail(box: Box) -> None:
    if box.is_real and shutil.which("journalctl"):
        proc = subprocess.run(["journalctl", "-u", SERVICE, "-n", "15", "--no-pager", "-o", "cat"],
                              capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            _say(f"  journal: {line}")


def _created(folder: Path) -> str:
    try:
        return json.loads((folder / MANIFEST).read_text()).get("created", "")
    except (OSError, ValueError):
        return ""


def prune(box: Box, keep: int) -> List[str]:
    """Remove old releases: keep ``keep`` in all, always current and previous, failed ones first."""
    current, previous = box.target(box.current), box.target(box.previous)
    names = [p.name for p in box.releases.iterdir() if p.is_dir() and not p.name.startswith(".")]
    # Newest first; a failed release is worth less than any good one.
    names.sort(key=lambda n: (not (box.releases / n / FAILED_MARK).exists(),
                              _created(box.releases / n), (box.releases / n).stat().st_mtime), reverse=True)
    kept = [n for n in (current, previous) if n]
    for n in names:
        if len(kept) >= keep:
            break
        if n not in kept:
            kept.append(n)
    removed = [n for n in names if n not in kept]
    for n in removed:
        shutil.rmtree(box.releases / n, ignore_errors=True)
    # Uploads abandoned by an interrupted deploy.
    for p in box.releases.glob(".incoming-*"):
        if time.time() - p.stat().st_mtime > 3600:
            shutil.rmtree(p, ignore_errors=True)
    return removed


@contextlib.contextmanager
def _lock(box: Box):
    import fcntl

    box.base.mkdir(parents=True, exist_ok=True)
    with open(box.base / ".deploy.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DeployError("another deploy is running on this box") from None
        yield


def _run_bootstrap(folder: Path) -> None:
    script = folder / REL_BOOTSTRAP
    _say(f"  bootstrap: {script} (first-time setup: packages, user, udev rule)")
    proc = subprocess.run(["bash", str(script), "--no-start"], capture_output=True, text=True)
    for line in proc.stdout.strip().splitlines()[-10:]:
        _say(f"  bootstrap: {line}")
    if proc.returncode != 0:
        raise DeployError(f"bootstrap.sh failed: {_last_line(proc.stderr or proc.stdout)}", EXIT_INSTALL)


def remote_activate(a: argparse.Namespace) -> int:
    os.umask(0o022)
    box = Box(a.root)
    with _lock(box):
        incoming = box.releases / a.incoming
        try:
            manifest = verify_release(incoming, a.manifest_sha256)
        except DeployError:
            shutil.rmtree(incoming, ignore_errors=True)  # corrupt: never activated, not kept
            raise
        _say(f"  verify: {len(manifest['files'])} files match {MANIFEST}")
        folder = box.releases / a.version
        if folder.exists():
            raise DeployError(f"{folder}: release already exists on this box")
        os.rename(incoming, folder)
        if a.bootstrap:
            _run_bootstrap(folder)
        previous = box.target(box.current)
        try:
            make_venv(folder, manifest, a.pip_args)
        except DeployError as e:
            (folder / FAILED_MARK).write_text(f"{e}\n")
            still = f"; the box still runs {previous}" if previous else ""
            raise DeployError(f"{e}{still}", e.code) from None
        since = time.time()
        activate(box, a.version)
        ok, why = wait_healthy(box, since, a.health_timeout, a.settle, a.status_max_age)
        if ok:
            _say(f"  health: ok ({why})")
            if previous and previous != a.version:
                box.point(box.previous, previous)
            removed = prune(box, a.keep)
            if removed:
                _say(f"  prune: removed {', '.join(removed)}")
            _result("ok", version=a.version, previous=previous, message=why)
            return EXIT_OK
        _say(f"  health: FAILED ({why})")
        _journal_tail(box)
        (folder / FAILED_MARK).write_text(why + "\n")
        if not previous:
            _result("failed", version=a.version, message=f"health check failed: {why}; no previous release to roll back to")
            return EXIT_ROLLED_BACK
        _say(f"  rollback: back to {previous}")
        since = time.time()
        activate(box, previous)
        ok2, why2 = wait_healthy(box, since, a.health_timeout, a.settle, a.status_max_age)
        after = "healthy" if ok2 else f"NOT healthy either: {why2}"
        _say(f"  ROLLED BACK to {previous} ({after})")
        _result("rolled-back", version=a.version, previous=previous,
                message=f"to {previous} ({after}); health check failed: {why}")
        return EXIT_ROLLED_BACK


def remote_rollback(a: argparse.Namespace) -> int:
    box = Box(a.root)
    with _lock(box):
        current, previous = box.target(box.current), box.target(box.previous)
        if not previous:
            raise DeployError("no previous release to roll back to")
        since = time.time()
        activate(box, previous)
        if current:
            box.point(box.previous, current)
        ok, why = wait_healthy(box, since, a.health_timeout, a.settle, a.status_max_age)
        _result("ok" if ok else "failed", version=previous, message=why)
        return EXIT_OK if ok else EXIT_FAILED


def remote_health(a: argparse.Namespace) -> int:
    box = Box(a.root)
    ok, why = check_health(box, 0.0, a.status_max_age)
    _say(f"{'healthy' if ok else 'UNHEALTHY'}: {why} (release {box.target(box.current) or '-'})")
    return EXIT_OK if ok else EXIT_FAILED


def remote_main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="deploy.py remote", description="box-side deploy steps")
    p.add_argument("action", choices=("activate", "rollback", "health"))
    p.add_argument("--root", default="/")
    p.add_argument("--incoming", default="")
    p.add_argument("--version", default="")
    p.add_argument("--manifest-sha256", default=None)
    p.add_argument("--keep", type=int, default=KEEP_RELEASES)
    p.add_argument("--health-timeout", type=float, default=60.0)
    p.add_argument("--status-max-age", type=float, default=15.0)
    p.add_argument("--settle", type=float, default=5.0)
    p.add_argument("--pip-args", default=os.environ.get("SAYSEE_PIP_ARGS", ""))
    p.add_argument("--bootstrap", action="store_true")
    a = p.parse_args(argv)
    try:
        if a.action == "activate":
            return remote_activate(a)
        if a.action == "rollback":
            return remote_rollback(a)
        return remote_health(a)
    except DeployError as e:
        print(f"deploy: error: {e}", file=sys.stderr, flush=True)
        _result("failed", version=a.version, message=str(e))
        return e.code
    except Exception as e:  # one line for the workstation, never a traceback
        print(f"deploy: error: unexpected {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        _result("failed", version=a.version, message=f"unexpected {type(e).__name__}: {e}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
