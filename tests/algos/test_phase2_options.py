"""Phase II options on real Phase I checkpoints: warm-up of fresh members, UCB action
selection, the Phase I critic's Adam state kept, and N members trained in Phase I."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hybrid_rl.algos import online_cql, online_iql, td3bc
from hybrid_rl.algos.agent import OnlineOptions
from hybrid_rl.algos.exploration import parse_exploration, ucb_action, ucb_scores
from hybrid_rl.algos.warmup import parse_fresh_init, warm_up_fresh_members
from hybrid_rl.train import TrainConfig, prepare_dataset, train_offline

CPU = torch.device("cpu")
FROM_PHASE1 = {
    "cql": online_cql.from_phase1_checkpoint,
    "iql": online_iql.from_phase1_checkpoint,
    "td3bc": td3bc.from_phase1_checkpoint,
}
WARMUP_UPDATES = 1_500
# After the warm-up, a fresh member's Q is on average within this fraction of the loaded
# members' mean |Q| of their mean, on offline batches (before: ≈ 100%, the fresh member ≈ 0).
WARMUP_TOLERANCE = 0.10


@pytest.fixture(scope="module")
def trained_iql(phase1_runs, tmp_path_factory) -> TrainConfig:
    """An IQL Phase I run long enough for its critic to fit the tiny dataset (1,500 steps)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    base = phase1_runs["iql"]
    run = dataclasses.replace(
        base,
        total_steps=1_500,
        log_every=1_500,
        eval_every=1_500,
        results_dir=str(tmp_path_factory.mktemp("phase1_long")),
        agent=dataclasses.replace(base.agent, max_steps=1_500),
    )
    assert train_offline(run, progress=False)["status"] == "completed"
    torch.set_num_threads(threads)
    return run


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def gap_to_loaded(agent, batch) -> float:
    """mean |Q_fresh − mean Q_loaded| / mean |mean Q_loaded| on `batch`."""
    with torch.no_grad():
        q = agent.critic(agent.normalizer(batch.observations), batch.actions)
    loaded = q[:2].mean(0)
    return float((q[2:] - loaded).abs().mean() / loaded.abs().mean())


def test_warm_up_fits_only_the_fresh_members_to_the_loaded_ones(trained_iql):
    dataset = prepare_dataset(trained_iql, CPU).dataset
    torch.manual_seed(0)
    agent = online_iql.from_phase1_checkpoint(
        trained_iql.run_dir / "checkpoint.pt", 4, trained_iql.agent
    )
    held_out = dataset.sample(1_000)
    before = gap_to_loaded(agent, held_out)
    loaded_before = [p[:2].clone() for p in snapshot(agent.critic)]
    target_loaded_before = [p[:2].clone() for p in snapshot(agent.critic_target)]
    actor, value = snapshot(agent.actor), snapshot(agent.value)
    critic_opt = agent.critic_opt.state_dict()

    stats = warm_up_fresh_members(agent, lambda: dataset.sample(64), WARMUP_UPDATES, 3e-4)

    after = gap_to_loaded(agent, held_out)
    assert before > 0.5 and after <= WARMUP_TOLERANCE, (before, after, stats)
    for old, new in zip(loaded_before, snapshot(agent.critic), strict=True):
        assert torch.equal(old, new[:2])
    for old, new in zip(target_loaded_before, snapshot(agent.critic_target), strict=True):
        assert torch.equal(old, new[:2])
    for old, new in zip(actor + value, snapshot(agent.actor) + snapshot(agent.value), strict=True):
        assert torch.equal(old, new)
    assert agent.critic_opt.state_dict() == critic_opt  # the agent's own Adam never stepped
    # The fresh members' targets start equal to the warmed members, as a fresh member's do.
    pairs = zip(agent.critic.parameters(), agent.critic_target.parameters(), strict=True)
    for online, target in pairs:
        assert torch.equal(online[2:], target[2:])
    assert all(p.grad is None for p in agent.critic.parameters())


@pytest.mark.parametrize("algo", ["cql", "td3bc"])
def test_warm_up_targets_use_only_the_loaded_members(phase1_runs, algo, tmp_path):
    run = phase1_runs["cql"] if algo == "cql" else None
    if run is None:
        base = phase1_runs["cql"]
        run = TrainConfig(
            algo="td3bc",
            dataset=base.dataset,
            total_steps=50,
            log_every=50,
            eval_every=50,
            eval_episodes=1,
            device="cpu",
            results_dir=str(tmp_path),
        )
        train_offline(run, progress=False)
    dataset = prepare_dataset(run, CPU).dataset
    agent = FROM_PHASE1[algo](run.run_dir / "checkpoint.pt", 3, run.agent)
    batch = dataset.sample(16)
    torch.manual_seed(1)
    target = agent.warmup_target(batch)
    with torch.no_grad():  # a fresh member far off must not change the target
        for p in agent.critic_target.parameters():
            p[2:].add_(1000.0)
    torch.manual_seed(1)
    torch.testing.assert_close(agent.warmup_target(batch), target)


def test_ucb_executes_the_argmax_of_mean_plus_lambda_std_among_k_policy_samples(phase1_runs):
    run = phase1_runs["iql"]
    agent = online_iql.from_phase1_checkpoint(run.run_dir / "checkpoint.pt", 3, run.agent)
    observations = prepare_dataset(run, CPU)[1].observations
    k = 16

    def candidates_and_q(obs, seed):
        torch.manual_seed(seed)
        candidates = agent.act(obs.expand(k, -1), deterministic=False)
        with torch.no_grad():
            q = agent.critic(agent.normalizer(obs.expand(k, -1)), candidates)  # [3, K]
        return candidates, q

    # A state where the most optimistic sample is not the greedy one, so λ matters.
    for row in range(50):
        obs = observations[row : row + 1]
        _, q = candidates_and_q(obs, row)
        if q.mean(0).argmax() != q.std(0).argmax():
            break
    picks = {}
    for coeff in (0.0, 1.0, 1e6):
        candidates, q = candidates_and_q(obs, row)
        by_hand = int((q.mean(0) + coeff * q.std(0, correction=1)).argmax())
        torch.testing.assert_close(ucb_scores(q, coeff), q.mean(0) + coeff * q.std(0))
        torch.manual_seed(row)
        chosen = ucb_action(agent, obs, k, coeff)
        assert torch.equal(chosen, candidates[by_hand : by_hand + 1])
        picks[coeff] = by_hand
    assert picks[0.0] == int(q.mean(0).argmax()) != picks[1e6] == int(q.std(0).argmax())


def test_exploration_and_fresh_init_texts():
    assert parse_exploration("reward_bonus") is None and parse_exploration("ucb:8") == 8
    assert parse_fresh_init("warmup:300") == ("warmup", 300)
    assert parse_fresh_init("phase1") == ("phase1", 0)
    for bad in ("ucb", "ucb:1", "ucb:x", "greedy"):
        with pytest.raises(ValueError, match=r"reward_bonus \| ucb:K"):
            parse_exploration(bad)
    for bad in ("warmup", "warmup:0", "zeros"):
        with pytest.raises(ValueError, match=r"random \| warmup:N"):
            parse_fresh_init(bad)


@pytest.mark.parametrize("algo", ["cql", "iql"])
def test_kept_critic_optimizer_splices_phase1_moments_into_members_0_and_1(phase1_runs, algo):
    run = phase1_runs[algo]
    path = run.run_dir / "checkpoint.pt"
    saved = torch.load(path, weights_only=False)["agent"]["critic_opt"]
    spec = FROM_PHASE1[algo](path, 4, run.agent)
    assert spec.critic_opt.state_dict()["state"] == {}  # the spec: a fresh Adam
    kept = FROM_PHASE1[algo](path, 4, run.agent, options=OnlineOptions(keep_critic_optimizer=True))
    state = kept.critic_opt.state_dict()["state"]
    for index, param in enumerate(kept.critic.parameters()):
        old, new = saved["state"][index], state[index]
        assert new["exp_avg"].shape == param.shape
        assert torch.equal(new["exp_avg"][:2], old["exp_avg"])
        assert torch.equal(new["exp_avg_sq"][:2], old["exp_avg_sq"])
        assert not new["exp_avg"][2:].any()
        expected = old["exp_avg_sq"].mean(0).expand_as(new["exp_avg_sq"][2:])
        torch.testing.assert_close(new["exp_avg_sq"][2:], expected)
        assert float(new["step"]) == float(old["step"]) == 50
    dataset = prepare_dataset(run, CPU).dataset
    kept.update(dataset.sample(32))  # the spliced state steps


def test_iql_online_actor_lr_is_the_option_when_given(phase1_runs):
    run = phase1_runs["iql"]
    path = run.run_dir / "checkpoint.pt"
    spec = online_iql.from_phase1_checkpoint(path, 3, run.agent)
    assert [g["lr"] for g in spec.actor_opt.param_groups] == [online_iql.ONLINE_ACTOR_LR]
    slow = online_iql.from_phase1_checkpoint(
        path, 3, run.agent, options=OnlineOptions(actor_lr=3e-5)
    )
    dataset = prepare_dataset(run, CPU).dataset
    for _ in range(3):
        slow.update(dataset.sample(32))
    assert [g["lr"] for g in slow.actor_opt.param_groups] == [3e-5]  # constant


@pytest.mark.parametrize("algo", ["cql", "iql"])
def test_a_phase1_run_with_n_critics_loads_every_member_and_its_adam_state(
    phase1_runs, algo, tmp_path
):
    run = dataclasses.replace(phase1_runs[algo], n_critics=3, results_dir=str(tmp_path))
    assert run.run_name.endswith("_c3_s0") and run.agent.critic_members == 3
    assert train_offline(run, progress=False)["status"] == "completed"
    path = run.run_dir / "checkpoint.pt"
    saved = torch.load(path, weights_only=False)["agent"]
    agent = FROM_PHASE1[algo](path, 3, run.agent, options=OnlineOptions(keep_critic_optimizer=True))
    assert agent.critic.loaded_members == 3
    for name, value in agent.critic.state_dict().items():
        assert torch.equal(value, saved["critic"][name])
    for index in saved["critic_opt"]["state"]:
        assert torch.equal(
            agent.critic_opt.state_dict()["state"][index]["exp_avg"],
            saved["critic_opt"]["state"][index]["exp_avg"],
        )
    with pytest.raises(ValueError, match="--n_critics 4"):
        FROM_PHASE1[algo](path, 4, run.agent)
