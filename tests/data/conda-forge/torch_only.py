"""The envspec.yml of the torch-only targets in targets.json: one source for the lock test
(tests/lock/test_lock_conda_forge.py) and the benchmark (benchmarks/bench_lock_real.py).

Loaded by path (tests/ is not a package); needs PyYAML only.
"""

from __future__ import annotations

from typing import Any

ACCELERATOR = {"osx-arm64": "mps", "osx-64": "cpu", "linux-cuda": "cuda", "linux-cpu": "cpu", "win-cuda": "cuda"}
#: The spec's common dependencies: it needs one, and every python in the records depends on tzdata.
COMMON = ["tzdata"]


def spec_text(cases: dict[str, dict[str, Any]]) -> str:
    """An envspec.yml whose targets are ``cases`` (targets.json entries: subdir, virtual packages, specs)."""
    import yaml

    out: dict[str, Any] = {"version": 1, "name": "torch-only", "channels": ["conda-forge"], "dependencies": COMMON}
    out["targets"] = {
        name: {
            "description": f"torch-only {name} on real conda-forge records",
            "subdir": case["subdir"],
            "accelerator": ACCELERATOR[name],
            "virtual_packages": case["virtual_packages"],
            "torch": case["specs"],
            "runner": "ubuntu-latest",
            "smoke_device": ACCELERATOR[name],
        }
        for name, case in cases.items()
    }
    return yaml.safe_dump(out, sort_keys=False)
