"""swiftops: Hydra configs, sweeps, diagnosis and reports for ms-swift fine-tuning.

Importing the package is cheap on purpose: torch, ms-swift and matplotlib are only
imported inside the functions (or subprocesses) that need them.
"""

__version__ = "0.1.0"
