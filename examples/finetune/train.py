#!/usr/bin/env python3
"""Step 2 of the seed tutorial: distributed fine-tuning with DDP.

    srun python3 train.py --init DIR/original.pt --out DIR/trained.pt --epochs N

Run once per task under srun (sopilot: `--nodes 2 --ntasks-per-node 8
--gpus-per-node 8 -- python3 train.py ...`). Plain srun does not set
torch.distributed's variables, so this script maps Slurm's:

    SLURM_PROCID -> RANK        SLURM_NTASKS -> WORLD_SIZE
    SLURM_LOCALID -> LOCAL_RANK
    MASTER_ADDR <- the first host of SLURM_JOB_NODELIST (scontrol show
                   hostnames), resolved by DNS, else Slurm's NodeAddr for it
    MASTER_PORT <- 20000 + SLURM_JOB_ID % 20000 (two jobs sharing a first
                   node do not collide)

Variables already set (torchrun, a launcher) win. The backend is NCCL when
CUDA is available (each rank takes GPU LOCAL_RANK) and gloo on CPU. Every
rank trains on its DistributedSampler shard of the fixed training split;
gradients are averaged by DDP. Rank 0 prints progress and writes the final
model to --out.

Checkpoints: rank 0 saves the model, the optimizer and the step to
--checkpoint-dir (default: the directory of --out) as checkpoint-step<N>.pt
after every epoch and every --checkpoint-every steps (env CHECKPOINT_EVERY;
0: at epoch ends only), keeping the newest --keep-checkpoints of them, and
reports each in the progress file with a checkpoint line once it is whole.
When SOPILOT_RESUME_FROM is set (sopilot sets it for a later attempt of a
run: the newest checkpoint an earlier attempt reported) or --resume-from is
given, every rank loads that checkpoint and training goes on from its step:
the same batches in the same order as an uninterrupted run.

When SOPILOT_PROGRESS_FILE is set (sopilot sets it for every run), rank 0
also appends progress lines to that file for the node agent to stream: JSON
objects with step, total_steps, loss, samples_per_second, time and metrics
(lr, epoch; epoch_loss and test_acc at the end of each epoch), at most one
every --progress-interval seconds plus one per epoch (docs/progress.md).
"""
import argparse
import json
import math
import os
import re
import socket
import subprocess
import time

from common import build_model, die, load_split, log, save_atomic


def first_host(nodelist):
    """The first host name of a Slurm node list ("worker-[0-1]" -> "worker-0")."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                             text=True, timeout=20, check=True).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.SubprocessError):
        pass
    # Without scontrol: "a-[0-3,7],b" -> "a-0"; "a,b" -> "a".
    m = re.match(r"([^,\[]+)(?:\[(\d+))?", nodelist)
    if not m:
        die(f"cannot read the first host of SLURM_JOB_NODELIST={nodelist!r}")
    return m.group(1) + (m.group(2) or "")


def host_addr(host):
    """An address for host: DNS first, then Slurm's NodeAddr (several slurmd
    on one machine, as on the local test cluster, have names nothing resolves)."""
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]
    except OSError:
        pass
    try:
        out = subprocess.run(["scontrol", "show", "node", "-o", host], capture_output=True,
                             text=True, timeout=20, check=True).stdout
        m = re.search(r"\bNodeAddr=(\S+)", out)
        if m:
            return m.group(1)
    except (OSError, subprocess.SubprocessError):
        pass
    die(f"cannot resolve {host!r} (first node of the job) to an address for MASTER_ADDR")


class ProgressWriter:
    """Appends progress lines (docs/progress.md) to the file named by
    SOPILOT_PROGRESS_FILE: one JSON object per line, written whole and
    flushed. Per-step lines are throttled to one per `interval` seconds
    (`force` bypasses that, for epoch ends and the last step) so the file
    stays small however fast the steps are. Non-finite numbers (a diverged
    loss) are left out, since the format rejects them. A write that fails is
    reported once and progress is then off: it never stops training."""

    def __init__(self, path, interval=0.5, clock=time.time):
        self.path, self.interval, self.clock = path, interval, clock
        self.last_write = None  # clock() of the last line written
        self.last_step = None   # step of the last line written
        self.samples = 0        # global samples since the last line
        self.since = clock()    # start of the current throughput window
        self.file = None

    @classmethod
    def from_env(cls, rank, interval=0.5):
        """A writer for rank 0 when SOPILOT_PROGRESS_FILE is set, else None."""
        path = os.environ.get("SOPILOT_PROGRESS_FILE", "")
        return cls(path, interval) if path and rank == 0 else None

    def due(self, force=False):
        """Whether a line would be written now: the caller can skip computing
        values (loss.item() syncs with the GPU) when it would not."""
        return self.path is not None and (force or self.last_write is None
                                          or self.clock() - self.last_write >= self.interval)

    def add_samples(self, n):
        self.samples += n

    def write(self, step, total_steps, loss=None, force=False, checkpoint=None, **metrics):
        """Write one line if due; returns whether it did. checkpoint, the path
        of a checkpoint saved after step steps, makes it a checkpoint line
        (always written)."""
        force = force or checkpoint is not None
        if not self.due(force) or (self.last_step is not None and step <= self.last_step):
            return False
        now = self.clock()
        rec = {"step": int(step), "total_steps": int(total_steps), "time": round(now, 3)}
        if checkpoint is not None:
            rec["checkpoint"] = str(checkpoint)
        if loss is not None and math.isfinite(loss):
            rec["loss"] = float(loss)
        elapsed = now - self.since
        if elapsed > 0 and self.samples > 0:
            rec["samples_per_second"] = round(self.samples / elapsed, 2)
        m = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
        if m:
            rec["metrics"] = m
        try:
            if self.file is None:
                self.file = open(self.path, "a", encoding="utf-8")
            self.file.write(json.dumps(rec, allow_nan=False) + "\n")
            self.file.flush()
        except (OSError, ValueError) as e:
            log(f"progress file {self.path}: {e}; no more progress lines")
            self.path = None
            return False
        self.last_write, self.last_step, self.samples, self.since = now, step, 0, now
        return True

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


class Checkpointer:
    """Saves checkpoints (model, optimizer, step) as DIR/checkpoint-step<N>.pt,
    each written whole before it is named (save_atomic), and removes all but
    the newest `keep` of those it wrote (keep 0: none removed)."""

    def __init__(self, directory, keep=2, save=None):
        self.dir, self.keep, self.written = directory, keep, []
        self.save = save or save_atomic

    def path(self, step):
        return os.path.join(self.dir, f"checkpoint-step{int(step)}.pt")

    def write(self, state, step):
        """Save state for step; returns its path."""
        path = self.path(step)
        self.save(dict(state, step=int(step)), path)
        self.written.append(path)
        while self.keep and len(self.written) > self.keep:
            old = self.written.pop(0)
            try:
                os.remove(old)
            except OSError as e:
                log(f"remove old checkpoint {old}: {e}")
        return path


def resume_source(arg):
    """The checkpoint to resume from: --resume-from, else SOPILOT_RESUME_FROM,
    else None.

    SOPILOT_RESUME_FROM names the newest checkpoint sopilot saw reported. The
    earlier attempt may have gone on a little after the fault, written newer
    checkpoints and rotated that one away (--keep-checkpoints): then the
    newest whole checkpoint of that directory is used instead (checkpoints
    are written whole before they are named, so any that exists is
    complete). A --resume-from that does not exist is an error."""
    if arg:
        return arg
    env = os.environ.get("SOPILOT_RESUME_FROM")
    if not env or os.path.exists(env):
        return env or None
    newest = newest_checkpoint(os.path.dirname(env))
    if newest is None:
        return env  # loading it fails with the cause
    log(f"SOPILOT_RESUME_FROM {env} is gone (rotated after a newer checkpoint); resuming from {newest}")
    return newest


def newest_checkpoint(directory):
    """The checkpoint-step<N>.pt of directory with the highest N, or None."""
    best, best_step = None, -1
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return None
    for name in names:
        if name.startswith("checkpoint-step") and name.endswith(".pt"):
            try:
                n = int(name[len("checkpoint-step"):-len(".pt")])
            except ValueError:
                continue
            if n > best_step:
                best, best_step = os.path.join(directory, name), n
    return best


def resume_position(step, steps_per_epoch):
    """(first epoch, batches of it already done) for a run resumed after
    step steps; epochs count from 1."""
    return step // steps_per_epoch + 1, step % steps_per_epoch


def setup_env():
    """Fill RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT from Slurm."""
    env = os.environ
    if "SLURM_PROCID" in env:
        env.setdefault("RANK", env["SLURM_PROCID"])
        env.setdefault("WORLD_SIZE", env.get("SLURM_NTASKS", "1"))
        env.setdefault("LOCAL_RANK", env.get("SLURM_LOCALID", "0"))
        if "MASTER_ADDR" not in env:
            env["MASTER_ADDR"] = host_addr(first_host(env.get("SLURM_JOB_NODELIST", "localhost")))
        env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))
    else:  # a plain `python3 train.py`: a world of one
        env.setdefault("RANK", "0")
        env.setdefault("WORLD_SIZE", "1")
        env.setdefault("LOCAL_RANK", "0")
        env.setdefault("MASTER_ADDR", "127.0.0.1")
        env.setdefault("MASTER_PORT", "29500")
    return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--init", required=True, help="model to start from (save_original.py's original.pt)")
    p.add_argument("--out", required=True, help="where rank 0 writes the trained model")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16, help="per rank; the global batch is this x WORLD_SIZE")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--progress-interval", type=float, default=0.5,
                   help="seconds between progress lines in $SOPILOT_PROGRESS_FILE (plus one per epoch)")
    p.add_argument("--checkpoint-every", type=int, default=int(os.environ.get("CHECKPOINT_EVERY", "0")),
                   help="also save a checkpoint every N steps (env CHECKPOINT_EVERY; 0: at epoch ends only)")
    p.add_argument("--checkpoint-dir", default=os.environ.get("CHECKPOINT_DIR", ""),
                   help="where checkpoints go (env CHECKPOINT_DIR; default: the directory of --out); "
                        "a later attempt on another node must be able to read it")
    p.add_argument("--keep-checkpoints", type=int, default=2,
                   help="how many of the newest checkpoints to keep (0: all)")
    p.add_argument("--resume-from", default="",
                   help="checkpoint to resume from (default: $SOPILOT_RESUME_FROM, set by sopilot for a retry)")
    args = p.parse_args()
    if args.checkpoint_every < 0:
        die(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    if args.keep_checkpoints < 0:
        die(f"--keep-checkpoints must be >= 0, got {args.keep_checkpoints}")

    t0 = time.time()
    rank, world, local_rank = setup_env()

    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    # Many ranks may share few cores (16 on 2 here): one thread each, or they
    # fight over the cores and every all-reduce waits for the slowest.
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    if torch.cuda.is_available():
        backend, device = "nccl", torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        backend, device = "gloo", torch.device("cpu")
    host = os.environ.get("SLURMD_NODENAME", socket.gethostname())
    print(f"rank {rank}/{world} local_rank {local_rank} on {host}: backend {backend}, "
          f"master {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}", flush=True)
    # PyTorch 2.4+ asks for the libuv TCPStore by default, and Debian's
    # python3-torch (trixie's 2.6) is built without libuv: "use_libuv was
    # requested but PyTorch was build without libuv support". The classic
    # store is all a job of this size needs; older PyTorch ignores the
    # variable. Set only when the caller has not chosen.
    os.environ.setdefault("USE_LIBUV", "0")
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)

    x_train, y_train, _, x_test, y_test, _ = load_split()
    model = build_model()
    try:
        ckpt = torch.load(args.init, map_location="cpu")
        model.load_state_dict(ckpt["model"])
    except Exception as e:  # noqa: BLE001 - any failure here is fatal, with its cause
        die(f"rank {rank}: cannot load --init {args.init}: {e}")
    model.to(device)
    ddp = DDP(model, device_ids=[local_rank] if backend == "nccl" else None)

    data = TensorDataset(x_train, y_train)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler)
    opt = torch.optim.Adam(ddp.parameters(), lr=args.lr)
    steps_per_epoch, total = len(loader), len(loader) * args.epochs
    ckpt = Checkpointer(args.checkpoint_dir or os.path.dirname(os.path.abspath(args.out)), args.keep_checkpoints)
    if rank == 0:
        os.makedirs(ckpt.dir, exist_ok=True)
    step = 0
    resume = resume_source(args.resume_from)
    if resume:
        # Every rank loads it: the model and Adam's state are the same on all.
        try:
            state = torch.load(resume, map_location="cpu")
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            step = int(state["step"])
        except Exception as e:  # noqa: BLE001 - fatal, with its cause
            die(f"rank {rank}: cannot resume from {resume}: {e}")
        if not 0 <= step <= total:
            die(f"rank {rank}: checkpoint {resume} is at step {step}, outside this run's 0..{total}")
        if rank == 0:
            log(f"attempt {os.environ.get('SOPILOT_ATTEMPT', '?')}: resumed from {resume} at step {step}/{total}")
    start_epoch, done_in_epoch = resume_position(step, steps_per_epoch)
    if rank == 0:
        log(f"world {world} ({backend}), {len(data)} training samples, {steps_per_epoch} steps/epoch "
            f"of {args.batch_size}/rank (global batch {args.batch_size * world}), {args.epochs} epochs, "
            f"started in {time.time() - t0:.1f}s")

    def save_checkpoint(epoch):
        return ckpt.write({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                           "world_size": world}, step)

    progress = ProgressWriter.from_env(rank, args.progress_interval)
    t_train = time.time()
    for epoch in range(start_epoch, args.epochs + 1):
        sampler.set_epoch(epoch)
        ddp.train()
        # loss and sample count summed over ranks, for an honest epoch loss
        acc = torch.zeros(2, device=device)
        for i, (xb, yb) in enumerate(loader, 1):
            if epoch == start_epoch and i <= done_in_epoch:
                continue  # done before the checkpoint: same order, since the sampler's seed is the epoch
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad()
            loss = F.cross_entropy(ddp(xb), yb)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            opt.step()
            step += 1
            acc += torch.stack([loss.detach() * len(yb), torch.tensor(float(len(yb)), device=device)])
            if progress:
                progress.add_samples(len(yb) * world)  # the sampler gives every rank equal batches
            # The epoch's last step gets its checkpoint and line below, with the epoch's results.
            if rank == 0 and args.checkpoint_every and step % args.checkpoint_every == 0 and i < steps_per_epoch:
                path = save_checkpoint(epoch - 1 + i / steps_per_epoch)
                if progress:
                    progress.write(step, total, loss.item(), checkpoint=path, lr=opt.param_groups[0]["lr"],
                                   epoch=epoch - 1 + i / steps_per_epoch)
            elif progress:
                if i < steps_per_epoch and progress.due():
                    progress.write(step, total, loss.item(), lr=opt.param_groups[0]["lr"],
                                   epoch=epoch - 1 + i / steps_per_epoch)
        dist.all_reduce(acc)
        if rank == 0:
            model.eval()
            with torch.no_grad():
                test_acc = (model(x_test.to(device)).argmax(1).cpu() == y_test).float().mean().item()
            path = save_checkpoint(epoch)
            elapsed, epochs_here = time.time() - t_train, epoch - start_epoch + 1
            rate = acc[1].item() / (elapsed / epochs_here)
            eta = elapsed / epochs_here * (args.epochs - epoch)
            log(f"epoch {epoch}/{args.epochs} step {step}/{total} loss {acc[0].item() / acc[1].item():.4f} "
                f"test_acc {test_acc:.4f} {rate:.0f} samples/s ETA {eta:.0f}s")
            if progress:
                progress.write(step, total, loss.item(), checkpoint=path, lr=opt.param_groups[0]["lr"], epoch=epoch,
                               epoch_loss=acc[0].item() / acc[1].item(), test_acc=test_acc)

    if rank == 0:
        save_atomic({"model": model.state_dict(), "epoch": args.epochs, "step": step, "world_size": world,
                     "init": os.path.abspath(args.init)}, args.out)
        log(f"saved the trained model to {args.out} ({time.time() - t0:.1f}s in all)")
        if progress:
            progress.close()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
