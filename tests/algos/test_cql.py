import io
import math

import pytest
import torch

from hybrid_rl.algos import fused_critic
from hybrid_rl.algos.cql import CQL, CQLConfig
from hybrid_rl.algos.networks import QEnsemble
from hybrid_rl.algos.precision import missing_bf16
from hybrid_rl.batch import TransitionBatch

OBS_DIM, ACT_DIM, BATCH = 3, 2, 4


def save_and_load(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def plain_q(critic, member_mlp, member, obs, act):
    return member_mlp(critic.net, member, torch.cat([obs, act], dim=-1))[:, 0]


@pytest.mark.parametrize(
    ("members", "states_per_chunk"),
    # None: the default chunking (one chunk at this batch size); 1 and 3: several chunks of
    # states, the last one partial for 3, as CQL's critic runs at batch 256 on a CPU.
    [(2, None), (2, 1), (3, 3)],
)
def test_critic_loss_equals_per_member_per_source_reference(
    random_batch, member_mlp, monkeypatch, members, states_per_chunk
):
    n = 3
    if states_per_chunk is not None:
        # Chunk size in floats = members × hidden width × actions per state × states.
        floats = members * 256 * (1 + 3 * n) * states_per_chunk
        monkeypatch.setattr(fused_critic, "_CHUNK_FLOATS", floats)
    torch.manual_seed(0)
    config = CQLConfig(num_sampled_actions=n, cql_alpha=5.0, critic_members=members)
    agent = CQL(OBS_DIM, ACT_DIM, config)
    # A target that differs from the critic, so the reference cannot mix the two up.
    for p in agent.critic_target.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    batch = random_batch(BATCH, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(1))
    samples = agent.sample_actions(batch.observations, batch.next_observations)

    loss, stats = agent.critic_loss(batch.observations, batch.next_observations, batch, samples)
    loss.backward()
    grads = [p.grad.clone() for p in agent.critic.parameters()]
    agent.critic.zero_grad()

    assert samples.uniform.shape == samples.current.shape == samples.next.shape == (n, BATCH, 2)
    assert samples.current_log_prob.shape == samples.next_log_prob.shape == (n, BATCH)
    assert samples.target.shape == (BATCH, ACT_DIM)
    assert samples.uniform.abs().max() <= 1.0

    s, a = batch.observations, batch.actions
    with torch.no_grad():
        target_q = (
            torch.stack(
                [
                    plain_q(
                        agent.critic_target, member_mlp, m, batch.next_observations, samples.target
                    )
                    for m in range(members)
                ]
            )
            .min(0)
            .values
        )
        target = batch.rewards + 0.99 * (1 - batch.terminals) * target_q
    expected = torch.zeros(())
    penalties = []
    for member in range(members):
        q_data = plain_q(agent.critic, member_mlp, member, s, a)
        terms = []
        for k in range(n):
            uniform_density = 0.5**ACT_DIM
            terms.append(
                plain_q(agent.critic, member_mlp, member, s, samples.uniform[k])
                - math.log(uniform_density)
            )
        for k in range(n):
            q = plain_q(agent.critic, member_mlp, member, s, samples.current[k])
            terms.append(q - samples.current_log_prob[k])
        for k in range(n):
            q = plain_q(agent.critic, member_mlp, member, s, samples.next[k])
            terms.append(q - samples.next_log_prob[k])
        log_sum_exp = torch.log(sum(torch.exp(t) for t in terms))
        penalty = (log_sum_exp - q_data).mean()
        penalties.append(penalty.detach())
        expected = expected + ((q_data - target) ** 2).mean() + 5.0 * penalty
    expected.backward()

    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(stats["cql_penalty"], torch.stack(penalties).mean())
    for got, p in zip(grads, agent.critic.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-5)


def test_td_target_has_no_entropy_term_and_stops_at_terminals(random_batch, member_mlp):
    # With cql_alpha = 0 the loss is the TD error alone; a huge temperature would change it
    # if an entropy bonus leaked into the backup.
    torch.manual_seed(2)
    agent = CQL(OBS_DIM, ACT_DIM, CQLConfig(cql_alpha=0.0, init_alpha=1e6))
    batch = random_batch(BATCH, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(3))
    samples = agent.sample_actions(batch.observations, batch.next_observations)
    loss, _ = agent.critic_loss(batch.observations, batch.next_observations, batch, samples)
    with torch.no_grad():
        next_q = torch.minimum(
            *(
                plain_q(agent.critic_target, member_mlp, m, batch.next_observations, samples.target)
                for m in range(2)
            )
        )
        target = batch.rewards + 0.99 * (1 - batch.terminals) * next_q
        s, a = batch.observations, batch.actions
        q = [plain_q(agent.critic, member_mlp, m, s, a) for m in (0, 1)]
        expected = ((q[0] - target) ** 2).mean() + ((q[1] - target) ** 2).mean()
    torch.testing.assert_close(loss.detach(), expected)


def test_actor_loss_is_alpha_log_prob_minus_min_q(member_mlp):
    torch.manual_seed(4)
    agent = CQL(OBS_DIM, ACT_DIM, CQLConfig())
    obs = torch.randn(BATCH, OBS_DIM)
    alpha = torch.tensor(0.3)
    torch.manual_seed(5)
    loss, log_prob = agent.actor_loss(obs, alpha)

    with torch.no_grad():
        mean, log_std = member_mlp(agent.actor.net, 0, obs).chunk(2, dim=-1)
        log_std = log_std.clamp(-5.0, 2.0)
        torch.manual_seed(5)
        eps = torch.randn(BATCH, ACT_DIM)
        u = mean + log_std.exp() * eps
        action = torch.tanh(u)
        expected_log_prob = (
            -0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi) - torch.log(1 - action**2)
        ).sum(-1)
        q = torch.minimum(*(plain_q(agent.critic, member_mlp, m, obs, action) for m in range(2)))
        expected = (0.3 * expected_log_prob - q).mean()
    torch.testing.assert_close(log_prob.detach(), expected_log_prob, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-4, atol=1e-4)


def test_alpha_loss_raises_alpha_when_entropy_is_below_target():
    agent = CQL(OBS_DIM, ACT_DIM, CQLConfig(init_alpha=0.5))
    log_prob = torch.tensor([3.0, 5.0, 1.0, 7.0])  # entropy −4 < target −|A| = −2
    loss = agent.alpha_loss(log_prob)
    loss.backward()
    torch.testing.assert_close(loss.detach(), torch.tensor(-math.log(0.5) * (4.0 - 2.0)))
    # d loss / d log α = −mean(log π − |A|) = −2: a gradient step increases α.
    torch.testing.assert_close(agent.log_alpha.grad, torch.tensor(-2.0))


def _train_on_narrow_actions(cql_alpha: float) -> CQL:
    # One-step problem (every transition terminal, reward 1) whose dataset actions all lie
    # near 0.5: Q at a = −0.9 is never fitted, only extrapolated.
    torch.manual_seed(0)
    data = torch.Generator().manual_seed(0)
    agent = CQL(1, 1, CQLConfig(cql_alpha=cql_alpha, num_sampled_actions=4, critic_lr=1e-3))
    for _ in range(100):
        obs = torch.rand(16, 1, generator=data) * 2 - 1
        actions = (0.5 + 0.05 * torch.randn(16, 1, generator=data)).clamp(-1, 1)
        agent.update(TransitionBatch(obs, actions, torch.ones(16), obs, torch.ones(16)))
    return agent


def test_conservative_penalty_lowers_out_of_distribution_q():
    obs = torch.linspace(-1, 1, 21).unsqueeze(1)
    data_actions, far_actions = torch.full((21, 1), 0.5), torch.full((21, 1), -0.9)
    gaps = {}
    for cql_alpha in (0.0, 5.0):
        agent = _train_on_narrow_actions(cql_alpha)
        with torch.no_grad():
            q_data = agent.critic(obs, data_actions).mean()
            q_far = agent.critic(obs, far_actions).mean()
        gaps[cql_alpha] = (q_data - q_far).item()
    assert gaps[5.0] > gaps[0.0] + 1.0, gaps


def test_checkpoint_round_trip_keeps_normalization_and_training_state(random_batch):
    torch.manual_seed(0)
    agent = CQL(OBS_DIM, ACT_DIM, CQLConfig())
    agent.set_observation_statistics(torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.5, 2.0, 4.0]))
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        agent.update(random_batch(16, OBS_DIM, ACT_DIM, generator))

    clone = CQL(OBS_DIM, ACT_DIM, CQLConfig())
    clone.load_state_dict(save_and_load(agent.state_dict()))
    obs = torch.randn(8, OBS_DIM) * 3
    torch.testing.assert_close(clone.act(obs, True), agent.act(obs, True), rtol=0, atol=0)

    # Optimizer moments and α come back too: the next update is the same on both.
    batch = random_batch(16, OBS_DIM, ACT_DIM, generator)
    torch.manual_seed(1)
    expected = agent.update(batch)
    torch.manual_seed(1)
    got = clone.update(batch)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
    torch.testing.assert_close(clone.act(obs, True), agent.act(obs, True), rtol=0, atol=0)


def test_normalization_changes_the_deterministic_action():
    torch.manual_seed(0)
    agent = CQL(OBS_DIM, ACT_DIM, CQLConfig())
    obs = torch.randn(8, OBS_DIM)
    before = agent.act(obs, True)
    agent.set_observation_statistics(torch.full((OBS_DIM,), 5.0), torch.full((OBS_DIM,), 0.1))
    assert not torch.allclose(agent.act(obs, True), before)


def test_checkpoint_critic_loads_as_members_0_and_1_of_a_wider_ensemble():
    torch.manual_seed(0)
    agent = CQL(OBS_DIM, ACT_DIM, CQLConfig())
    critic_state = agent.state_dict()["critic"]
    wide = QEnsemble(3, OBS_DIM, ACT_DIM)
    with torch.no_grad():
        for name, param in wide.named_parameters():
            assert critic_state[name].shape[0] == 2
            param[:2].copy_(critic_state[name])
    obs, act = torch.randn(5, OBS_DIM), torch.rand(5, ACT_DIM) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(wide(obs, act)[:2], agent.critic(obs, act))


def test_updates_reduce_the_critic_loss_and_return_detached_finite_metrics(behaviour_dataset):
    torch.manual_seed(0)
    agent = CQL(OBS_DIM, ACT_DIM, CQLConfig(num_sampled_actions=4))
    dataset = behaviour_dataset(256, OBS_DIM, ACT_DIM, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(200):
        idx = torch.randint(256, (32,), generator=generator)
        metrics = agent.update(TransitionBatch(*(column[idx] for column in dataset)))
        losses.append(metrics["critic_loss"])
    assert set(metrics) == {
        "critic_loss",
        "td_loss",
        "cql_penalty",
        "actor_loss",
        "alpha",
        "q_data_mean",
        "q_data_std",
        "q_ood_mean",
        "entropy",
    }
    for name, value in metrics.items():
        assert value.shape == () and not value.requires_grad, name
        assert torch.isfinite(value), name
    first, last = torch.stack(losses[:20]).mean(), torch.stack(losses[-20:]).mean()
    assert last < 0.5 * first, (first, last)
    # the TD part is logged apart from the conservative term: critic = TD + α·M·penalty
    members, alpha = agent.config.critic_members, agent.config.cql_alpha
    torch.testing.assert_close(
        metrics["critic_loss"],
        metrics["td_loss"] + alpha * members * metrics["cql_penalty"],
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize("deterministic", [True, False])
def test_actions_are_in_the_action_box(deterministic):
    agent = CQL(OBS_DIM, ACT_DIM, CQLConfig())
    actions = agent.act(torch.randn(10, OBS_DIM) * 100, deterministic)
    assert actions.shape == (10, ACT_DIM)
    assert actions.abs().max() <= 1.0


@pytest.mark.skipif(
    missing_bf16(torch.device("cpu")) is not None, reason="no native bf16 on this CPU"
)
def test_bf16_critic_loss_is_close_to_fp32_on_a_fixed_batch():
    # HalfCheetah's shapes at batch 256 (8 chunks of states). Measured on a Zen 4 CPU: loss
    # within 2e-6 (relative), statistics within 1e-3, critic gradient within 5.4% (the same
    # as autocast's: bf16 keeps 8 mantissa bits).
    generator = torch.Generator().manual_seed(3)
    batch = TransitionBatch(
        observations=torch.randn(256, 17, generator=generator),
        actions=torch.rand(256, 6, generator=generator) * 2 - 1,
        rewards=torch.randn(256, generator=generator),
        next_observations=torch.randn(256, 17, generator=generator),
        terminals=(torch.rand(256, generator=generator) < 0.01).float(),
    )
    fp32 = CQL(17, 6, CQLConfig())
    bf16 = CQL(17, 6, CQLConfig(precision="bf16"))
    bf16.load_state_dict(fp32.state_dict())
    assert bf16.matmul_dtype == torch.bfloat16
    results = []
    for agent in (fp32, bf16):
        torch.manual_seed(4)
        samples = agent.sample_actions(batch.observations, batch.next_observations)
        loss, stats = agent.critic_loss(batch.observations, batch.next_observations, batch, samples)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in agent.critic.parameters()])
        results.append((loss.detach(), stats, grads))
    (fp32_loss, fp32_stats, fp32_grads), (loss, stats, grads) = results
    torch.testing.assert_close(loss, fp32_loss, rtol=1e-4, atol=0)
    for name, value in stats.items():
        torch.testing.assert_close(value, fp32_stats[name], rtol=1e-2, atol=1e-2)
    assert ((grads - fp32_grads).norm() / fp32_grads.norm()) < 0.1
