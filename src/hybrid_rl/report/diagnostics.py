"""Training diagnostics in units that compare across algorithms, reward scales and conditions.

- TD loss: the critic's temporal-difference error alone. CQL's `critic_loss` also holds the
  (negative-going) conservative term; runs log `td_loss` separately, and for CQL runs logged
  before that it is recovered exactly from the interval means,
  critic_loss − cql_alpha · members · cql_penalty. A run with a critic and no conservative
  term (IQL, TD3+BC) has critic_loss = TD loss.
- Unscaled units: IQL trains on rewards × reward_scale, so Q scales with it and a squared TD
  error with its square. Q is divided by reward_scale (raw-reward return units) and the TD
  loss by reward_scale² before any statistic, so a variance of it is in raw-reward⁴ units
  whatever the scale (dividing the variance by reward_scale² only would leave a factor
  reward_scale² in it).
- Late-training TD-loss variance: the variance (ddof = 1) across the logged interval means of
  the unscaled TD loss over the last `LATE_FRACTION` of training; its coefficient of variation
  (std / mean, unitless) beside it.
- Q fluctuation: the std (ddof = 1) of the batch-mean Q (return units) logged at the last
  `Q_FLUCTUATION_EVALS` evaluation steps: how much the critic's value level moves over time
  (the spread of Q across states, `q_data_std`, is not instability).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LATE_FRACTION = 0.2
Q_FLUCTUATION_EVALS = 5

MetricValues = Sequence[float | None]


@dataclass(frozen=True)
class Diagnostics:
    """One run's diagnostics (None: not available, e.g. BC has no critic)."""

    late_td_loss_variance: float | None  # raw-reward⁴ units (loss ÷ reward_scale², then var)
    late_td_loss_cv: float | None  # std / mean of the same values, unitless
    late_q_mean: float | None  # mean Q over late training, raw-reward return units
    q_fluctuation: float | None  # std of mean Q at the last evaluations, return units


def td_loss_series(
    train_metrics: Mapping[str, MetricValues], agent_config: Mapping[str, Any]
) -> list[float | None] | None:
    """The TD-only critic loss per log interval (see the module docstring); None when the run
    has no critic loss (BC)."""
    if "td_loss" in train_metrics:
        return list(train_metrics["td_loss"])
    critic = train_metrics.get("critic_loss")
    if critic is None:
        return None
    penalty = train_metrics.get("cql_penalty")
    if penalty is None:
        return list(critic)
    alpha = float(agent_config.get("cql_alpha", math.nan))
    members = int(agent_config.get("critic_members", 2))
    return [
        None if c is None or p is None else c - alpha * members * p
        for c, p in zip(critic, penalty, strict=True)
    ]


def scaled(values: MetricValues, factor: float) -> list[float | None]:
    """Each value divided by `factor`, None kept."""
    return [None if v is None else v / factor for v in values]


def late_values(steps: Sequence[int], values: MetricValues, fraction: float) -> list[float]:
    """The finite values logged in the last `fraction` of the run's logged steps."""
    if not steps:
        return []
    end = steps[-1]
    begin = end - fraction * end
    return [
        float(v)
        for s, v in zip(steps, values, strict=True)
        if s > begin and v is not None and math.isfinite(v)
    ]


def run_diagnostics(
    train_steps: Sequence[int],
    train_metrics: Mapping[str, MetricValues],
    eval_steps: Sequence[int],
    reward_scale: float,
    agent_config: Mapping[str, Any],
) -> Diagnostics:
    """The diagnostics of one run from its logged metrics (metrics.json's "train" lists), its
    evaluation steps and config.json's reward_scale and agent config."""
    scale = reward_scale if reward_scale and math.isfinite(reward_scale) else 1.0
    td = td_loss_series(train_metrics, agent_config)
    variance = cv = None
    if td is not None:
        late = late_values(train_steps, scaled(td, scale**2), LATE_FRACTION)
        if len(late) >= 2:
            variance = float(np.var(late, ddof=1))
            mean = float(np.mean(late))
            cv = float(np.std(late, ddof=1) / abs(mean)) if mean else None
    q_mean = q_fluct = None
    q = train_metrics.get("q_data_mean")
    if q is not None:
        q_return = scaled(q, scale)
        late_q = late_values(train_steps, q_return, LATE_FRACTION)
        q_mean = float(np.mean(late_q)) if late_q else None
        at_step = dict(zip(train_steps, q_return, strict=True))
        at_evals = [
            float(v)
            for s in eval_steps
            if s > 0 and (v := at_step.get(s)) is not None and math.isfinite(v)
        ][-Q_FLUCTUATION_EVALS:]
        q_fluct = float(np.std(at_evals, ddof=1)) if len(at_evals) >= 2 else None
    return Diagnostics(variance, cv, q_mean, q_fluct)
