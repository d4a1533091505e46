"""Write the README's example files, the same bytes of weights on every run.

    python docs/examples/make-examples.py   # writes model.pt, x.npy, broken.pt, pickled.pt here

model.pt    state_dict of nn.Sequential(nn.LSTM(8, 16, num_layers=2, bidirectional=True,
            proj_size=4), nn.GRUCell(4, 6)) with torch.manual_seed(0): what `rnn-cli inspect`
            and `--params docs/examples/model.pt:0` read
x.npy       input for that LSTM, (L, N, H_in) = (6, 2, 8), time-major, float32
broken.pt   model.pt without 0.weight_ih_l1_reverse: what a damaged checkpoint looks like
pickled.pt  torch.save(model[1]), a whole module pickled: what rnn-cli refuses to load
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent


def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.LSTM(8, 16, num_layers=2, bidirectional=True, proj_size=4),
        nn.GRUCell(4, 6),
    )


def x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((6, 2, 8)).astype(np.float32)  # (L, N, H_in)


def main() -> None:
    m = model()
    state = m.state_dict()
    torch.save(state, HERE / "model.pt")
    np.save(HERE / "x.npy", x())
    broken = {k: v for k, v in state.items() if k != "0.weight_ih_l1_reverse"}
    torch.save(broken, HERE / "broken.pt")
    torch.save(m[1], HERE / "pickled.pt")  # the GRUCell itself, not its state_dict


if __name__ == "__main__":
    main()
