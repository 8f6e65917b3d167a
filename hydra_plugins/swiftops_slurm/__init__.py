"""swiftops' SLURM launcher, found by Hydra in the `hydra_plugins` namespace:
`python -m swiftops -m hydra/launcher=slurm ...` (conf/hydra/launcher/slurm.yaml)."""
