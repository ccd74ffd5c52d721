import pytest
import torch

from hybrid_rl.algos.agent_state import load_parts, save_parts
from hybrid_rl.algos.networks import make_adam


def test_parts_round_trip_modules_optimizers_and_tensors():
    net = torch.nn.Linear(3, 2)
    opt = make_adam(net.parameters(), lr=1e-3)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    temperature = torch.tensor(0.5, requires_grad=True)
    state = save_parts({"net": net, "opt": opt, "temperature": temperature})

    net2 = torch.nn.Linear(3, 2)
    opt2 = make_adam(net2.parameters(), lr=1e-3)
    temperature2 = torch.tensor(0.0, requires_grad=True)
    load_parts({"net": net2, "opt": opt2, "temperature": temperature2}, state)
    torch.testing.assert_close(net2.weight, net.weight)
    assert temperature2.item() == 0.5 and temperature2.requires_grad
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_missing_part_is_named():
    with pytest.raises(KeyError, match="critic"):
        load_parts({"critic": torch.nn.Linear(1, 1)}, {"actor": {}})
