"""Shared pieces of the fine-tuning example: the data split and the model.

The data set is scikit-learn's bundled `digits` (1,797 8x8 grey images of the
digits 0-9, shipped inside the sklearn package: nothing is downloaded). Every
script splits it the same way (80/20, stratified, fixed seed), so the
training job never sees a test image and both inference jobs score exactly
the same test samples, named digit-<index into load_digits()>.
"""
import os
import sys
import time

SPLIT_SEED = 20261129
TEST_FRACTION = 0.2
HIDDEN = 64


def log(msg):
    """Print one progress line, flushed (Slurm's output file is not a tty)."""
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def load_split():
    """Return (x_train, y_train, idx_train, x_test, y_test, idx_test) as
    tensors; idx_* are the samples' indices in load_digits()."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0  # pixel values 0..16 -> 0..1
    y = digits.target.astype(np.int64)
    idx = np.arange(len(y))
    idx_train, idx_test = train_test_split(
        idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    idx_train.sort()
    idx_test.sort()
    t = torch.from_numpy
    return (t(x[idx_train]), t(y[idx_train]), t(idx_train),
            t(x[idx_test]), t(y[idx_test]), t(idx_test))


def build_model():
    """A small MLP: 64 pixels -> HIDDEN -> 10 classes."""
    import torch.nn as nn
    return nn.Sequential(
        nn.Linear(64, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, 10),
    )


def load_model(path):
    """Load a state dict saved by save_original.py or train.py."""
    import torch
    ckpt = torch.load(path, map_location="cpu")
    model = build_model()
    model.load_state_dict(ckpt["model"])
    return model, ckpt


def save_atomic(obj, path):
    """torch.save to path.tmp, then rename: a reader (or a crash) never sees
    half a file."""
    import torch
    tmp = f"{path}.tmp.{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def die(msg):
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)
