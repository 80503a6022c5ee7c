"""Build the native pricing core in place: ``python -m billing.native.build``.

``make install`` runs it. The core is optional: without a C compiler this prints why and
exits 0, and the Python engine prices every session (billing/pricing.py). ``--require``, or
``EVCHARGE_REQUIRE_NATIVE`` set (CI sets it), makes a failed build an error. Rebuilds only when
the source is newer than the library.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

SOURCE = Path(__file__).with_name("pricing_core.c")
TARGET = SOURCE.parent.parent / f"_pricing_core{sysconfig.get_config_var('EXT_SUFFIX')}"


def build(*, require: bool = False) -> int:
    if TARGET.exists() and TARGET.stat().st_mtime >= SOURCE.stat().st_mtime:
        return 0
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    command = [
        *compiler,
        "-O2",
        "-fPIC",
        "-shared",
        "-Wall",
        "-Werror",
        f"-I{sysconfig.get_paths()['include']}",
        str(SOURCE),
        "-o",
        str(TARGET),
    ]
    try:
        subprocess.run(command, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        print(
            f"native pricing core not built ({error}); the Python engine prices every session",
            file=sys.stderr,
        )
        return 1 if require else 0
    return 0


if __name__ == "__main__":
    sys.exit(build(require="--require" in sys.argv[1:] or bool(os.environ.get("EVCHARGE_REQUIRE_NATIVE"))))
