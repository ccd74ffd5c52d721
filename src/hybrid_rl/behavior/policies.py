"""The behaviour policies shipped inside the package, each with a JSON card."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from hybrid_rl.algos.networks import TanhGaussianActor

POLICY_DIR = Path(__file__).parent / "policies"


def policy_paths(
    env_name: str, quality: str = "medium", policy_dir: Path | None = None
) -> tuple[Path, Path]:
    """(weights .pt, card .json) of the shipped policy for e.g. ('hopper', 'medium'); a
    quality's hyphens become underscores ('medium-replay': hopper_medium_replay.pt)."""
    stem = (policy_dir or POLICY_DIR) / f"{env_name}_{quality.replace('-', '_')}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_verified(
    weights: Path, card_path: Path, remedy: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(card, torch payload) of shipped `weights`; ValueError, ending with `remedy`, when the
    weights' sha256 is not the one their card records."""
    card = json.loads(card_path.read_text())
    digest = sha256_of(weights)
    if digest != card["sha256"]:
        raise ValueError(
            f"{weights} has sha256 {digest} but its card {card_path} says {card['sha256']}: "
            f"the weights were changed or damaged; {remedy}"
        )
    return card, torch.load(weights, map_location="cpu", weights_only=True)


def load_shipped_policy(
    env_name: str, quality: str = "medium", policy_dir: Path | None = None
) -> tuple[TanhGaussianActor, dict[str, Any]]:
    """The actor and its card; raises if the weights do not match the card's sha256."""
    weights, card_path = policy_paths(env_name, quality, policy_dir)
    if not weights.exists() or not card_path.exists():
        shipped = sorted(p.stem for p in weights.parent.glob("*.pt"))
        raise FileNotFoundError(
            f"no shipped {quality} behaviour policy for {env_name!r} (looked for {weights}); "
            f"shipped policies: {shipped or 'none'}; ship one from a behaviour-training run with "
            f"`hybrid-rl behavior select --run behavior_runs/<run> --target <normalized score> "
            f"--band <distance> --quality {quality}`"
        )
    card, payload = load_verified(weights, card_path, "reinstall the package")
    actor = TanhGaussianActor(payload["obs_dim"], payload["act_dim"])
    actor.load_state_dict(payload["actor"])
    actor.eval()
    return actor, card
