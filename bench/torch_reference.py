"""PyTorch nn.LSTM / nn.GRU training steps, the outside reference for bench.rnn_speed (optional).

PyTorch is not a dependency of tf-zoneout; these rows appear when it is importable
(``pip install torch``). Its fused CPU kernels cannot apply zoneout: they show the
speed a plain LSTM/GRU reaches on the same machine, in the same process.
"""

from __future__ import annotations

import importlib.util


def available() -> bool:
    return importlib.util.find_spec("torch") is not None


def make_step(kind: str, units: int, batch: int, vocab: int):
    """A training step with the same model and interface as bench.rnn_speed.make_step.

    Returns (step, states): ``step(x, y, states) -> (loss, new_states)`` with x, y
    int arrays [B, T]; states are carried and detached (truncated BPTT).
    """
    import torch

    torch.manual_seed(0)
    rnn_class = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    embed = torch.nn.Embedding(vocab, vocab)
    rnn = rnn_class(vocab, units, batch_first=True)
    head = torch.nn.Linear(units, vocab)
    params = [*embed.parameters(), *rnn.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    zeros = torch.zeros(1, batch, units)
    states = (zeros, zeros.clone()) if kind == "lstm" else zeros

    def step(x, y, states):
        x = torch.from_numpy(x).long()
        y = torch.from_numpy(y).long()
        optimizer.zero_grad(set_to_none=True)
        outputs, new_states = rnn(embed(x), states)
        loss = loss_fn(head(outputs).reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        optimizer.step()
        detached = tuple(s.detach() for s in new_states) if kind == "lstm" else new_states.detach()
        return loss.detach(), detached

    return step, states
