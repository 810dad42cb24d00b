"""The device agent as one file: a zip application (``agent.pyz``) of just the modules it
imports, so a device installs httpx, numpy and ONNX Runtime and nothing else (``pip install
lightsearch`` would pull torch and Ray with the server's dependencies).

The service serves it to device tokens (``GET /api/v1/devices/agent/agent.pyz``); it is built
from the installed sources, byte for byte the same for the same sources (fixed timestamps),
so its SHA-256 names a version.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from functools import lru_cache
from pathlib import Path

#: every project module ``service.device_agent.agent`` imports (tests check the list is whole)
MODULES = (
    "service/__init__.py", "service/device_agent/__init__.py",
    "service/device_agent/agent.py", "service/device_agent/measure.py",
    "search/__init__.py", "search/base.py", "search/profilers/__init__.py",
    "search/profilers/hostlock.py", "search/profilers/measured.py",
    "spaces/__init__.py", "spaces/base.py", "spaces/isolation.py",
)
MAIN = ("import sys\n"
        "from service.device_agent.agent import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
_EPOCH = (2020, 1, 1, 0, 0, 0)


def _root() -> Path:
    import service

    return Path(service.__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def agent_zipapp() -> bytes:
    """The bytes of ``agent.pyz`` (run it with ``python agent.pyz --server ... --token ...``)."""
    root, buf = _root(), io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in [("__main__.py", MAIN.encode()),
                           *((m, (root / m).read_bytes()) for m in MODULES)]:
            info = zipfile.ZipInfo(name, _EPOCH)
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            zf.writestr(info, data)
    return b"#!/usr/bin/env python3\n" + buf.getvalue()


def agent_digest() -> str:
    return hashlib.sha256(agent_zipapp()).hexdigest()
