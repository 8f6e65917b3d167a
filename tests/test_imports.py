"""The orchestrator's start-up path stays light: no torch, ms-swift, transformers or matplotlib."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "swift", "transformers", "matplotlib", "tensorboard", "pandas")


def test_orchestrator_imports_no_heavy_modules():
    code = (
        "import sys\n"
        "import swiftops.__main__, swiftops.job, swiftops.runner, swiftops.command, swiftops.validate\n"
        "import swiftops.prepare, swiftops.sweep_check, swiftops.callbacks, swiftops.configs, swiftops.tiny\n"
        "import swiftops.leases, swiftops.resume, swiftops.sweep_progress\n"
        # Hydra imports every plugin module at start-up, in every run
        "import hydra_plugins.swiftops_slurm.slurm_launcher\n"
        "import hydra_plugins.swiftops_autotune.autotune_sweeper\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
