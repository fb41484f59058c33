#!/usr/bin/env python3
"""Tests of the fine-tuning example, without Slurm: the Slurm-to-torch
environment mapping, the progress file writer, a 2-rank gloo run started the
way srun starts it (SLURM_* variables only) with its progress file, and the
results file's shape.

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


class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


class ProgressWriterTest(unittest.TestCase):
    def setUp(self):
        sys.path.insert(0, HERE)
        import train  # no torch needed
        self.train = train

    def read(self, path):
        with open(path) as f:
            return [json.loads(l) for l in f]

    def test_from_env(self):
        with mock.patch.dict(os.environ, {"SOPILOT_PROGRESS_FILE": "/tmp/x"}):
            self.assertIsNotNone(self.train.ProgressWriter.from_env(0))
            self.assertIsNone(self.train.ProgressWriter.from_env(1))  # rank 0 only
        with mock.patch.dict(os.environ, {"SOPILOT_PROGRESS_FILE": ""}):
            self.assertIsNone(self.train.ProgressWriter.from_env(0))

    def test_throttled_lines(self):
        with tempfile.TemporaryDirectory() as d:
            path, clock = f"{d}/progress.jsonl", FakeClock()
            w = self.train.ProgressWriter(path, interval=0.5, clock=clock)
            self.assertFalse(os.path.exists(path), "nothing is created before the first line")
            wrote = []
            for step in range(1, 11):  # 10 steps, 0.1 s apart
                clock.t += 0.1
                w.add_samples(32)
                wrote.append(w.write(step, 10, loss=1.0 / step, lr=0.003, epoch=step / 10))
            # The first step, then one line per 0.5 s.
            self.assertEqual(wrote, [True, False, False, False, False, True, False, False, False, False])
            clock.t += 0.01
            self.assertTrue(w.write(10, 10, loss=0.1, force=True, test_acc=0.9))
            self.assertFalse(w.write(10, 10, force=True), "a step is never written twice")
            w.close()
            lines = self.read(path)
            self.assertEqual([l["step"] for l in lines], [1, 6, 10])
            self.assertEqual(lines[1], {"step": 6, "total_steps": 10, "time": 1000.6, "loss": 1.0 / 6,
                                        "samples_per_second": round(5 * 32 / 0.5, 2),
                                        "metrics": {"lr": 0.003, "epoch": 0.6}})
            self.assertEqual(lines[2]["metrics"], {"test_acc": 0.9})
            self.assertAlmostEqual(lines[2]["samples_per_second"], 4 * 32 / 0.41, places=1)

    def test_non_finite_values_left_out(self):
        with tempfile.TemporaryDirectory() as d:
            path = f"{d}/p"
            w = self.train.ProgressWriter(path, clock=FakeClock())
            self.assertTrue(w.write(1, 5, loss=float("nan"), lr=float("inf"), epoch=0.2))
            w.close()
            with open(path) as f:
                line = f.read()
            self.assertNotIn("NaN", line)
            self.assertEqual(json.loads(line), {"step": 1, "total_steps": 5, "time": 1000.0,
                                                "metrics": {"epoch": 0.2}})

    def test_unwritable_file_does_not_raise(self):
        with tempfile.TemporaryDirectory() as d:
            w = self.train.ProgressWriter(f"{d}/missing-dir/p", clock=FakeClock())
            with mock.patch("builtins.print"):
                self.assertFalse(w.write(1, 5, loss=1.0))
            self.assertFalse(w.due(force=True), "progress is off after a failed write")


@unittest.skipUnless(HAVE_DEPS, "needs torch and sklearn (apt-get install python3-torch python3-sklearn)")
class CheckpointTest(unittest.TestCase):
    def setUp(self):
        sys.path.insert(0, HERE)
        import train  # no torch needed
        self.train = train

    def test_checkpoint_line(self):
        with tempfile.TemporaryDirectory() as d:
            path, clock = f"{d}/progress.jsonl", FakeClock()
            w = self.train.ProgressWriter(path, interval=10, clock=clock)
            self.assertTrue(w.write(1, 100, loss=2.0))
            clock.t += 0.1  # throttled, but a checkpoint line is always written
            self.assertTrue(w.write(5, 100, loss=1.5, checkpoint=f"{d}/checkpoint-step5.pt", epoch=0.05))
            w.close()
            with open(path) as f:
                lines = [json.loads(l) for l in f]
            self.assertEqual(lines[1]["step"], 5)
            self.assertEqual(lines[1]["checkpoint"], f"{d}/checkpoint-step5.pt")
            self.assertNotIn("checkpoint", lines[0])

    def test_keeps_the_newest(self):
        saved = {}
        with tempfile.TemporaryDirectory() as d:
            def save(obj, path):
                saved[path] = obj
                open(path, "w").close()
            c = self.train.Checkpointer(d, keep=2, save=save)
            paths = [c.write({"model": "m"}, step) for step in (10, 20, 30)]
            self.assertEqual(paths, [f"{d}/checkpoint-step{s}.pt" for s in (10, 20, 30)])
            self.assertEqual(sorted(os.listdir(d)), ["checkpoint-step20.pt", "checkpoint-step30.pt"])
            self.assertEqual(saved[paths[2]], {"model": "m", "step": 30})
            c = self.train.Checkpointer(d, keep=0, save=save)
            for step in (40, 50, 60):
                c.write({}, step)
            self.assertEqual(len(os.listdir(d)), 5, "keep 0 removes nothing")

    def test_resume_source_and_position(self):
        with mock.patch.dict(os.environ, {"SOPILOT_RESUME_FROM": "/ckpt/a.pt"}):
            self.assertEqual(self.train.resume_source(""), "/ckpt/a.pt")
            self.assertEqual(self.train.resume_source("/ckpt/b.pt"), "/ckpt/b.pt")  # the flag wins
        with mock.patch.dict(os.environ, {"SOPILOT_RESUME_FROM": ""}):
            self.assertIsNone(self.train.resume_source(""))
        # The recorded checkpoint was rotated away after newer ones were
        # written: the newest one there is used.
        with tempfile.TemporaryDirectory() as d:
            for step in (30, 40, 9):
                open(os.path.join(d, f"checkpoint-step{step}.pt"), "w").close()
            open(os.path.join(d, "checkpoint-stepx.pt"), "w").close()
            with mock.patch.dict(os.environ, {"SOPILOT_RESUME_FROM": os.path.join(d, "checkpoint-step20.pt")}):
                self.assertEqual(self.train.resume_source(""), os.path.join(d, "checkpoint-step40.pt"))
            with mock.patch.dict(os.environ, {"SOPILOT_RESUME_FROM": os.path.join(d, "checkpoint-step30.pt")}):
                self.assertEqual(self.train.resume_source(""), os.path.join(d, "checkpoint-step30.pt"))  # still there
        with mock.patch.dict(os.environ, {"SOPILOT_RESUME_FROM": "/nonexistent/checkpoint-step5.pt"}):
            self.assertEqual(self.train.resume_source(""), "/nonexistent/checkpoint-step5.pt")  # fails on load, with the cause
        # 12 steps per epoch: after 30 steps, epoch 3 with 6 of its batches done.
        self.assertEqual(self.train.resume_position(30, 12), (3, 6))
        self.assertEqual(self.train.resume_position(0, 12), (1, 0))
        self.assertEqual(self.train.resume_position(24, 12), (3, 0))


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
            progress = f"{d}/progress.jsonl"
            base["SOPILOT_PROGRESS_FILE"] = progress
            def train(out, env, *extra):
                procs = [subprocess.Popen(
                    [sys.executable, script("train.py"), "--init", f"{d}/original.pt", "--out", out,
                     "--epochs", "8", "--progress-interval", "0.2", *extra],
                    env=dict(env, SLURM_PROCID=str(r), SLURM_LOCALID=str(r)),
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
                outs = [p.communicate(timeout=120)[0] for p in procs]
                for r, (p, o) in enumerate(zip(procs, outs)):
                    self.assertEqual(p.returncode, 0, f"rank {r}:\n{o}")
                return outs

            outs = train(f"{d}/trained.pt", dict(base, CHECKPOINT_EVERY="7"), "--keep-checkpoints", "0",
                         "--checkpoint-dir", f"{d}/ckpt")
            self.assertIn("rank 0/2 local_rank 0", outs[0])
            self.assertIn("master 127.0.0.1:24242", outs[0])  # 20000 + 4242 % 20000
            self.assertIn("world 2 (gloo)", outs[0])
            self.assertIn("epoch 8/8", outs[0])

            # Progress lines from rank 0 only: steps strictly increase (both
            # ranks writing would repeat them), one line per epoch end at least.
            with open(progress) as f:
                lines = [json.loads(l) for l in f]
            steps = [l["step"] for l in lines]
            self.assertEqual(steps, sorted(set(steps)), "steps must strictly increase")
            total = lines[0]["total_steps"]
            self.assertEqual(total % 8, 0)
            self.assertEqual(steps[-1], total)
            self.assertTrue(all(l["total_steps"] == total for l in lines))
            epoch_ends = [l for l in lines if "test_acc" in l["metrics"]]
            self.assertEqual([l["step"] for l in epoch_ends], [total // 8 * e for e in range(1, 9)])
            self.assertEqual([l["metrics"]["epoch"] for l in epoch_ends], list(range(1, 9)))
            # A checkpoint line every 7 steps and at every epoch end, each
            # naming a checkpoint of that step.
            ckpts = {l["step"]: l["checkpoint"] for l in lines if "checkpoint" in l}
            want = sorted(set(range(7, total + 1, 7)) | {total // 8 * e for e in range(1, 9)})
            self.assertEqual(sorted(ckpts), want)
            for s, path in ckpts.items():
                self.assertEqual(path, f"{d}/ckpt/checkpoint-step{s}.pt")
                self.assertTrue(os.path.exists(path))
            for l in lines:
                self.assertLessEqual(set(l), {"step", "total_steps", "time", "loss", "samples_per_second", "metrics",
                                              "checkpoint"})
                self.assertGreater(l["loss"], 0)
                self.assertEqual(l["metrics"]["lr"], 3e-3)
                self.assertGreater(l["samples_per_second"], 0)
                self.assertTrue(0 < l["metrics"]["epoch"] <= 8)
            self.assertGreater(epoch_ends[-1]["metrics"]["test_acc"], 0.8)
            self.assertLess(epoch_ends[-1]["metrics"]["epoch_loss"], epoch_ends[0]["metrics"]["epoch_loss"])

            # A second attempt resumes from a mid-epoch checkpoint (as sopilot
            # passes it) and ends with the same model as the run that was
            # never interrupted: model, optimizer and step all restored.
            mid = next(s for s in sorted(ckpts) if s % (total // 8))
            resumed_progress = f"{d}/progress-2.jsonl"
            outs = train(f"{d}/resumed.pt", dict(base, SOPILOT_RESUME_FROM=ckpts[mid], SOPILOT_ATTEMPT="2",
                                                 SOPILOT_PROGRESS_FILE=resumed_progress),
                         "--checkpoint-dir", f"{d}/ckpt-2")
            self.assertIn(f"attempt 2: resumed from {ckpts[mid]} at step {mid}/{total}", outs[0])
            with open(resumed_progress) as f:
                steps2 = [json.loads(l)["step"] for l in f]
            self.assertGreater(steps2[0], mid)
            self.assertEqual(steps2[-1], total)
            self.assertEqual(len(os.listdir(f"{d}/ckpt-2")), 2, "the newest 2 checkpoints are kept by default")
            import torch
            a, b = torch.load(f"{d}/trained.pt")["model"], torch.load(f"{d}/resumed.pt")["model"]
            for k in a:
                self.assertTrue(torch.allclose(a[k], b[k], atol=1e-6), f"{k} differs after resuming")

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
