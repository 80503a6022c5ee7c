"""Run every benchmark module (``bench/<name>_bench.py``) in turn; each prints its own table.

``python -m bench [name ...]`` runs only the named ones (e.g. ``python -m bench billing``).
"""

import importlib
import os
import pkgutil
import sys
import time

import django


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evcharge.settings")
    django.setup()
    import bench

    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.endswith("_bench"))
    wanted = {f"{a.removesuffix('_bench')}_bench" for a in argv}
    if wanted:
        unknown = wanted - set(names)
        if unknown:
            print(
                f"unknown benchmarks: {', '.join(sorted(unknown))}; have {', '.join(names)}", file=sys.stderr
            )
            return 2
        names = [n for n in names if n in wanted]
    for name in names:
        started = time.perf_counter()
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"bench.{name}").run()
        print(f"=== {name}: {time.perf_counter() - started:.1f} s ===", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
