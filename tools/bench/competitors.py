"""Obtain the competitors' sources into a cache folder outside the repository (CPython only).

umqtt.simple and umqtt.robust come from micropython-lib, mqtt_as from peterhinch's
micropython-mqtt. Three ways, in order:
  1. --umqtt-src / --mqtt-as-src: a checkout of the public repository (a work tree, or a bare
     git directory such as a mirror), copied into the cache with its git commit;
  2. what an earlier run left in the cache (with the versions it recorded);
  3. online, MicroPython's own package manager: micropython -m mip install --target <cache>.
Their code is only ever read from the cache; it is never copied into this repository.
"""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "mote-bench")

# (name in the cache, files: repository path -> path inside the cache folder)
UMQTT_FILES = {
    "micropython/umqtt.simple/umqtt/simple.py": "umqtt/simple.py",
    "micropython/umqtt.robust/umqtt/robust.py": "umqtt/robust.py",
}
UMQTT_MANIFESTS = {
    "umqtt.simple": "micropython/umqtt.simple/manifest.py",
    "umqtt.robust": "micropython/umqtt.robust/manifest.py",
}
MQTT_AS_FILES = {"mqtt_as/__init__.py": "mqtt_as/__init__.py"}

UMQTT_REPO = "https://github.com/micropython/micropython-lib"
MQTT_AS_REPO = "https://github.com/peterhinch/micropython-mqtt"


class Missing(Exception):
    pass


def _git(src, *args):
    """Run git on a work tree or a bare repository; None when it is not a git repository."""
    bare = os.path.isdir(os.path.join(src, "objects")) and os.path.exists(
        os.path.join(src, "HEAD")
    )
    base = ["git", "--git-dir", src] if bare else ["git", "-C", src]
    try:
        r = subprocess.run(base + list(args), capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def _read_src(src, path):
    """A file from a source folder: from the work tree if there, else from git HEAD."""
    p = os.path.join(src, path)
    if os.path.isfile(p):
        with open(p, "rb") as f:
            return f.read()
    data = _git(src, "show", "HEAD:" + path)
    if data is None:
        raise Missing(f"{path} not found in {src}")
    return data


def _commit(src):
    out = _git(src, "log", "-1", "--format=%H %cs")
    return out.decode().strip() if out else "unknown commit (not a git checkout)"


def _write_cache(dest, files, version):
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    for rel, data in files.items():
        p = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    with open(os.path.join(dest, "VERSION.json"), "w") as f:
        json.dump(version, f, indent=1)


def _from_src_umqtt(src, dest):
    files = {dst: _read_src(src, path) for path, dst in UMQTT_FILES.items()}
    pkg = {}
    for name, manifest in UMQTT_MANIFESTS.items():
        m = re.search(rb'version\s*=\s*"([^"]+)"', _read_src(src, manifest))
        pkg[name] = m.group(1).decode() if m else "?"
    version = {
        "source": f"{UMQTT_REPO} at {_commit(src)}",
        "packages": pkg,
        "obtained": time.strftime("%Y-%m-%d"),
    }
    _write_cache(dest, files, version)


def _from_src_mqtt_as(src, dest):
    files = {dst: _read_src(src, path) for path, dst in MQTT_AS_FILES.items()}
    m = re.search(rb"VERSION\s*=\s*\(([^)]*)\)", files["mqtt_as/__init__.py"])
    version = {
        "source": f"{MQTT_AS_REPO} at {_commit(src)}",
        "packages": {
            "mqtt_as": m.group(1).decode().replace(" ", "").replace(",", ".") if m else "?"
        },
        "obtained": time.strftime("%Y-%m-%d"),
    }
    _write_cache(dest, files, version)


def _json_get(url, timeout_s=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def _mip(micropython, dest, packages, log):
    tmp = dest + ".download"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    cmd = [micropython, "-m", "mip", "install", "--no-mpy", "--target", tmp] + packages
    log("  + " + " ".join(cmd))
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp)
        out = (r.stdout + r.stderr).strip()
        ok = r.returncode == 0 and "failed" not in out.lower() and "error" not in out.lower()
    except (OSError, subprocess.SubprocessError) as e:
        ok, out = False, str(e)
    if not ok:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Missing(
            "mip could not download "
            + " ".join(packages)
            + ": "
            + (out.splitlines()[-1] if out else "no output")
        )
    return tmp


def _online_umqtt(micropython, dest, log):
    tmp = _mip(micropython, dest, ["umqtt.simple", "umqtt.robust"], log)
    pkg = {}
    for name in UMQTT_MANIFESTS:
        j = _json_get(f"https://micropython.org/pi/v2/package/6/{name}/latest.json")
        pkg[name] = j.get("version", "?") if isinstance(j, dict) else "?"
    files = {}
    for dst in UMQTT_FILES.values():
        with open(os.path.join(tmp, dst), "rb") as f:
            files[dst] = f.read()
    shutil.rmtree(tmp, ignore_errors=True)
    version = {
        "source": "mip (micropython.org index)",
        "packages": pkg,
        "obtained": time.strftime("%Y-%m-%d"),
    }
    _write_cache(dest, files, version)


def _online_mqtt_as(micropython, dest, log):
    tmp = _mip(micropython, dest, ["github:peterhinch/micropython-mqtt"], log)
    with open(os.path.join(tmp, "mqtt_as", "__init__.py"), "rb") as f:
        data = f.read()
    shutil.rmtree(tmp, ignore_errors=True)
    j = _json_get("https://api.github.com/repos/peterhinch/micropython-mqtt/commits/master")
    sha = j.get("sha", "?") if isinstance(j, dict) else "? (commit not known)"
    m = re.search(rb"VERSION\s*=\s*\(([^)]*)\)", data)
    version = {
        "source": f"mip github:peterhinch/micropython-mqtt, master at {sha}",
        "packages": {
            "mqtt_as": m.group(1).decode().replace(" ", "").replace(",", ".") if m else "?"
        },
        "obtained": time.strftime("%Y-%m-%d"),
    }
    _write_cache(dest, {"mqtt_as/__init__.py": data}, version)


def _load_version(dest):
    try:
        with open(os.path.join(dest, "VERSION.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def prepare(
    cache, micropython, umqtt_src=None, mqtt_as_src=None, online=True, refresh=False, log=print
):
    """Make the competitors available in the cache.

    Returns {"umqtt": {...}, "mqtt_as": {...}}: each either {"path", "version"} or
    {"missing": reason}."""
    os.makedirs(cache, exist_ok=True)
    out = {}
    jobs = (
        ("umqtt", umqtt_src, _from_src_umqtt, _online_umqtt, "--umqtt-src", UMQTT_REPO),
        (
            "mqtt_as",
            mqtt_as_src,
            _from_src_mqtt_as,
            _online_mqtt_as,
            "--mqtt-as-src",
            MQTT_AS_REPO,
        ),
    )
    for name, src, from_src, online_fn, flag, repo in jobs:
        dest = os.path.join(cache, name)
        try:
            if src:
                log(f"  {name}: copying from {src}")
                from_src(src, dest)
            elif _load_version(dest) is None or refresh:
                if not online:
                    raise Missing("not in the cache and downloads are off")
                log(f"  {name}: not in {cache}, downloading with mip")
                online_fn(micropython, dest, log)
            else:
                log(f"  {name}: using the cached copy in {dest}")
            out[name] = {"path": dest, "version": _load_version(dest)}
        except Missing as e:
            out[name] = {"missing": f"{e}. Offline, pass {flag} DIR (a checkout of {repo})."}
    return out
