"""A critic loss that sums over states, computed chunk by chunk of states on a CPU.

An optimisation, not an algorithm: `summed_critic_loss` returns the loss an algorithm defines
from Q values [M, G, B] (G actions per state, B states) and its gradient for the critic, the
same as one autograd pass through the critic would (up to float rounding). On a CPU with
gradients enabled it runs the critic's forward, the loss gradient and the critic's backward
for about 33 states at a time (CQL's shape), back to back while the activations are still in
cache, in buffers reused from call to call; elsewhere it is one plain autograd pass. CQL's
critic sees B·(1 + 3n) rows per member; docs/benchmarks.md says what this saves.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from hybrid_rl.algos.networks import EnsembleMLP, QEnsemble

# Rows × members × width of one chunk: 2 MiB of floats per hidden layer, near a core's L2
# cache. Measured on a 2 MiB-L2 Xeon, 1 thread: 1/2/4 MiB chunks took 77/76/79 ms per CQL
# update, 16 MiB ones 112 ms, and 256 KiB ones 99 ms (more chunks, smaller and slower matrix
# products).
_CHUNK_FLOATS = 1 << 19


def summed_critic_loss(
    critic: QEnsemble,
    obs: Tensor,
    actions: Tensor,
    loss_per_state: Callable[..., Tensor],
    per_state_inputs: Sequence[Tensor] = (),
    matmul_dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """`loss_per_state(Q, *per_state_inputs)` with Q [M, G, B] = critic(obs, each action).

    obs [B, obs_dim] and actions [G, B, act_dim] (G actions per state). Each per-state input
    has the state axis last ([..., B]). `loss_per_state(q, *inputs)` is the loss of some b
    states from their Q [M, G, b] and their slices [..., b] of the per-state inputs; it must
    add up over states: the loss of states a ∪ b is the loss of a plus the loss of b (a mean
    over the batch is a sum divided by B).

    `matmul_dtype` bf16 (`algos.precision`): the hidden layers' matrix products take bf16
    operands (as under autocast; each product accumulates in fp32); the output layer, Q, the
    loss and the parameter gradients' sums stay fp32.

    Returns the loss, differentiable for the critic's parameters only (obs, actions and the
    per-state inputs get no gradient), and Q [M, G, B], detached.
    """
    groups, batch = actions.shape[:2]
    fused = (
        obs.device.type == "cpu"
        and torch.is_grad_enabled()
        and any(p.requires_grad for p in critic.parameters())
    )
    if not fused:
        rows = torch.cat([obs.expand(groups, -1, -1), actions], dim=-1).flatten(0, 1)
        q = _forward(critic.net, rows, matmul_dtype).squeeze(-1).unflatten(1, (groups, batch))
        return loss_per_state(q, *per_state_inputs), q.detach()

    members = critic.members
    per_chunk = max(1, _CHUNK_FLOATS // (members * max(critic.net.sizes[1:]) * groups))
    backprop = _ChunkedBackprop(critic.net, groups * min(per_chunk, batch), obs, matmul_dtype)
    # Rows [G, B, in + 1] of every (action, state) pair, with the column of ones.
    rows = torch.cat(
        [obs.expand(groups, -1, -1), actions, obs.new_ones((groups, batch, 1))], dim=-1
    ).to(matmul_dtype)
    losses, q_chunks = [], []
    for start in range(0, batch, per_chunk):
        stop = min(start + per_chunk, batch)
        states, count = slice(start, stop), stop - start
        x = rows[:, states].reshape(1, groups * count, -1).expand(members, -1, -1)
        q_chunk = backprop.forward(x).view(members, groups, count)
        q_chunk.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_per_state(q_chunk, *(values[..., states] for values in per_state_inputs))
            (grad_q,) = torch.autograd.grad(loss, q_chunk)
        backprop.backward(x, grad_q.reshape(members, groups * count))
        losses.append(loss.detach())
        q_chunks.append(q_chunk.detach())
    params = list(critic.parameters())
    grads = backprop.parameter_grads()
    total = _PrecomputedGradients.apply(torch.stack(losses).sum(), grads, *params)
    return total, torch.cat(q_chunks, dim=2)


def _forward(net: EnsembleMLP, rows: Tensor, matmul_dtype: torch.dtype) -> Tensor:
    """`net(rows)` [M, R, 1], the hidden layers under autocast to `matmul_dtype` (when not
    fp32) and the output layer in fp32, so that Q keeps fp32's resolution."""
    if matmul_dtype == torch.float32:
        return net(rows)
    x = rows.unsqueeze(0).expand(net.members, -1, -1)
    with torch.autocast(rows.device.type, dtype=matmul_dtype):
        for layer in net.linears[:-1]:
            x = torch.relu(layer(x))
    return net.linears[-1](x.float())


class _PrecomputedGradients(torch.autograd.Function):
    """Identity on a loss value whose parameter gradients were already computed.

    Lets a loss computed chunk by chunk (forward and backward of each chunk together) still be
    used as `loss.backward()`: the backward hands the stored gradients, times the incoming
    gradient, to the parameters.
    """

    @staticmethod
    def forward(ctx: Any, loss: Tensor, gradients: tuple[Tensor, ...], *params: Tensor) -> Tensor:
        ctx.gradients = gradients
        return loss.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        return (None, None, *(grad_loss * gradient for gradient in ctx.gradients))


class _Workspace:
    """Buffers of `_ChunkedBackprop` for one network, at one row count, dtype and device.

    Hidden activations [M, rows, width + 1] whose last column is 1, and two scratch buffers
    [M, rows, max width], in the products' dtype; with bf16 products, an fp32 copy of the last
    hidden layer too, for the fp32 output layer.
    """

    def __init__(self, net: EnsembleMLP, rows: int, like: Tensor, dtype: torch.dtype) -> None:
        self.key = (rows, dtype, like.device)
        self.hidden = [
            like.new_empty((net.members, rows, size + 1), dtype=dtype) for size in net.sizes[1:-1]
        ]
        for buffer in self.hidden:
            buffer[:, :, -1] = 1.0
        self.scratch = [
            like.new_empty((net.members, rows, max(net.sizes[1:])), dtype=dtype) for _ in range(2)
        ]
        last = self.hidden[-1]
        self.last_hidden_fp32 = last if dtype == torch.float32 else last.float()


# One workspace per network, kept from one call to the next (one chunk uses it at a time, and
# fresh large buffers would cost page faults on every update); freed with the network.
_workspaces: weakref.WeakKeyDictionary[EnsembleMLP, _Workspace] = weakref.WeakKeyDictionary()


def _workspace(net: EnsembleMLP, rows: int, like: Tensor, dtype: torch.dtype) -> _Workspace:
    """`net`'s workspace for up to `rows` rows of `dtype` on `like`'s device."""
    workspace = _workspaces.get(net)
    if workspace is None or workspace.key != (rows, dtype, like.device):
        workspace = _workspaces[net] = _Workspace(net, rows, like, dtype)
    return workspace


class _ChunkedBackprop:
    """Forward and backward of a Q `EnsembleMLP` (output width 1) on row chunks.

    For `summed_critic_loss`. Each layer's bias rides in its matrix product: inputs carry an
    extra column of ones and the weights an extra row holding the bias, so one product gives
    the output with its bias, and one product gives the weight and bias gradients together.
    Two more savings come from the output having width 1:

    - the output layer's products are matrix-vector ones, done by one `mv` per member (a
      batched product with one output column runs at a fraction of the speed);
    - the gradient at the last hidden layer, relu'(h) ⊙ (g wᵀ) for output gradients g [R] and
      output weights w, is written (relu'(h) ⊙ g 1ᵀ)·diag(w): the mask applied to g
      broadcast along the row in one pass, with diag(w) folded into the next weights (for
      the input gradient) and applied once to the accumulated weight gradient.

    The hidden layers' products run in `dtype` (their operands and outputs: activations and
    the gradients at them); the output layer and the gradient sums in fp32. Same arithmetic
    as the layer-by-layer graph up to float rounding (autocast's rounding, for bf16).
    """

    def __init__(self, net: EnsembleMLP, rows: int, like: Tensor, dtype: torch.dtype) -> None:
        if net.sizes[-1] != 1:
            raise ValueError(f"chunked backprop needs an output width of 1, got {net.sizes[-1]}")
        self.net = net
        self.dtype = dtype
        with torch.no_grad():
            weights = [torch.cat([layer.weight, layer.bias], dim=1) for layer in net.linears]
            self.output_weight = weights[-1][:, :-1, 0]  # [M, last hidden width]
            self.output_weight_and_bias = weights[-1][:, :, 0]
            self.hidden_weights = [w.to(dtype) for w in weights[:-1]]
            # Weights of each hidden layer's input gradient, Wᵀ without the bias row; the last
            # hidden layer's scaled by diag(w) (see the class docstring).
            input_grad_weights = [w[:, :-1].transpose(1, 2) for w in weights[:-1]]
            input_grad_weights[-1] = (
                weights[-2][:, :-1] * self.output_weight.unsqueeze(1)
            ).transpose(1, 2)
            self.input_grad_weights = [w.to(dtype) for w in input_grad_weights]
        self.grads = [torch.zeros_like(w) for w in weights]
        workspace = _workspace(net, rows, like, dtype)
        self.hidden, self.scratch = workspace.hidden, workspace.scratch
        self.last_hidden_fp32 = workspace.last_hidden_fp32

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Output [M, R] (fp32) for rows x [M, R, in + 1] (in `dtype`) whose last column is 1.

        Keeps the hidden activations for `backward`, which must follow before the next call.
        """
        rows = x.shape[1]
        h = x
        for weight, buffer in zip(self.hidden_weights, self.hidden, strict=True):
            out = buffer[:, :rows, :-1]
            torch.bmm(h, weight, out=out).relu_()
            h = buffer[:, :rows]  # with its column of ones
        h32 = self.last_hidden_fp32[:, :rows]
        if self.dtype != torch.float32:
            h32.copy_(h)
        q = h32.new_empty(h32.shape[:2])
        for member in range(h32.shape[0]):
            torch.mv(h32[member], self.output_weight_and_bias[member], out=q[member])
        return q

    @torch.no_grad()
    def backward(self, x: Tensor, grad_output: Tensor) -> None:
        """Add the parameter gradients of the last `forward`'s rows, given dloss/dq [M, R]."""
        rows = x.shape[1]
        inputs = [x, *(buffer[:, :rows] for buffer in self.hidden)]
        last_hidden_fp32 = self.last_hidden_fp32[:, :rows]
        for member in range(x.shape[0]):
            self.grads[-1][member, :, 0].addmv_(last_hidden_fp32[member].t(), grad_output[member])
        # The gradient at layer `index`'s output lives in scratch[(index + 1) % 2], so each
        # product reads one buffer and writes the other.
        activation = inputs[-1][:, :, :-1]
        out = self.scratch[len(self.hidden) % 2][:, :rows, : activation.shape[2]]
        grad = torch.ops.aten.threshold_backward.grad_input(
            grad_output.to(self.dtype).unsqueeze(-1).expand_as(activation),
            activation,
            0,
            grad_input=out,
        )
        for index in reversed(range(len(self.hidden_weights))):
            if self.dtype == torch.float32:
                self.grads[index].baddbmm_(inputs[index].transpose(1, 2), grad)
            else:  # no mixed-dtype baddbmm: a bf16 product, summed in fp32
                self.grads[index] += torch.bmm(inputs[index].transpose(1, 2), grad)
            if index > 0:
                # ReLU's backward, in place: keep the gradient where the layer's output
                # (this layer's input, without its column of ones) was > 0.
                activation = inputs[index][:, :, :-1]
                out = self.scratch[index % 2][:, :rows, : activation.shape[2]]
                torch.bmm(grad, self.input_grad_weights[index], out=out)
                grad = torch.ops.aten.threshold_backward.grad_input(
                    out, activation, 0, grad_input=out
                )

    def parameter_grads(self) -> tuple[Tensor, ...]:
        """The gradients in `net.parameters()` order: weight, bias of each layer."""
        self.grads[-2].mul_(self.output_weight.unsqueeze(1))  # the deferred diag(w)
        grads: list[Tensor] = []
        for grad in self.grads:
            grads += [grad[:, :-1].contiguous(), grad[:, -1:].contiguous()]
        return tuple(grads)
