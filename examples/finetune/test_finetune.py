#!/usr/bin/env python3
"""Tests of the fine-tuning example, without Slurm: the Slurm-to-torch
environment mapping, a 2-rank gloo run started the way srun starts it
(SLURM_* variables only), and the results file's shape.

    /usr/bin/python3 -m unittest -v test_finetune   (in examples/finetune; ~20 s)

Skipped where torch or sklearn is missing. `make demo` runs the real thing
on the local Slurm cluster.
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
HAVE_DEPS = all(importlib.util.find_spec(m) for m in ("torch", "sklearn"))


def script(name):
    return os.path.join(HERE, name)


class FirstHostTest(unittest.TestCase):
    def test_parse_without_scontrol(self):
        sys.path.insert(0, HERE)
        import train  # torch is imported inside main(), so this needs no torch

        # No scontrol on PATH: first_host falls back to parsing the node list.
        with mock.patch.dict(os.environ, {"PATH": "/nonexistent"}):
            for nodelist, want in [("worker-[0-1]", "worker-0"), ("gpu-[07-12,20]", "gpu-07"),
                                   ("a,b", "a"), ("node1", "node1"), ("n[3]", "n3")]:
                with self.subTest(nodelist=nodelist):
                    self.assertEqual(train.first_host(nodelist), want)


@unittest.skipUnless(HAVE_DEPS, "needs torch and sklearn (apt-get install python3-torch python3-sklearn)")
class WorkflowTest(unittest.TestCase):
    def test_save_train_infer(self):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([sys.executable, script("save_original.py"), "--out", d], check=True,
                           capture_output=True)
            # Two ranks as srun starts them: only SLURM_* set, nothing of torch's.
            base = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))}
            base.update(SLURM_NTASKS="2", SLURM_JOB_ID="4242", SLURM_JOB_NODELIST="localhost",
                        CUDA_VISIBLE_DEVICES="")
            procs = [subprocess.Popen(
                [sys.executable, script("train.py"), "--init", f"{d}/original.pt", "--out", f"{d}/trained.pt",
                 "--epochs", "8"],
                env=dict(base, SLURM_PROCID=str(r), SLURM_LOCALID=str(r)),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
            outs = [p.communicate(timeout=120)[0] for p in procs]
            for r, (p, out) in enumerate(zip(procs, outs)):
                self.assertEqual(p.returncode, 0, f"rank {r}:\n{out}")
            self.assertIn("rank 0/2 local_rank 0", outs[0])
            self.assertIn("master 127.0.0.1:24242", outs[0])  # 20000 + 4242 % 20000
            self.assertIn("world 2 (gloo)", outs[0])
            self.assertIn("epoch 8/8", outs[0])
            self.assertTrue(os.path.exists(f"{d}/checkpoint.pt"))

            acc = {}
            for name in ("original", "trained"):
                res = f"{d}/{name}.jsonl"
                subprocess.run([sys.executable, script("infer.py"), "--model", f"{d}/{name}.pt", "--results", res],
                               check=True, capture_output=True)
                with open(res) as f:
                    lines = [json.loads(l) for l in f]
                records, metrics = lines[:-1], lines[-1]["run_metrics"]
                self.assertEqual(len(records), 360)
                self.assertEqual(metrics["samples"], 360)
                ids = [r["sample_id"] for r in records]
                self.assertEqual(len(set(ids)), len(ids))
                for r in records:
                    self.assertEqual(set(r), {"sample_id", "correct", "loss", "prediction", "label"})
                    self.assertEqual(r["correct"], int(r["prediction"] == r["label"]))
                self.assertAlmostEqual(metrics["accuracy"], sum(r["correct"] for r in records) / 360, places=6)
                acc[name] = (ids, metrics["accuracy"])
            self.assertEqual(acc["original"][0], acc["trained"][0], "both runs must score the same samples")
            self.assertGreater(acc["trained"][1], acc["original"][1] + 0.2)


if __name__ == "__main__":
    unittest.main()
