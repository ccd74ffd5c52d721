import numpy as np
import pytest
import torch

from hybrid_rl.data.replay_buffer import ReplayBuffer

OBS_DIM, ACT_DIM = 3, 2


def rows(ids, terminated=None, truncated=None):
    """Transitions whose every column encodes its id, so stored rows can be identified."""
    ids = np.asarray(ids, dtype=np.float64)
    n = ids.size
    return {
        "observations": np.repeat(ids[:, None], OBS_DIM, axis=1),
        "actions": np.repeat(ids[:, None], ACT_DIM, axis=1) * -1.0,
        "rewards": ids * 10.0,
        "next_observations": np.repeat(ids[:, None], OBS_DIM, axis=1) + 0.5,
        "terminated": np.zeros(n, dtype=bool) if terminated is None else terminated,
        "truncated": np.zeros(n, dtype=bool) if truncated is None else truncated,
    }


def stored_ids(buffer):
    return sorted(buffer.observations[: len(buffer), 0].long().tolist())


def test_adds_below_capacity_keep_every_row_in_order():
    buffer = ReplayBuffer(8, OBS_DIM, ACT_DIM)
    buffer.add(**rows([0, 1, 2]))
    buffer.add(**rows([3, 4]))
    assert len(buffer) == 5 and buffer.position == 5
    assert buffer.observations[:5, 0].tolist() == [0, 1, 2, 3, 4]
    assert buffer.rewards[:5].tolist() == [0, 10, 20, 30, 40]
    assert buffer.actions.dtype == torch.float32


def test_wraparound_keeps_the_newest_capacity_rows():
    buffer = ReplayBuffer(5, OBS_DIM, ACT_DIM)
    buffer.add(**rows([0, 1, 2]))
    buffer.add(**rows([3, 4, 5, 6]))  # crosses the end of the ring
    assert len(buffer) == 5
    assert buffer.position == 2
    assert stored_ids(buffer) == [2, 3, 4, 5, 6]
    # Rows 5 and 6 overwrote the two oldest slots.
    assert buffer.observations[:, 0].tolist() == [5, 6, 2, 3, 4]


def test_many_single_adds_keep_the_newest_rows():
    buffer = ReplayBuffer(5, OBS_DIM, ACT_DIM)
    for i in range(13):
        buffer.add(**rows([i]))
    assert len(buffer) == 5
    assert buffer.position == 13 % 5
    assert stored_ids(buffer) == [8, 9, 10, 11, 12]


def test_a_full_capacity_add_replaces_everything():
    buffer = ReplayBuffer(4, OBS_DIM, ACT_DIM)
    buffer.add(**rows([0, 1, 2]))
    buffer.add(**rows([10, 11, 12, 13]))
    assert stored_ids(buffer) == [10, 11, 12, 13]
    assert buffer.position == 3


def test_samples_come_only_from_stored_rows_with_matching_columns():
    buffer = ReplayBuffer(5, OBS_DIM, ACT_DIM)
    buffer.add(**rows(range(5)))
    buffer.add(**rows(range(5, 9)))  # rows 4..8 remain
    batch = buffer.sample(2000, generator=torch.Generator().manual_seed(0))
    ids = batch.observations[:, 0]
    assert set(ids.long().tolist()) == {4, 5, 6, 7, 8}
    torch.testing.assert_close(batch.actions[:, 0], -ids)
    torch.testing.assert_close(batch.rewards, ids * 10)
    torch.testing.assert_close(batch.next_observations[:, 0], ids + 0.5)


def test_sampling_with_a_seeded_generator_is_reproducible():
    buffer = ReplayBuffer(10, OBS_DIM, ACT_DIM)
    buffer.add(**rows(range(10)))
    a = buffer.sample(32, generator=torch.Generator().manual_seed(4))
    b = buffer.sample(32, generator=torch.Generator().manual_seed(4))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_terminals_in_a_batch_reflect_terminated_only():
    buffer = ReplayBuffer(4, OBS_DIM, ACT_DIM)
    terminated = np.array([True, False, False, True])
    truncated = np.array([False, True, False, True])
    buffer.add(**rows([0, 1, 2, 3], terminated=terminated, truncated=truncated))
    assert buffer.terminated.tolist() == terminated.tolist()
    assert buffer.truncated.tolist() == truncated.tolist()
    batch = buffer.sample(400, generator=torch.Generator().manual_seed(1))
    ids = batch.observations[:, 0].long()
    assert batch.terminals.dtype == torch.float32
    torch.testing.assert_close(batch.terminals, torch.as_tensor(terminated).float()[ids])
    # Row 1 is truncated only: it must bootstrap, so its terminal flag is 0.
    assert (batch.terminals[ids == 1] == 0).all() and (ids == 1).any()


def test_tensor_inputs_are_accepted_like_numpy_ones():
    from_numpy = ReplayBuffer(4, OBS_DIM, ACT_DIM)
    from_torch = ReplayBuffer(4, OBS_DIM, ACT_DIM)
    columns = rows([0, 1, 2], terminated=np.array([False, True, False]))
    from_numpy.add(**columns)
    from_torch.add(**{name: torch.as_tensor(value) for name, value in columns.items()})
    for name in ("observations", "actions", "rewards", "next_observations", "terminated"):
        assert torch.equal(getattr(from_numpy, name), getattr(from_torch, name)), name


@pytest.mark.parametrize("added", [[0, 1, 2], list(range(8))])
def test_state_dict_round_trip_restores_contents_and_position(tmp_path, added):
    original = ReplayBuffer(5, OBS_DIM, ACT_DIM)
    terminated = np.arange(len(added)) % 3 == 0
    truncated = np.arange(len(added)) % 4 == 1
    for start in range(0, len(added), 3):  # adds of at most 3 rows, wrapping for 8
        chunk = slice(start, start + 3)
        original.add(**rows(added[chunk], terminated[chunk], truncated[chunk]))
    path = tmp_path / "buffer.pt"
    torch.save(original.state_dict(), path)

    restored = ReplayBuffer(5, OBS_DIM, ACT_DIM)
    restored.load_state_dict(torch.load(path))
    assert (len(restored), restored.position) == (len(original), original.position)
    n = len(original)
    for name in (
        "observations",
        "actions",
        "rewards",
        "next_observations",
        "terminated",
        "truncated",
    ):
        assert torch.equal(getattr(restored, name)[:n], getattr(original, name)[:n]), name

    # The next add overwrites the same slots in both: the ring position was restored.
    original.add(**rows([100, 101]))
    restored.add(**rows([100, 101]))
    assert torch.equal(
        restored.observations[: len(restored)], original.observations[: len(original)]
    )


def test_loading_a_state_of_another_capacity_is_rejected():
    state = ReplayBuffer(5, OBS_DIM, ACT_DIM).state_dict()
    with pytest.raises(ValueError, match="saved buffer has capacity 5, this one 6"):
        ReplayBuffer(6, OBS_DIM, ACT_DIM).load_state_dict(state)


@pytest.mark.parametrize("capacity", [0, -3])
def test_a_non_positive_capacity_is_rejected(capacity):
    with pytest.raises(ValueError, match=f"capacity must be positive, got {capacity}"):
        ReplayBuffer(capacity, OBS_DIM, ACT_DIM)


def test_adding_more_rows_than_the_capacity_is_rejected_and_changes_nothing():
    buffer = ReplayBuffer(3, OBS_DIM, ACT_DIM)
    buffer.add(**rows([7]))
    with pytest.raises(ValueError, match="cannot add 4 transitions to a buffer of capacity 3"):
        buffer.add(**rows([0, 1, 2, 3]))
    assert (len(buffer), buffer.position) == (1, 1)
    assert stored_ids(buffer) == [7]


def test_sampling_an_empty_buffer_is_rejected():
    with pytest.raises(RuntimeError, match="empty replay buffer"):
        ReplayBuffer(3, OBS_DIM, ACT_DIM).sample(4)
