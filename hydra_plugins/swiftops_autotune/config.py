"""The sweeper's Hydra node, `hydra/sweeper=autotune` (no postponed annotations here: Hydra
scans plugin modules in a way that dataclasses with string annotations can't follow)."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class AutotuneSweeperConf:
    _target_: str = "hydra_plugins.swiftops_autotune.autotune_sweeper.AutotuneSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="autotune", node=AutotuneSweeperConf, provider="swiftops"
)
