#!/usr/bin/env python3
"""Step 1 of the seed tutorial: save the original model before fine-tuning.

    python3 save_original.py --out DIR

Builds the MLP of common.py with a fixed seed, pre-trains it briefly on a
small slice of the training split (so the "original" is a weak but real
model, like the tutorial's pretrained one, not random noise), and saves it
to DIR/original.pt. One process; run it as a 1-task job.
"""
import argparse
import os
import time

from common import build_model, die, load_split, log, save_atomic


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="directory for original.pt")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights (default 0)")
    p.add_argument("--pretrain-samples", type=int, default=40,
                   help="training samples the brief pre-training sees (0: save the untrained model)")
    p.add_argument("--pretrain-steps", type=int, default=20, help="full-batch Adam steps of the pre-training")
    args = p.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    x_train, y_train, _, x_test, y_test, _ = load_split()
    model = build_model()

    if args.pretrain_samples > 0:
        g = torch.Generator().manual_seed(args.seed)
        pick = torch.randperm(len(y_train), generator=g)[: args.pretrain_samples]
        xs, ys = x_train[pick], y_train[pick]
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(args.pretrain_steps):
            opt.zero_grad()
            loss = F.cross_entropy(model(xs), ys)
            loss.backward()
            opt.step()
        log(f"pre-trained on {len(ys)} samples for {args.pretrain_steps} steps, loss {loss.item():.4f}")

    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    path = os.path.join(args.out, "original.pt")
    save_atomic({"model": model.state_dict(), "seed": args.seed,
                 "pretrain_samples": args.pretrain_samples, "pretrain_steps": args.pretrain_steps,
                 "created": time.time()}, path)
    if not os.path.getsize(path):
        die(f"{path} is empty")
    log(f"saved the original model to {path} (test accuracy {acc:.4f}, {len(y_test)} test samples)")


if __name__ == "__main__":
    main()
