#!/usr/bin/env python3
# The yardstick of `npm run bench:train`: the same models, batch sizes and optimizer (Adam 1e-3) in
# PyTorch on the CPU, one thread. A benchmark tool only (Debian's python3-torch), never a dependency.
# Data are random tensors of the right shapes: throughput does not depend on the values.
# Prints one JSON line per workload: {"workload", "samplesPerSec"} (median of steady epochs).
import json
import sys
import time

import torch
from torch import nn

torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1)
torch.manual_seed(1)


class Last(nn.Module):
    """An LSTM's last output step."""

    def __init__(self, inputs, units):
        super().__init__()
        self.lstm = nn.LSTM(inputs, units, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0][:, -1, :]


def mlp():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def lenet5():
    # As the zoo's template on 28×28×1: conv 6@5×5 'same', avg pool, conv 16@5×5, avg pool, 120, 84, 10, tanh.
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2, 2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
    )


def lstm():
    return nn.Sequential(Last(8, 32), nn.Linear(32, 4))


WORKLOADS = {
    "mlp-128": (mlp, (784,), 10, 128),
    "mlp-512": (mlp, (784,), 10, 512),
    "lenet5-64": (lenet5, (1, 28, 28), 10, 64),
    "lstm-64": (lstm, (20, 8), 4, 64),
}

rows = int(sys.argv[sys.argv.index("--rows") + 1]) if "--rows" in sys.argv else 8192
epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 4
names = sys.argv[sys.argv.index("--workloads") + 1].split(",") if "--workloads" in sys.argv else list(WORKLOADS)

for name in names:
    build, shape, classes, batch = WORKLOADS[name]
    model = build()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(rows, *shape)
    y = torch.randint(0, classes, (rows,))
    times = []
    for _ in range(epochs):
        order = torch.randperm(rows)
        started = time.perf_counter()
        for s in range(0, rows, batch):
            i = order[s:s + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(x[i]), y[i])
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - started)
    steady = sorted(times[1:])
    print(json.dumps({"workload": name, "samplesPerSec": round(rows / steady[len(steady) // 2])}), flush=True)
