#!/usr/bin/env python3
"""Checks `xent eval` against PyTorch in float64, the README's Python recipe run for each
feature: K-dimensional and unbatched cross-entropy (class indices and probabilities), logit
softcap, z-loss and the log-sum-exp output, the NLL loss, the sigmoid focal loss, BCE with
logits on targets outside [0, 1], and fused
linear cross-entropy (`eval linear-ce`, against F.cross_entropy of hidden @ classifier.T +
bias), every reduction, with gradients. Inputs are float32; PyTorch computes on them widened to float64.
Each output must match within 2e-5 of its largest magnitude, with NaN and infinities where
PyTorch has them. Exits non-zero on any difference.

Needs numpy and torch (any build): `python3 scripts/torch-check.py [path/to/xent] [--large]`
(default: release/xent in cargo's target directory, built by `cargo build --release -p
xent-cli`). `--large` also checks
linear-ce at N = 2048, D = 128, V = 131072 (minutes, and about 10 GiB for PyTorch).
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

TOL = 2e-5
ARGS = [a for a in sys.argv[1:] if a != "--large"]
LARGE = "--large" in sys.argv[1:]
def default_xent():
    """release/xent in the workspace's target directory (scripts/target-dir.sh)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "target-dir.sh")
    target = subprocess.run([script], check=True, capture_output=True, text=True).stdout.strip()
    return os.path.join(target, "release", "xent")


XENT = ARGS[0] if ARGS else default_xent()
rng = np.random.default_rng(17)
failures = []


def close(name, got, want):
    """Within TOL of the largest finite |want|; NaN and infinities in the same places."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        failures.append(f"{name}: shape {got.shape}, PyTorch {want.shape}")
        return
    same_special = np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(
        np.where(np.isinf(want), want, 0), np.where(np.isinf(got), got, 0)
    )
    finite = np.isfinite(want) & np.isfinite(got)
    scale = max(np.abs(want[finite]).max(initial=0.0), 1e-30)
    err = np.abs(got[finite] - want[finite]).max(initial=0.0) / scale
    ok = same_special and err <= TOL
    print(f"{'ok  ' if ok else 'FAIL'} {name}: worst {err:.2e} of the largest value")
    if not ok:
        failures.append(f"{name}: worst {err:.2e}, NaN/inf match {same_special}")


def xent_eval(tmp, args, inputs, outputs):
    """Runs `xent eval ARGS` with INPUTS saved as .npy; returns the OUTPUTS loaded."""
    cmd = [XENT, "eval"] + args
    for flag, array in inputs.items():
        path = os.path.join(tmp, flag.strip("-") + ".npy")
        np.save(path, array)
        cmd += [flag, path]
    for flag in outputs:
        cmd += [flag, os.path.join(tmp, flag.strip("-") + ".npy")]
    subprocess.run(cmd, check=True)
    return [np.load(os.path.join(tmp, flag.strip("-") + ".npy")) for flag in outputs]


def reduce(values, reduction, denominator):
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        if float(denominator) == 0.0:
            # Every position ignored: F.cross_entropy's NaN mean, with its zero gradient.
            return values.sum() * 0.0 + float("nan")
        return values.sum() / denominator
    return values


def ce_reference(x, target, weight, ignore_index, smoothing, softcap, z_loss, reduction):
    """F.cross_entropy of the softcapped logits, plus z lse^2 per counted position, reduced
    as the cross-entropy term; and the log-sum-exp over classes."""
    z = softcap * torch.tanh(x / softcap) if softcap else x
    w = torch.from_numpy(weight).double() if weight is not None else None
    per = F.cross_entropy(z, target, weight=w, ignore_index=ignore_index,
                          label_smoothing=smoothing, reduction="none")
    lse = torch.logsumexp(z, dim=1 if z.dim() > 1 else 0)
    if target.dtype == torch.int64:
        counted = target != ignore_index
        safe = torch.where(counted, target, torch.zeros_like(target))
        wy = w[safe] if w is not None else torch.ones_like(per)
        denominator = (wy * counted).sum()
    else:
        counted = torch.ones_like(per, dtype=torch.bool)
        denominator = torch.tensor(float(per.numel()), dtype=torch.float64)
    per = per + z_loss * lse**2 * counted
    return reduce(per, reduction, denominator), lse


def check_ce(tmp, name, shape, target, weight=None, ignore_index=-100, smoothing=0.0,
             softcap=None, z_loss=0.0, masks=False):
    x32 = rng.standard_normal(shape).astype(np.float32) * 4
    if masks:
        x32.reshape(-1)[1::7] = -np.inf
    for reduction in ["none", "mean", "sum"]:
        args = ["ce", "--reduction", reduction, "--ignore-index", str(ignore_index),
                "--label-smoothing", str(smoothing), "--z-loss", str(z_loss)]
        if softcap:
            args += ["--softcap", str(softcap)]
        x = torch.from_numpy(x32).double().requires_grad_(True)
        t = torch.from_numpy(target)
        t = t.long() if target.dtype.kind == "i" else t.double()
        want, want_lse = ce_reference(x, t, weight, ignore_index, smoothing, softcap, z_loss,
                                      reduction)
        # A non-unit upstream gradient (loss.backward(u)), as --upstream gives it.
        u32 = rng.uniform(-2, 2, tuple(want.shape)).astype(np.float32)
        want.backward(torch.from_numpy(u32).double())
        inputs = {"--logits": x32, "--target": target, "--upstream": u32}
        if weight is not None:
            inputs["--weight"] = weight
        loss, grad, lse = xent_eval(tmp, args, inputs, ["--loss-out", "--grad-out", "--lse-out"])
        case = f"{name} {reduction}, upstream"
        close(case + " loss", loss, want.detach().numpy())
        close(case + " gradient", grad, x.grad.numpy())
        close(case + " log-sum-exp", lse, want_lse.detach().numpy())


def check_nll(tmp):
    shape = (4, 6, 3, 5)
    logp32 = torch.log_softmax(torch.randn(shape, dtype=torch.float64), 1).float().numpy()
    target = rng.integers(0, 6, (4, 3, 5)).astype(np.int64)
    target.reshape(-1)[::4] = 2
    weight = rng.uniform(0.2, 2.0, 6).astype(np.float32)
    for reduction in ["none", "mean", "sum"]:
        loss, grad = xent_eval(
            tmp, ["nll", "--reduction", reduction, "--ignore-index", "2"],
            {"--input": logp32, "--target": target, "--weight": weight},
            ["--loss-out", "--grad-out"])
        x = torch.from_numpy(logp32).double().requires_grad_(True)
        want = F.nll_loss(x, torch.from_numpy(target), weight=torch.from_numpy(weight).double(),
                          ignore_index=2, reduction=reduction)
        want.sum().backward()
        close(f"nll (4, 6, 3, 5) {reduction} loss", loss, want.detach().numpy())
        close(f"nll (4, 6, 3, 5) {reduction} gradient", grad, x.grad.numpy())


def check_focal(tmp):
    x32 = (rng.standard_normal((7, 9)) * 6).astype(np.float32)
    t32 = rng.uniform(0, 1, (7, 9)).astype(np.float32)
    for alpha, gamma in [(0.25, 2.0), (-1.0, 0.5), (0.6, 0.0)]:
        for reduction in ["none", "mean", "sum"]:
            loss, grad = xent_eval(
                tmp, ["focal", "--alpha", str(alpha), "--gamma", str(gamma),
                      "--reduction", reduction],
                {"--input": x32, "--target": t32}, ["--loss-out", "--grad-out"])
            x = torch.from_numpy(x32).double().requires_grad_(True)
            t = torch.from_numpy(t32).double()
            # torchvision.ops.sigmoid_focal_loss, as written there.
            p = torch.sigmoid(x)
            ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
            p_t = p * t + (1 - p) * (1 - t)
            per = ce * ((1 - p_t) ** gamma)
            if alpha >= 0:
                per = (alpha * t + (1 - alpha) * (1 - t)) * per
            want = reduce(per, reduction, per.numel())
            want.sum().backward()
            case = f"focal alpha {alpha} gamma {gamma} {reduction}"
            close(case + " loss", loss, want.detach().numpy())
            close(case + " gradient", grad, x.grad.numpy())


def check_bce_logits(tmp):
    x32 = (rng.standard_normal((6, 5)) * 8).astype(np.float32)
    # Targets outside [0, 1], as PyTorch takes them, beside soft and hard ones.
    t32 = rng.uniform(-3, 4, (6, 5)).astype(np.float32)
    t32[0] = [-1.3, 2.5, 0.0, 1.0, 1e3]
    weight = rng.uniform(0.0, 2.0, (6, 5)).astype(np.float32)
    pos_weight = np.array([0.5, 3.0, -2.0, 1.0, 2.0], dtype=np.float32)
    for reduction in ["none", "mean", "sum"]:
        x = torch.from_numpy(x32).double().requires_grad_(True)
        want = F.binary_cross_entropy_with_logits(
            x, torch.from_numpy(t32).double(), weight=torch.from_numpy(weight).double(),
            pos_weight=torch.from_numpy(pos_weight).double(), reduction=reduction)
        u32 = rng.uniform(-2, 2, tuple(want.shape)).astype(np.float32)
        want.backward(torch.from_numpy(u32).double())
        inputs = {"--input": x32, "--target": t32, "--weight": weight,
                  "--pos-weight": pos_weight, "--upstream": u32}
        loss, grad = xent_eval(tmp, ["bce", "--logits", "--reduction", reduction], inputs,
                               ["--loss-out", "--grad-out"])
        case = f"bce with logits, targets -3..1e3, weight, pos_weight {reduction}, upstream"
        close(case + " loss", loss, want.detach().numpy())
        close(case + " gradient", grad, x.grad.numpy())


def check_linear(tmp, shape, ignore_index=-100, smoothing=0.0, softcap=None, z_loss=0.0,
                 weighted=False, biased=True, reductions=("none", "mean", "sum"), block=None):
    n, d, v = shape
    h32 = rng.standard_normal((n, d)).astype(np.float32)
    w32 = (rng.standard_normal((v, d)) * (2.0 / np.sqrt(d))).astype(np.float32)
    b32 = rng.uniform(-0.5, 0.5, v).astype(np.float32)
    target = rng.integers(0, v, n).astype(np.int64)
    target[::7] = ignore_index
    weight = rng.uniform(0.2, 2.0, v).astype(np.float32) if weighted else None
    for reduction in reductions:
        args = ["linear-ce", "--reduction", reduction, "--ignore-index", str(ignore_index),
                "--label-smoothing", str(smoothing), "--z-loss", str(z_loss)]
        if softcap:
            args += ["--softcap", str(softcap)]
        if block:
            args += ["--block-bytes", str(block)]
        inputs = {"--hidden": h32, "--classifier": w32, "--target": target}
        outputs = ["--loss-out", "--grad-hidden-out", "--grad-classifier-out"]
        if weight is not None:
            inputs["--weight"] = weight
        if biased:
            inputs["--bias"] = b32
            outputs.append("--grad-bias-out")
        got = xent_eval(tmp, args, inputs, outputs)
        h = torch.from_numpy(h32).double().requires_grad_(True)
        w = torch.from_numpy(w32).double().requires_grad_(True)
        b = torch.from_numpy(b32).double().requires_grad_(True)
        x = h @ w.T + (b if biased else 0)
        want, _ = ce_reference(x, torch.from_numpy(target), weight, ignore_index, smoothing,
                               softcap, z_loss, reduction)
        want.sum().backward()
        case = f"linear-ce {shape} {reduction}"
        wants = [want.detach().numpy(), h.grad.numpy(), w.grad.numpy()]
        if biased:
            wants.append(b.grad.numpy())
        for what, g, wnt in zip(["loss", "d hidden", "d classifier", "d bias"], got, wants):
            close(f"{case} {what}", g, wnt)
        del x, want, h, w, b


def main():
    with tempfile.TemporaryDirectory() as tmp:
        c = 5
        labels = rng.integers(0, c, (2, 3, 4)).astype(np.int64)
        labels.reshape(-1)[::5] = -100
        weight = rng.uniform(0.2, 2.0, c).astype(np.float32)
        check_ce(tmp, "ce (2, 5, 3, 4) weight, smoothing", (2, c, 3, 4), labels, weight=weight,
                 smoothing=0.1)
        probs = rng.uniform(0, 1, (2, c, 3, 4)).astype(np.float32)
        probs /= probs.sum(axis=1, keepdims=True)
        check_ce(tmp, "ce (2, 5, 3, 4) probabilities, weight", (2, c, 3, 4), probs,
                 weight=weight, smoothing=0.2)
        check_ce(tmp, "ce unbatched (5,)", (c,), np.array(3, dtype=np.int64))
        check_ce(tmp, "ce (6, 40) softcap 30, z-loss 1e-3", (6, 40),
                 rng.integers(0, 40, 6).astype(np.int64), softcap=30.0, z_loss=1e-3)
        check_ce(tmp, "ce (6, 40) softcap 5, z-loss 1e-2, smoothing, ignore 0", (6, 40),
                 rng.integers(0, 40, 6).astype(np.int64), ignore_index=0, smoothing=0.1,
                 softcap=5.0, z_loss=1e-2)
        check_ce(tmp, "ce (8, 13) -inf masks, z-loss", (8, 13),
                 np.array([0, 2, 4, 6, 8, 10, 12, 3], dtype=np.int64), z_loss=1e-3, masks=True)
        check_nll(tmp)
        check_focal(tmp)
        check_bce_logits(tmp)
        check_linear(tmp, (1, 1, 1), ignore_index=-1)
        check_linear(tmp, (2, 1, 1), smoothing=0.1, z_loss=1e-2)
        check_linear(tmp, (37, 16, 300))
        check_linear(tmp, (65, 17, 2500), weighted=True, smoothing=0.1, softcap=30.0,
                     z_loss=1e-3, block=40 << 10)
        check_linear(tmp, (70, 32, 1100), ignore_index=0, smoothing=0.2, softcap=5.0,
                     z_loss=1e-2, biased=False, block=64 << 10)
        check_linear(tmp, (64, 128, 32000), weighted=True, smoothing=0.1, softcap=30.0,
                     z_loss=1e-4, reductions=("mean",))
        if LARGE:
            check_linear(tmp, (2048, 128, 131072), weighted=True, smoothing=0.1,
                         softcap=30.0, z_loss=1e-4, reductions=("mean",))
    if failures:
        print(f"\n{len(failures)} differences from PyTorch:")
        for f in failures:
            print("  " + f)
        sys.exit(1)
    print("\nevery output matches PyTorch float64")


if __name__ == "__main__":
    main()
