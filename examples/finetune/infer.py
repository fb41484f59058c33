#!/usr/bin/env python3
"""Step 3 of the seed tutorial: inference of one model on the fixed test split.

    python3 infer.py --model DIR/trained.pt --results OUT.jsonl

Scores every test sample and writes sopilot's results file (docs/results.md):
one JSON line per sample,

    {"sample_id": "digit-17", "correct": 1, "loss": 0.0123, "prediction": 3, "label": 3}

named by its index in sklearn's load_digits(), so the original and the
trained model's files pair sample by sample, then one line
{"run_metrics": {"accuracy": ..., "mean_loss": ..., "samples": ...}}.
One process; run it as a 1-task job with `--results-path OUT.jsonl` so the
controller stores the file when the run completes.
"""
import argparse
import json
import math
import os

from common import die, load_model, load_split, log


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="original.pt or trained.pt")
    p.add_argument("--results", required=True, help="results file to write (JSON lines)")
    args = p.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    _, _, _, x_test, y_test, idx_test = load_split()
    try:
        model, _ = load_model(args.model)
    except Exception as e:  # noqa: BLE001
        die(f"cannot load --model {args.model}: {e}")
    model.eval()
    with torch.no_grad():
        logits = model(x_test)
        losses = F.cross_entropy(logits, y_test, reduction="none")
        preds = logits.argmax(1)

    correct = (preds == y_test).long()
    accuracy = correct.float().mean().item()
    mean_loss = losses.mean().item()
    tmp = f"{args.results}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        for i, pred, label, ok, loss in zip(idx_test.tolist(), preds.tolist(), y_test.tolist(),
                                            correct.tolist(), losses.tolist()):
            rec = {"sample_id": f"digit-{i}", "correct": ok,
                   "loss": loss if math.isfinite(loss) else None,  # NaN/inf are not JSON: absent
                   "prediction": pred, "label": label}
            f.write(json.dumps(rec) + "\n")
        f.write(json.dumps({"run_metrics": {"accuracy": accuracy, "mean_loss": mean_loss,
                                            "samples": len(correct)}}) + "\n")
    os.replace(tmp, args.results)  # the controller never reads half a file
    log(f"{args.model}: accuracy {accuracy:.4f} ({correct.sum().item()}/{len(correct)}), "
        f"mean loss {mean_loss:.4f}; results in {args.results}")


if __name__ == "__main__":
    main()
