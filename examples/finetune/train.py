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
gradients are averaged by DDP. Rank 0 prints progress, writes a checkpoint
(DIR/checkpoint.pt, next to --out) after every epoch and the final model to
--out.
"""
import argparse
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
    args = p.parse_args()

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
    ckpt_path = os.path.join(os.path.dirname(os.path.abspath(args.out)), "checkpoint.pt")
    if rank == 0:
        log(f"world {world} ({backend}), {len(data)} training samples, {steps_per_epoch} steps/epoch "
            f"of {args.batch_size}/rank (global batch {args.batch_size * world}), {args.epochs} epochs, "
            f"started in {time.time() - t0:.1f}s")

    step, t_train = 0, time.time()
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)
        ddp.train()
        # loss and sample count summed over ranks, for an honest epoch loss
        acc = torch.zeros(2, device=device)
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad()
            loss = F.cross_entropy(ddp(xb), yb)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            opt.step()
            step += 1
            acc += torch.stack([loss.detach() * len(yb), torch.tensor(float(len(yb)), device=device)])
        dist.all_reduce(acc)
        if rank == 0:
            model.eval()
            with torch.no_grad():
                test_acc = (model(x_test.to(device)).argmax(1).cpu() == y_test).float().mean().item()
            save_atomic({"model": model.state_dict(), "epoch": epoch, "step": step}, ckpt_path)
            elapsed = time.time() - t_train
            rate = acc[1].item() / (elapsed / epoch)
            eta = elapsed / epoch * (args.epochs - epoch)
            log(f"epoch {epoch}/{args.epochs} step {step}/{total} loss {acc[0].item() / acc[1].item():.4f} "
                f"test_acc {test_acc:.4f} {rate:.0f} samples/s ETA {eta:.0f}s")

    if rank == 0:
        save_atomic({"model": model.state_dict(), "epoch": args.epochs, "step": step, "world_size": world,
                     "init": os.path.abspath(args.init)}, args.out)
        log(f"saved the trained model to {args.out} ({time.time() - t0:.1f}s in all)")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
