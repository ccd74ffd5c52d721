"""hybrid-rl: offline RL under corrupted datasets, and online recovery."""

__version__ = "0.1.0"
