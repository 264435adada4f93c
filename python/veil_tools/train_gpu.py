"""Time-boxed GPU training of PRISM's PreAct-ResNet-18 (preset ``cifar10-resnet18``).

One command (scripts/train-gpu.sh) that ends on time on one GPU: the whole training set
lives on the GPU as uint8 (decoded from gpu-data/cifar10-jpeg.npz, see gpu_data.py),
augmentation (random crop with 4-pixel zero padding, horizontal flip) runs on the GPU,
convolutions run under bf16 autocast in channels-last layout while every PolyAct evaluates
its polynomial in fp32, the schedule (linear warm-up, then linear decay to zero: one cycle)
is sized from the step time measured after a short warm-up so that training ends when
``--minutes`` are used up, an EMA of the weights is kept, and its batch-norm statistics
are re-estimated at the end. The result goes through train.finish (evaluation, range
measurement, ONNX export in veil's format, verification, card), and the weights are
written in parts below 16 MiB (the device machine returns at most 16 MiB a file).

Works on torch 1.13 (CPU rehearsal: ``--smoke``) and torch 2.x with CUDA.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from typing import List, Optional

import torch
import torch.nn.functional as F

from . import data as D
from . import gpu_data as G
from . import nets as N
from . import train as T
from .polyact import PolyAct, enable_penalty, polyacts, range_penalty

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PRESET = "cifar10-resnet18"
PART_BYTES = 15 * 2 ** 20


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train-gpu.sh", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (weights in parts, card, log)")
    p.add_argument("--data", default=os.path.join(REPO, "gpu-data", "cifar10-jpeg.npz"),
                   help="file written by scripts/prepare-gpu-data.sh")
    p.add_argument("--minutes", type=float, default=7.25,
                   help="training budget (wall clock of the training loop)")
    p.add_argument("--deadline", type=float, default=8.5,
                   help="minutes from start by which everything must be written: training "
                        "stops early enough to leave --reserve for the rest")
    p.add_argument("--reserve", type=float, default=1.0,
                   help="minutes kept for re-calibration, evaluation, export and writing")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    p.add_argument("--lr", type=float, default=0.2, help="peak learning rate")
    p.add_argument("--wd", type=float, default=5e-4, help="weight decay (conv/linear weights)")
    p.add_argument("--warmup", type=float, default=0.15, help="warm-up fraction of the schedule")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--ema", type=float, default=0.998, help="EMA decay per step (0: off)")
    p.add_argument("--ema-every", type=int, default=4, help="update the EMA every k steps")
    p.add_argument("--penalty", type=float, default=1.0, help="range penalty weight")
    p.add_argument("--penalty-margin", type=float, default=0.1)
    p.add_argument("--clamp", type=float, default=4.5, help="training-time clamp (PRISM)")
    p.add_argument("--width", type=int, default=None, help="base channels (64)")
    p.add_argument("--recal-batches", type=int, default=50,
                   help="batches for the final batch-norm re-estimation")
    p.add_argument("--max-steps", type=int, default=None,
                   help="cap on optimiser steps (--smoke: 8 unless given; 0: no cap)")
    p.add_argument("--timing-steps", type=int, default=30,
                   help="steps timed after a warm-up to size the schedule")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="fp32 training")
    p.add_argument("--smoke", action="store_true",
                   help="CPU rehearsal: width 8, 512 training / 256 test images, 8 steps")
    p.add_argument("--verify-samples", type=int, default=8)
    p.add_argument("--log-every", type=int, default=100, help="log the loss every k steps")
    return p


class Log:
    def __init__(self):
        self.t0 = time.time()

    def __call__(self, msg: str):
        print(f"[{time.time() - self.t0:7.1f} s] {msg}", flush=True)


def _fp32_input(mod, inputs):
    """Forward pre-hook: PolyAct evaluates its polynomial in fp32 under autocast (a degree-4
    polynomial near the clamp, 4.5^4 = 410, loses too much in bf16's 8-bit mantissa)."""
    return tuple(x.float() for x in inputs)


class GpuBatches:
    """Shuffled batches of a uint8 [N, 3, 32, 32] tensor held on the device, with
    random crop (zero padding 4) and horizontal flip done there; drops the last partial
    batch. Yields normalised float32 batches in channels-last layout."""

    def __init__(self, x, y, bs, mean, std, gen, augment=True):
        self.x, self.y, self.bs, self.gen, self.augment = x, y, bs, gen, augment
        self.mean, self.std = mean, std
        self.ar = torch.arange(32, device=x.device)

    def __len__(self):
        return len(self.y) // self.bs

    def __iter__(self):
        dev = self.x.device
        order = torch.randperm(len(self.y), device=dev, generator=self.gen)
        for i in range(len(self)):
            idx = order[i * self.bs:(i + 1) * self.bs]
            yield self.batch(idx), self.y[idx]

    def batch(self, idx):
        x = self.x[idx].float().div_(255.0)
        if self.augment:
            n = x.shape[0]
            xp = F.pad(x, (4, 4, 4, 4)).permute(0, 2, 3, 1)                # n, 40, 40, c
            dx = torch.randint(0, 9, (n,), device=x.device, generator=self.gen)
            dy = torch.randint(0, 9, (n,), device=x.device, generator=self.gen)
            rows = (dy.view(n, 1) + self.ar.view(1, 32)).view(n, 32, 1)
            cols = (dx.view(n, 1) + self.ar.view(1, 32)).view(n, 1, 32)
            x = xp[torch.arange(n, device=x.device).view(n, 1, 1), rows, cols]  # n, 32, 32, c
            flip = torch.rand(n, device=x.device, generator=self.gen) < 0.5
            x = torch.where(flip.view(n, 1, 1, 1), x.flip(2), x).permute(0, 3, 1, 2)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)


class Ema:
    """EMA of parameters and float buffers (``max_abs`` and BN counters copied)."""

    def __init__(self, model, decay):
        import copy
        self.decay, self.n = decay, 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.pairs = [(e, v) for e, v in zip(self.model.state_dict().values(),
                                             model.state_dict().values())]

    @torch.no_grad()
    def update(self, every: int):
        self.n += 1
        d = min(self.decay ** every, (1 + self.n) / (10 + self.n))
        for e, v in self.pairs:
            if e.dtype.is_floating_point:
                e.mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                e.copy_(v)


@torch.no_grad()
def accuracy(model, x8, y, mean, std, bs=1000):
    model.eval()
    correct = 0
    for i in range(0, len(y), bs):
        xb = ((x8[i:i + bs].float() / 255 - mean) / std).contiguous(
            memory_format=torch.channels_last)
        correct += int((model(xb).argmax(1) == y[i:i + bs]).sum())
    return correct / max(len(y), 1)


def save_parts(obj, out_dir: str, stem: str) -> List[str]:
    """torch.save ``obj`` and split it into files below 16 MiB: stem.part00, ..."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    names = []
    for k, i in enumerate(range(0, max(len(data), 1), PART_BYTES)):
        name = f"{stem}.part{k:02d}"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data[i:i + PART_BYTES])
        names.append(name)
    return names


def load_parts(run_dir: str, stem: str):
    parts = sorted(f for f in os.listdir(run_dir) if f.startswith(stem + ".part"))
    if not parts:
        raise FileNotFoundError(f"no {stem}.partNN files in {run_dir}")
    data = b"".join(open(os.path.join(run_dir, f), "rb").read() for f in parts)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except TypeError:
        return torch.load(io.BytesIO(data), map_location="cpu")


def main(argv: Optional[List[str]] = None) -> dict:
    args = build_parser().parse_args(argv)
    log = Log()
    t0 = log.t0
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        log(f"device {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    else:
        log(f"device cpu ({args.threads} threads), torch {torch.__version__}")
    if args.smoke:
        args.width = args.width or 8
        args.batch_size = min(args.batch_size, 64)
        args.max_steps = 8 if args.max_steps is None else (args.max_steps or None)  # 0: none
        args.timing_steps = min(args.timing_steps, 3)
        args.recal_batches = min(args.recal_batches, 4)
    os.makedirs(args.out, exist_ok=True)

    # data: JPEG -> uint8 tensors on the device
    z = G.load_jpegs(args.data)
    log(f"read {args.data} ({os.path.getsize(args.data) / 2**20:.1f} MiB, {z['meta']})")
    if args.smoke:
        z["train"] = tuple(v[:512] for v in z["train"])
        z["test"] = tuple(v[:256] for v in z["test"])
    x_tr = G.decode(z["train"][0], device, log)
    x_te = G.decode(z["test"][0], device, log)
    y_tr, y_te = z["train"][1].to(device), z["test"][1].to(device)
    info = D.INFO["cifar10"]
    mean = torch.tensor(info["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(info["std"], device=device).view(1, 3, 1, 1)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    loader = GpuBatches(x_tr, y_tr, args.batch_size, mean, std, gen)
    recal_loader = GpuBatches(x_tr, y_tr, args.batch_size, mean, std, gen, augment=False)

    # model: the cifar10-resnet18 preset (PRISM's degree-4 polynomial, clamp in training)
    cfg = dict(N.PRESETS[PRESET])
    cfg.update(width=args.width, clamp=args.clamp, penalty=args.penalty, optimizer=args.optimizer,
               lr=args.lr, wd=args.wd, batch_size=args.batch_size, ema=args.ema, mixup=0.0,
               erasing=0.0, trivialaugment=False, augment="crop-flip (GPU)",
               label_smoothing=args.label_smoothing, penalty_kind="mean+max",
               penalty_margin=args.penalty_margin, schedule="one-cycle (linear), time-boxed",
               bf16=bool(args.bf16 and cuda), channels_last=True)
    act = N.make_act_factory(cfg["act"], cfg["degree"], cfg["bound"], cfg["trainable"],
                             cfg["clamp"])
    model = cfg["net"](act, cfg["width"]).to(device).to(memory_format=torch.channels_last)
    for m in polyacts(model):
        m.register_forward_pre_hook(_fp32_input)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": args.wd},
              {"params": no_decay, "weight_decay": 0.0}]
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)
    else:
        opt = torch.optim.AdamW(groups, lr=args.lr)
    ema = Ema(model, args.ema) if args.ema > 0 else None
    enable_penalty(model, args.penalty > 0, "mean+max", args.penalty_margin)
    use_bf16 = cfg["bf16"]
    log(f"{PRESET}: width {cfg['width'] or 64}, {n_params} parameters, batch "
        f"{args.batch_size}, {len(loader)} steps an epoch, bf16 {use_bf16}")

    # time box: the training loop stops at t_stop; the schedule length (total steps) is set
    # from the step time measured over --timing-steps after a warm-up of as many steps and
    # re-estimated at every epoch end, so the one cycle ends when the time does.
    t_loop = time.time()
    t_stop = min(t_loop + args.minutes * 60, t0 + (args.deadline - args.reserve) * 60)
    total = args.max_steps or 10 ** 9  # until sized: warm-up at 10% of the peak rate

    def lr_at(step):
        w = max(1, int(args.warmup * total))
        if step < w:
            return args.lr * (0.1 + 0.9 * step / w)
        return args.lr * max(0.0, (total - step) / max(1, total - w))

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    step, epoch, history = 0, 0, []
    t_timing = None
    sized = args.max_steps is not None
    stop = False
    t_train0 = time.time()
    while not stop:
        epoch += 1
        te = time.time()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        model.train()
        for xb, yb in loader:
            if step == args.timing_steps and not sized:
                sync()
                t_timing = time.time()
            if step == 2 * args.timing_steps and not sized:
                sync()
                per_step = (time.time() - t_timing) / args.timing_steps
                total = step + max(1, int((t_stop - time.time()) / per_step))
                if args.max_steps:
                    total = min(total, args.max_steps)
                sized = True
                log(f"step time {per_step * 1000:.1f} ms -> schedule of {total} steps "
                    f"({total / len(loader):.1f} epochs)")
            for g_ in opt.param_groups:
                g_["lr"] = lr_at(step)
            if use_bf16:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    out = model(xb)
            else:
                out = model(xb)
            out = out.float()
            loss = F.cross_entropy(out, yb, label_smoothing=args.label_smoothing)
            pen = range_penalty(model) if args.penalty > 0 else torch.zeros((), device=device)
            opt.zero_grad(set_to_none=True)
            (loss + args.penalty * pen.to(device)).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
            if ema is not None and step % args.ema_every == 0:
                ema.update(args.ema_every)
            loss_sum += loss.detach()
            correct += (out.detach().argmax(1) == yb).sum()
            seen += len(yb)
            if args.log_every and step % args.log_every == 0:
                log(f"step {step}/{total if sized else '?'}: lr {lr_at(step - 1):.4f}, "
                    f"loss {float(loss):.4f}, penalty {float(pen):.3e}")
            if step >= total or time.time() >= t_stop:
                stop = True
                break
        sync()
        nb = max(1, math.ceil(seen / args.batch_size))
        rec = dict(epoch=epoch, steps=step, lr=lr_at(step - 1), loss=float(loss_sum) / nb,
                   train_accuracy=int(correct) / max(seen, 1), seconds=time.time() - te,
                   elapsed=time.time() - t0)
        if not math.isfinite(rec["loss"]):
            log(f"non-finite loss in epoch {epoch}: stopping")
            stop = True
        # re-size the schedule from the measured epoch speed (keeps the end on time)
        if args.max_steps is None and not stop:
            if sized:
                per_step = (time.time() - t_timing) / (step - args.timing_steps)
            else:  # an epoch shorter than the timing window: size from the whole epoch
                per_step = (time.time() - t_train0) / step
                sized = True
            total = min(total, step + max(1, int((t_stop - time.time()) / per_step)))
        history.append(rec)
        log(f"epoch {epoch}: step {step}/{total}, lr {rec['lr']:.4f}, loss {rec['loss']:.4f}, "
            f"train {rec['train_accuracy']:.2%}, {rec['seconds']:.1f} s")
    train_seconds = time.time() - t_train0
    log(f"trained {step} steps ({epoch} epochs) in {train_seconds:.1f} s")

    # finish: EMA (or raw) weights, BN re-estimation, fp32 evaluation
    if cuda:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    enable_penalty(model, False)
    raw_acc = accuracy(model, x_te, y_te, mean, std)
    final = ema.model if ema is not None else model
    T.recalibrate_bn(final, recal_loader, args.recal_batches)
    final_acc = accuracy(final, x_te, y_te, mean, std)
    log(f"test accuracy (JPEG test images, GPU): raw weights {raw_acc:.2%}, "
        f"{'EMA + ' if ema else ''}BN re-estimated {final_acc:.2%}")
    for m in polyacts(final):
        m._forward_pre_hooks.clear()
    final = final.to(memory_format=torch.contiguous_format)

    cmd = "bash scripts/train-gpu.sh " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    state = dict(model=final.state_dict(), preset=PRESET, width=cfg["width"], history=history,
                 args=vars(args), command=cmd, torch_version=torch.__version__,
                 raw_test_accuracy_gpu=raw_acc, test_accuracy_gpu=final_acc)
    parts = save_parts(state, args.out, "model.pt")
    log(f"wrote {', '.join(parts)} to {args.out}")

    # card + ONNX export (ONNX into a temporary folder: it exceeds what comes back; the
    # checker re-exports it from the weights)
    card = None
    tmp = tempfile.mkdtemp(prefix="veil-gpu-")
    try:
        train_split = D.Split(x_tr.cpu(), y_tr.cpu(), z["train"][2])
        test_split = D.Split(x_te.cpu(), y_te.cpu(), z["test"][2])
        ns = argparse.Namespace(out=tmp, calibrate=False, verify_samples=args.verify_samples,
                                time_budget=args.minutes, smoke=args.smoke, seed=args.seed,
                                threads=args.threads, init=None)
        cfg_card = dict(cfg)
        cfg_card["epochs"] = epoch
        card = T.finish(ns, cfg_card, PRESET, final, train_split, test_split,
                        D.Batches(train_split, "cifar10", 1000),
                        D.Batches(test_split, "cifar10", 1000), device, history, train_seconds,
                        n_params, False, None)
        card.update(training_command=cmd, device=str(torch.cuda.get_device_name(device))
                    if cuda else "cpu", train_seconds=round(train_seconds, 1),
                    total_seconds=round(time.time() - t0, 1),
                    raw_weights_test_accuracy=raw_acc,
                    test_images="JPEG q%d copies (re-evaluate with python/check_gpu_run.py)"
                                % z["meta"]["quality"],
                    weights_file="model.pt.partNN (cat in order)")
    except Exception as e:  # noqa: BLE001 - the weights are saved; the checker can export
        import traceback
        traceback.print_exc()
        log(f"finish/export failed ({type(e).__name__}: {e}); the checker re-exports "
            f"from the weights")
        card = dict(name=PRESET, error=f"{type(e).__name__}: {e}", history=history,
                    training_command=cmd, train_seconds=round(train_seconds, 1),
                    test_accuracy_gpu=final_acc, raw_weights_test_accuracy=raw_acc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(args.out, f"{PRESET}.json"), "w") as f:
        json.dump(T._strict_json(card), f, indent=2, allow_nan=False)
    log(f"done in {time.time() - t0:.1f} s; wrote {args.out}/{PRESET}.json")
    return card


if __name__ == "__main__":
    main()
