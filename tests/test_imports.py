"""The package's imports: no circle among its modules, and the orchestrator's start-up path stays
light (no torch, ms-swift, transformers or matplotlib)."""

from __future__ import annotations

import graphlib
import subprocess
import sys

import grimp

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


def test_no_module_of_the_package_imports_itself_in_a_circle():
    # every import counts: inside functions too (a late import hides a circle, it doesn't break it),
    # and under `if TYPE_CHECKING:` (it never runs, but the two modules still lean on each other)
    graph = grimp.build_graph("swiftops", cache_dir=None)
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    try:
        graphlib.TopologicalSorter(imports).prepare()
    except graphlib.CycleError as circle:
        raise AssertionError(f"an import circle: {' -> '.join(circle.args[1])}") from None
