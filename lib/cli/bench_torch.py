"""Reference for `deno task bench:train`: the same CNN trained in PyTorch on the CPU.

Takes the architecture spec (lib/models.ts ARCHITECTURES entry), batch, steps and threads as one
JSON argument and prints one JSON line: {"torch_img_s": ...}. PyTorch is a reference only, not a project dependency.
"""
import json
import sys
import time

import torch
import torch.nn as nn


def build(spec):
    layers, channels = [], 1
    for filters in spec["blockFilters"]:
        for _ in range(spec["convsPerBlock"]):
            layers += [nn.Conv2d(channels, filters, 3, padding=1, bias=False), nn.BatchNorm2d(filters, eps=1e-3), nn.ReLU()]
            channels = filters
        layers += [nn.MaxPool2d(2), nn.Dropout(spec["blockDropout"])]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    for units in spec["denseUnits"]:
        layers += [nn.Linear(channels, units), nn.ReLU()]
        channels = units
    layers += [nn.Dropout(spec["denseDropout"]), nn.Linear(channels, 7)]
    return nn.Sequential(*layers)


def main():
    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    torch.manual_seed(0)
    model = build(args["spec"]).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(args["batch"], 1, 48, 48).to(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (args["batch"],))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(args["steps"]):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({"torch_img_s": args["steps"] * args["batch"] / seconds, "torch_version": torch.__version__}))


if __name__ == "__main__":
    main()
