"""Virtual environments holding a real Kernel Gateway or Enterprise Gateway, built once.

Each gateway gets its own venv (Enterprise Gateway pins jupyter_server<2 and jupyter_client<7,
which nb itself cannot live with). A venv is cached in a folder keyed by its pinned
requirements and the Python version, under `NB_TEST_CACHE_DIR` or the user's cache dir
(~/.cache/nb-tests), so `make test` builds it on a fresh machine and reuses it afterwards.
A lock file makes parallel test sessions build it once; a stamp written last marks it complete,
so a build killed half-way is redone rather than trusted.

    python -m tests.gateway.venvs      builds both and prints how long each took
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

# ipykernel < 7: Enterprise Gateway's own tests pin it (7's asyncio rewrite changes idling),
# and one kernel version for both gateways keeps their results comparable.
KERNEL_GATEWAY = ("jupyter_kernel_gateway==3.0.1", "ipykernel==6.29.5")
ENTERPRISE_GATEWAY = ("jupyter_enterprise_gateway==3.3.0", "ipykernel==6.29.5")

_STAMP = "nb-venv-complete.json"
_BUILD_TIMEOUT = 900.0


@dataclass(frozen=True)
class GatewayVenv:
    path: Path
    requirements: tuple[str, ...]
    build_sec: float | None  # None: found complete in the cache

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def cache_root() -> Path:
    override = os.environ.get("NB_TEST_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("nb-tests"))


def _base_python() -> str:
    # The interpreter behind our own venv: a venv made from a venv's python still works, but
    # naming the base one keeps the cache independent of where nb's .venv lives.
    return getattr(sys, "_base_executable", None) or sys.executable


def venv_key(requirements: tuple[str, ...]) -> str:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    digest = hashlib.sha256("\n".join([version, *requirements]).encode()).hexdigest()[:16]
    return f"py{version}-{digest}"


def ensure_venv(name: str, requirements: tuple[str, ...]) -> GatewayVenv:
    """The venv for these requirements, built now if no complete one is cached."""
    root = cache_root() / "gateway-venvs"
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}-{venv_key(requirements)}"
    with open(root / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session building it: wait for that build
        if (path / _STAMP).exists():
            return GatewayVenv(path, requirements, None)
        began = time.monotonic()
        shutil.rmtree(path, ignore_errors=True)
        log = root / f"{path.name}.build.log"
        with open(log, "w") as out:
            for command in (
                [_base_python(), "-m", "venv", str(path)],
                [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements],
            ):
                done = subprocess.run(
                    command, stdout=out, stderr=subprocess.STDOUT, timeout=_BUILD_TIMEOUT
                )
                if done.returncode != 0:
                    raise RuntimeError(
                        f"building the {name} venv failed ({' '.join(command)}): see {log}\n"
                        + log.read_text()[-3000:]
                    )
        took = time.monotonic() - began
        (path / _STAMP).write_text(json.dumps({"requirements": requirements, "build_sec": took}))
        return GatewayVenv(path, requirements, took)


def kernel_gateway_venv() -> GatewayVenv:
    return ensure_venv("kernel-gateway", KERNEL_GATEWAY)


def enterprise_gateway_venv() -> GatewayVenv:
    return ensure_venv("enterprise-gateway", ENTERPRISE_GATEWAY)


if __name__ == "__main__":
    for build in (kernel_gateway_venv, enterprise_gateway_venv):
        venv = build()
        took = "cached" if venv.build_sec is None else f"built in {venv.build_sec:.1f}s"
        print(f"{venv.path}: {took}")
