"""The behaviour policy's portable sampling: the shipped policy, summed in a fixed order, with the
same bits whichever code paths numpy and MKL pick on this CPU."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from hybrid_rl.algos.networks import tanh_gaussian_log_prob
from hybrid_rl.behavior.policies import load_shipped_policy
from hybrid_rl.behavior.portable_actor import PortableActor
from hybrid_rl.behavior.replica import collect_transitions


@pytest.fixture(scope="module")
def cheetah():
    actor, _ = load_shipped_policy("halfcheetah")
    return actor, PortableActor.from_actor(actor)


def test_portable_sampling_is_the_shipped_policy(cheetah):
    actor, portable = cheetah
    rng = np.random.default_rng(0)
    obs, noise = rng.standard_normal((32, 17)) * 3, rng.standard_normal((32, 6))
    actions, log_probs = portable.sample(obs, noise)
    with torch.no_grad():
        dist = actor.distribution(torch.as_tensor(obs, dtype=torch.float32))
        pre_tanh = dist.mean + dist.stddev * torch.as_tensor(noise, dtype=torch.float32)
        expected_log_probs = tanh_gaussian_log_prob(dist, pre_tanh).double().numpy()
        expected_actions = torch.tanh(pre_tanh).double().numpy()
    # torch computes in float32: agreement to float32 rounding, not bits.
    np.testing.assert_allclose(actions, expected_actions, atol=1e-5)
    np.testing.assert_allclose(log_probs, expected_log_probs, rtol=1e-4, atol=1e-4)


def test_forward_sums_each_layer_in_input_order_bit_for_bit(cheetah):
    _, portable = cheetah
    obs = np.random.default_rng(1).standard_normal((2, 17)) * 3
    # The documented order, in plain Python floats (IEEE double, one rounding per operation).
    rows = obs.tolist()
    for index, (weight, bias) in enumerate(portable.layers):
        w, b = weight.tolist(), bias.tolist()
        out = []
        for row in rows:
            values = []
            for j in range(len(b)):
                total = b[j]
                for k, x in enumerate(row):
                    total += x * w[k][j]
                values.append(total if index == len(portable.layers) - 1 else max(total, 0.0))
            out.append(values)
        rows = out
    mean, _ = portable.mean_and_log_std(obs)
    np.testing.assert_array_equal(mean, np.array(rows)[:, :6])


_COLLECT = """
import hashlib, json, sys
from hybrid_rl.behavior.policies import load_shipped_policy
from hybrid_rl.behavior.portable_actor import PortableActor
from hybrid_rl.behavior.replica import collect_transitions
actor = PortableActor.from_actor(load_shipped_policy("halfcheetah")[0])
arrays = collect_transitions("HalfCheetah-v4", actor, 300, seed=5, num_envs=2, progress=False)
print(json.dumps({k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in arrays.items()}))
"""


def test_collection_is_bit_identical_with_numpy_and_mkl_on_other_code_paths(cheetah):
    # numpy's tanh/exp/log dispatch on AVX-512/AVX2 and MKL picks its matmul kernel by CPU:
    # forcing both onto other paths emulates another CPU. The portable sampling uses neither.
    _, portable = cheetah
    arrays = collect_transitions(
        "HalfCheetah-v4", portable, 300, seed=5, num_envs=2, progress=False
    )
    here = {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in arrays.items()}
    from numpy._core._multiarray_umath import __cpu_dispatch__

    env = {
        **os.environ,
        "NPY_DISABLE_CPU_FEATURES": " ".join(__cpu_dispatch__),
        "MKL_CBWR": "COMPATIBLE",
    }
    result = subprocess.run(
        [sys.executable, "-c", _COLLECT], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == here
