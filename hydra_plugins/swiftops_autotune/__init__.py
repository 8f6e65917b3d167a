"""swiftops' autotune sweeper, found by Hydra in the `hydra_plugins` namespace (as its own
sweepers are): `python -m swiftops +sweep=autotune`."""
