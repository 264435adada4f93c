"""Training driver for veil's models (see ``python/train.py --help``)."""

from __future__ import annotations

import argparse
import copy
import gzip
import io
import json
import math
import os
import random
import shlex
import sys
import time
from typing import List, Optional

import numpy as np
import torch
import onnx
import torch.nn.functional as F
try:
    from tqdm import tqdm
except ImportError:  # the GPU machine has no tqdm (train_gpu.py imports this module)
    class tqdm:  # noqa: N801 - minimal stand-in: no bar
        def __init__(self, *a, **k):
            pass

        def update(self, *a, **k):
            pass

        def set_postfix(self, *a, **k):
            pass

        def close(self):
            pass

from . import calibrate as C
from . import data as D
from . import export as E
from . import nets as N
from . import widen as W
from .polyact import (DIVERGED_FACTOR, enable_penalty, measure_ranges, polyacts, range_penalty,
                      track_range)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train one of veil's HE-friendly models (polynomial activations, BN "
                    "before every activation, range penalty), measure per-layer "
                    "pre-activation ranges, export to ONNX (veil format), verify the export "
                    "with a numpy interpreter, and write a JSON model card.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, choices=sorted(N.PRESETS),
                   help="architecture / data set preset")
    p.add_argument("--data", default=None,
                   help="data directory (IDX files for MNIST/Fashion-MNIST, raw or .gz; "
                        "CIFAR-10 binary batches, raw or .xz); default: search data/<set> "
                        "and the system locations")
    p.add_argument("--out", default=os.path.join(REPO, "models"),
                   help="output directory for <name>.onnx and <name>.json")
    p.add_argument("--name", default=None, help="output base name (default: the model preset)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (preset default if unset)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--wd", type=float, default=None, help="weight decay")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default=None)
    p.add_argument("--warmup", type=float, default=1.0, help="linear warm-up epochs (then cosine)")
    p.add_argument("--width", type=int, default=None,
                   help="width: hidden units (cryptonets), conv channels (delphi), base "
                        "channels (cifar nets)")
    p.add_argument("--act", default=None,
                   help="activation: square | prism | relu | softplus | silu | gelu "
                        "(a fit of the given degree on [-bound, bound]), or exact-relu: a true "
                        "ReLU, for a --teacher network only (no ONNX is exported: it cannot "
                        "run under encryption; the checkpoint and a card are written)")
    p.add_argument("--degree", type=int, default=None, help="polynomial degree")
    p.add_argument("--bound", type=float, default=None, help="fit interval B ([-B, B])")
    p.add_argument("--trainable-coeffs", dest="trainable", action="store_true", default=None,
                   help="train the polynomial coefficients too")
    p.add_argument("--fixed-coeffs", dest="trainable", action="store_false",
                   help="keep the polynomial coefficients fixed (only s, b train)")
    p.add_argument("--penalty", type=float, default=None,
                   help="weight of the range penalty sum_l mean(relu(|x_l| - B)^2)")
    p.add_argument("--penalty-kind", choices=["mean", "mean+max"], default="mean+max",
                   help="mean: mean(relu(|x|-T)^2); mean+max: plus the per-channel batch "
                        "maximum excess squared")
    p.add_argument("--penalty-margin", type=float, default=0.1,
                   help="penalise beyond T = (1 - margin) * B")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="skip the exact BN/Poly rescaling that brings measured ranges inside "
                        "the fit range (applied only with trainable coefficients; see "
                        "veil_tools/calibrate.py)")
    p.add_argument("--clamp", type=float, default=None,
                   help="clamp pre-activations to +-C during training (PRISM: 4.5)")
    p.add_argument("--augment", choices=["none", "shift", "crop-flip"], default=None)
    p.add_argument("--bn-freeze-epochs", type=int, default=0,
                   help="train the last K epochs with batch norm in inference mode (running "
                        "statistics frozen, affine parameters still trained), so training "
                        "sees exactly the function that is exported")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--teacher", default=None, nargs="+", metavar="CHECKPOINT",
                   help="knowledge distillation (Hinton et al. 2015): a train.py checkpoint of "
                        "a stronger network on the same data set; its EMA weights (with BN "
                        "statistics re-estimated as for export) give soft targets on each "
                        "training batch. Several checkpoints distil from their ensemble: "
                        "the soft targets are the mean of the teachers' tempered softmaxes")
    p.add_argument("--kd-weight", type=float, default=0.5,
                   help="weight of the distillation term; the label loss gets 1 - this")
    p.add_argument("--kd-temperature", type=float, default=4.0,
                   help="softmax temperature of the distillation term")
    p.add_argument("--ema", type=float, default=None, help="EMA decay of the weights (0: off)")
    p.add_argument("--mixup", type=float, default=None, help="MixUp alpha (0: off)")
    p.add_argument("--erasing", type=float, default=None, help="RandomErasing probability")
    p.add_argument("--trivialaugment", action="store_true", default=None,
                   help="torchvision TrivialAugmentWide per image (CIFAR)")
    p.add_argument("--no-trivialaugment", dest="trivialaugment", action="store_false",
                   help="turn off a preset's TrivialAugmentWide (short schedules, where the "
                        "extra augmentation costs more accuracy than it regularises)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch CPU threads (default: all cores)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:0, ...")
    p.add_argument("--bf16", action="store_true",
                   help="train under bfloat16 autocast with channels-last tensors: on a CPU "
                        "with AVX-512 BF16 (Zen 4, Sapphire Rapids) a cifar10-resnet20 step "
                        "takes about 0.7x the float32 time (with true ReLUs 0.5x). The weights, the optimiser, the "
                        "EMA, every evaluation and the export stay float32; a run resumes "
                        "only with the precision it started with")
    p.add_argument("--smoke", action="store_true",
                   help="CI smoke run: a few batches on a small slice, 1 epoch")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--checkpoint", default=None,
                   help="save a checkpoint here at every epoch end and every "
                        "--checkpoint-minutes inside an epoch (model, optimiser, EMA, epoch, "
                        "step, position in the epoch, the epoch's order, every RNG state); "
                        "training resumes from it if it exists")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0,
                   help="also checkpoint inside an epoch when this many minutes have passed "
                        "since the last checkpoint (0: only at epoch ends)")
    p.add_argument("--compact-checkpoint", default=None, metavar="PATH",
                   help="with every checkpoint also write a compact copy here, small enough "
                        "to keep in git between sessions: weight matrices and kernels in "
                        "float16 (model, EMA; optimiser buffers in bfloat16), gzip-compressed: "
                        "under half the size. "
                        "--resume takes it as "
                        "--checkpoint; the run then continues closely, not bit for bit")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint (which must exist) exactly where it "
                        "stopped: the resumed run reproduces an uninterrupted one bit for bit "
                        "(same --threads and device)")
    # hidden, for the resume test: checkpoint and stop after this many optimiser steps
    p.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--init", default=None,
                   help="start from the weights of this checkpoint (fine-tuning; optimizer "
                        "and schedule start fresh)")
    p.add_argument("--widen", action="store_true",
                   help="with --init: the checkpoint is a narrower network of the same model "
                        "(e.g. --width 16 into --width 24); its channels are copied so that "
                        "the wider network starts computing the same function (Net2WiderNet, "
                        "veil_tools/widen.py)")
    p.add_argument("--widen-noise", type=float, default=0.02,
                   help="with --widen: noise on the copied channels' incoming weights, as a "
                        "fraction of each tensor's standard deviation (lets the copies part)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="stop training after this many minutes (finishing the current epoch)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="time-based schedule: the cosine learning-rate decay runs over this many "
                        "minutes of training and training stops when they are used up "
                        "(overrides --epochs as the schedule length; --epochs stays the cap)")
    p.add_argument("--no-progress", action="store_true", help="disable tqdm bars")
    p.add_argument("--verify-samples", type=int, default=8,
                   help="test images used to compare ONNX (numpy interpreter) with torch")
    return p


def resolve(args) -> dict:
    cfg = dict(N.PRESETS[args.model])
    for k in ("epochs", "batch_size", "lr", "wd", "optimizer", "act", "degree", "bound",
              "trainable", "penalty", "clamp", "augment", "ema", "mixup", "erasing",
              "trivialaugment"):
        v = getattr(args, k)
        if v is not None:
            cfg[k] = v
    cfg.setdefault("clamp", None)
    for k in ("ema", "mixup", "erasing"):
        cfg.setdefault(k, 0.0)
    cfg.setdefault("trivialaugment", False)
    cfg["width"] = args.width
    return cfg


def warn_slow_bf16(device):
    """bfloat16 pays only where the CPU computes it natively; elsewhere torch emulates it."""
    if device.type != "cpu":
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "").split()
    except OSError:
        flags = []
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        print("train.py: warning: this CPU has no AVX-512 BF16 or AMX; --bf16 will be slower "
              "than float32 here (drop --bf16)", file=sys.stderr, flush=True)


def seed_all(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EMA:
    def __init__(self, model, decay):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        for (k, e), v in zip(self.model.state_dict().items(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                if k.endswith("max_abs"):
                    e.copy_(v)
                else:
                    e.mul_(self.decay).add_(v, alpha=1 - self.decay)
            else:
                e.copy_(v)


# batches of 500 training images, augmented as in training, that re-estimate the BN
# statistics of the EMA model. Un-augmented images do not work: the network learnt its
# activation ranges under crop padding, and cifar10-resnet20 fell to 10% with statistics of
# clean images against 79% with augmented ones (epoch 8).
RECAL_BATCHES = 20


@torch.no_grad()
def recalibrate_bn(model, loader, batches: int):
    """Re-estimate BN running statistics with the inference-time network (PolyAct without
    the training clamp): cumulative averages over ``batches`` training batches."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    done = 0
    while done < batches:
        for xb, _ in loader:
            model(xb)
            done += 1
            if done >= batches:
                break
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


@torch.no_grad()
def better_bn(model, recal_loader, judge_loader, batches: int = 10):
    """The EMA model with its own averaged BN statistics, or a copy with statistics
    re-estimated (recalibrate_bn), whichever classifies more of the first ``batches``
    batches of ``judge_loader`` (training images) correctly with finite logits. Late in a
    schedule the two agree; early, or in a few-step smoke run where re-estimation can
    blow a near-random polynomial network up, the choice matters."""
    cand = copy.deepcopy(model)
    recalibrate_bn(cand, recal_loader, RECAL_BATCHES)

    def score(m):
        m.eval()
        right = 0
        for i, (xb, yb) in enumerate(judge_loader):
            if i >= batches:
                break
            out = m(xb)
            if not torch.isfinite(out).all():
                return -1
            right += int((out.argmax(1) == yb).sum())
        return right

    return cand if score(cand) > score(model) else model


@torch.no_grad()
def evaluate(model, loader, device, exact: Optional[torch.Tensor] = None,
             logits: Optional[list] = None):
    """Accuracy on loader (and on its exact subset); appends the batches' logits to
    `logits` when one is given, for callers that need them too."""
    model.eval()
    correct = []
    for xb, yb in loader:
        out = model(xb.to(device))
        correct.append((out.argmax(1).cpu() == yb))
        if logits is not None:
            logits.append(out.float().cpu())
    c = torch.cat(correct)
    res = {"accuracy": float(c.float().mean()), "n": int(len(c))}
    if exact is not None:
        m = exact[:len(c)]
        res["exact_accuracy"] = float(c[m].float().mean()) if m.any() else float("nan")
        res["exact_n"] = int(m.sum())
    return res


def _random_erasing(x, p, gen):
    n, c, h, w = x.shape
    for i in range(n):
        if torch.rand(1, generator=gen).item() >= p:
            continue
        area = h * w * (0.02 + 0.31 * torch.rand(1, generator=gen).item())
        ratio = math.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * torch.rand(1, generator=gen).item())
        eh, ew = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if eh < h and ew < w:
            y0 = int(torch.randint(0, h - eh + 1, (1,), generator=gen))
            x0 = int(torch.randint(0, w - ew + 1, (1,), generator=gen))
            x[i, :, y0:y0 + eh, x0:x0 + ew] = 0.0
    return x


def _load_checkpoint(path: str, device):
    """torch.load of a full training checkpoint (RNG states are not plain tensors: newer
    torch versions default to weights_only=True, which would refuse them); a gzip-compressed
    one (--compact-checkpoint writes them so) is decompressed first."""
    with open(path, "rb") as f:
        raw = f.read(2)
    src = io.BytesIO(gzip.decompress(open(path, "rb").read())) if raw == b"\x1f\x8b" else path
    try:
        return torch.load(src, map_location=device, weights_only=False)
    except TypeError:  # torch < 1.13 has no weights_only
        return torch.load(src, map_location=device)


def _compact_state(state: dict, dtype=torch.float16) -> dict:
    """Half-width copies of the matrices and kernels (ndim >= 2) of a state dict; vectors
    (biases, batch-norm statistics, activation parameters) and integers stay as they are.
    float16 for weights (2^-11 relative, far below what one SGD step changes); bfloat16
    for optimiser buffers, whose range float16 lacks (Adam's squared gradients reach 1e-10
    and would flush to zero)."""
    out = {}
    for k, v in state.items():
        small = (torch.is_tensor(v) and v.is_floating_point() and v.dim() >= 2
                 and (dtype == torch.bfloat16 or v.abs().max() < 6e4))
        out[k] = v.detach().to(dtype).contiguous() if small else v
    return out


def compact_checkpoint(ck: dict) -> dict:
    """The checkpoint that --compact-checkpoint writes: everything of a full one (position,
    order, RNG states, history) with the weights and the EMA in float16 and the optimiser's
    buffers in bfloat16. (Dropping the momentum instead saves a third more, but a run
    resumed without it drifted 15% from the uninterrupted one on the test's schedule.)"""
    state = {i: _compact_state(st, torch.bfloat16) for i, st in ck["opt"]["state"].items()}
    out = dict(ck, compact=True, model=_compact_state(ck["model"]), opt=dict(ck["opt"], state=state))
    if "ema" in ck:
        out["ema"] = _compact_state(ck["ema"])
    return out


def _save_atomically(obj, path: str, compress: bool = False) -> None:
    """compress: gzip (a ResNet-18's compact checkpoint: 67.7 -> 58.3 MB, below the 64 MB a
    tracked file may take; xz saved 3 MB more for 8x the time)."""
    if compress:
        buf = io.BytesIO()
        torch.save(obj, buf)
        with open(path + ".tmp", "wb") as f:
            f.write(gzip.compress(buf.getvalue(), compresslevel=6))
    else:
        torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


def _rng_state(gen: torch.Generator) -> dict:
    """Every RNG training draws from (the loader's generator is saved separately as "gen")."""
    st = dict(python=random.getstate(), numpy=np.random.get_state(),
              torch=torch.get_rng_state(), aug=gen.get_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict, gen: torch.Generator):
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"].cpu())
    gen.set_state(st["aug"].cpu())
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in st["cuda"]])


def kd_loss(student_logits, teacher_logits, temperature: float):
    """Hinton et al.'s distillation term: T^2 * KL(q || softmax(s/T)), averaged over the
    batch (T^2 keeps its gradient's scale independent of T). q is softmax(t/T) of the
    teacher's logits t, or, given a list of teachers' logits, the mean of their tempered
    softmaxes (an ensemble's soft targets, as in Hinton et al. 2015, section 4)."""
    t = temperature
    log_p = F.log_softmax(student_logits / t, dim=1)
    return F.kl_div(log_p, soft_targets(teacher_logits, t), reduction="batchmean") * (t * t)


def soft_targets(teacher_logits, temperature: float):
    """softmax(t/T) of one teacher's logits, or the mean of it over a list of teachers'."""
    if not isinstance(teacher_logits, (list, tuple)):
        teacher_logits = [teacher_logits]
    return torch.stack([F.softmax(x / temperature, dim=1) for x in teacher_logits]).mean(0)


def net_summary(cfg: dict) -> str:
    """A preset's architecture and size, for the log."""
    net = cfg["net"](N.make_act_factory("square", 2, 1.0, False), cfg["width"])
    return f"{type(net).__name__}, {sum(p.numel() for p in net.parameters())} parameters"


def load_teacher(path: str, dataset: str, device):
    """The network of a train.py checkpoint, as it would be exported: its EMA weights with
    BN statistics chosen by better_bn (no RNG is drawn: --resume stays bit for bit), or its
    raw weights where it kept no EMA. Refuses a checkpoint of another data set."""
    if not os.path.exists(path):
        raise SystemExit(f"train.py: --teacher {path!r} does not exist")
    ck = _load_checkpoint(path, device)
    if not isinstance(ck, dict) or "args" not in ck or "model" not in ck:
        raise SystemExit(f"train.py: --teacher {path!r} is not a train.py checkpoint "
                         "(no 'args' and 'model' entries)")
    targs = build_parser().parse_args(["--model", ck["args"]["model"]])
    for k, v in ck["args"].items():
        if hasattr(targs, k):
            setattr(targs, k, v)
    tcfg = resolve(targs)
    if tcfg["dataset"] != dataset:
        raise SystemExit(f"train.py: --teacher {path!r} was trained on {tcfg['dataset']}, "
                         f"not {dataset}")
    act = N.make_act_factory(tcfg["act"], tcfg["degree"], tcfg["bound"], tcfg["trainable"],
                             tcfg["clamp"])
    teacher = tcfg["net"](act, tcfg["width"]).to(device)
    teacher.load_state_dict(ck["ema"] if "ema" in ck else ck["model"])
    for p_ in teacher.parameters():
        p_.requires_grad_(False)
    return teacher.eval(), tcfg, ("ema" in ck)


def main(argv: Optional[List[str]] = None) -> dict:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    seed_all(args.seed)
    cfg = resolve(args)
    name = args.name or args.model
    device = torch.device(args.device)
    dataset = cfg["dataset"]
    t0 = time.time()

    train, test = D.load(dataset, args.data)
    if args.train_limit:
        train = train.subset(args.train_limit)
    max_batches = None
    if args.smoke:
        train, test = train.subset(512), test.subset(256)
        max_batches = 4
        cfg["epochs"] = 1
    bs = cfg["batch_size"]
    train_loader = D.Batches(train, dataset, bs, shuffle=True, augment=cfg["augment"],
                             seed=args.seed, max_batches=max_batches)
    test_loader = D.Batches(test, dataset, 500)
    plain_train_loader = D.Batches(train, dataset, 500)

    def recal_loader():
        # Its own generator (a fixed seed, fresh each time): the training RNG is never
        # drawn, so --resume stays bit-for-bit and every epoch uses the same batches.
        return D.Batches(train, dataset, 500, shuffle=True, augment=cfg["augment"], seed=args.seed + 1)

    act = N.make_act_factory(cfg["act"], cfg["degree"], cfg["bound"], cfg["trainable"],
                             cfg["clamp"])
    model = cfg["net"](act, cfg["width"]).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    if args.bf16:
        warn_slow_bf16(device)
        model = model.to(memory_format=torch.channels_last)
        cfg["precision"] = "bf16 autocast, channels-last"
    teachers = []
    if args.teacher:
        if not 0.0 < args.kd_weight <= 1.0 or args.kd_temperature <= 0:
            raise SystemExit("train.py: --kd-weight must be in (0, 1] and --kd-temperature > 0")
        t_accs, t_logits = [], []
        for path in args.teacher:
            teacher, tcfg, teacher_ema = load_teacher(path, dataset, device)
            if args.bf16:
                teacher = teacher.to(memory_format=torch.channels_last)
            if teacher_ema:
                tr = lambda: D.Batches(train, dataset, 500, shuffle=True,  # noqa: E731
                                       augment=tcfg["augment"], seed=args.seed + 1)
                teacher = better_bn(teacher, tr(), plain_train_loader)
            t_logits.append([])
            tev = evaluate(teacher, test_loader, device, logits=t_logits[-1])
            print(f"distilling from {path} ({net_summary(tcfg)}): test accuracy "
                  f"{tev['accuracy'] * 100:.2f}%", flush=True)
            teachers.append(teacher)
            t_accs.append(tev["accuracy"])
        if len(teachers) > 1:
            # the ensemble's accuracy from the logits just computed, not a second pass
            q = soft_targets([torch.cat(x) for x in t_logits], args.kd_temperature)
            labels = torch.cat([yb for _, yb in test_loader])
            acc = float((q.argmax(1) == labels).float().mean())
            print(f"the {len(teachers)} teachers' soft targets (mean of softmax at T = "
                  f"{args.kd_temperature:g}): test accuracy {acc * 100:.2f}%", flush=True)
            cfg.update(teacher=list(args.teacher), teacher_test_accuracies=t_accs,
                       teacher_test_accuracy=acc)
        else:
            cfg.update(teacher=args.teacher[0], teacher_test_accuracy=t_accs[0])
        cfg.update(kd_weight=args.kd_weight, kd_temperature=args.kd_temperature)

    # no weight decay on BN, biases and PolyAct parameters
    decay, no_decay = [], []
    for n_, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg["wd"]},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg["optimizer"] == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=0.9, nesterov=True)
    elif cfg["optimizer"] == "adam":
        opt = torch.optim.Adam(groups, lr=cfg["lr"])
    else:
        opt = torch.optim.AdamW(groups, lr=cfg["lr"])
    steps_per_epoch = len(train_loader)
    total = cfg["epochs"] * steps_per_epoch
    warm = min(int(args.warmup * steps_per_epoch), max(total - 1, 0))

    budget_s = args.time_budget * 60 if args.time_budget else None

    def lr_at(step):
        if budget_s is not None:
            if step < warm:
                return cfg["lr"] * (step + 1) / warm
            t = min(1.0, t_train[0] / budget_s)
            return cfg["lr"] * 0.5 * (1 + math.cos(math.pi * t))
        if step < warm:
            return cfg["lr"] * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return cfg["lr"] * 0.5 * (1 + math.cos(math.pi * t))

    if args.widen and not args.init:
        raise SystemExit("train.py: --widen needs --init (the narrower checkpoint to widen)")
    if args.init:
        ck0 = torch.load(args.init, map_location=device)
        state = ck0["model"] if "model" in ck0 else ck0
        if args.widen:
            try:
                state = W.widen_state(state, model.state_dict(), args.widen_noise,
                                      torch.Generator().manual_seed(args.seed + 29))
            except ValueError as e:
                raise SystemExit(f"train.py: --init {args.init} --widen: {e}")
        model.load_state_dict(state)
        print(f"initialised from {args.init}" + (" (widened)" if args.widen else ""))
    ema = EMA(model, cfg["ema"]) if cfg["ema"] else None
    ta = None
    if cfg["trivialaugment"]:
        import torchvision.transforms as T
        ta = T.TrivialAugmentWide()
    gen = torch.Generator().manual_seed(args.seed + 17)

    start_epoch, step, history = 0, 0, []
    t_train = [0.0]  # training seconds so far (restored on resume)
    resume_pos, resume_order, resume_sums = 0, None, None
    if args.resume and not (args.checkpoint and os.path.exists(args.checkpoint)):
        raise SystemExit(f"train.py: --resume needs an existing --checkpoint "
                         f"(got {args.checkpoint!r}); drop --resume to start afresh")
    if args.checkpoint and os.path.exists(args.checkpoint):
        # Checkpoints from before mid-epoch checkpointing (keys model, opt, epoch, step,
        # history, gen, args, t_train, ema; always at an epoch end, no RNG states) load too:
        # they resume at the next epoch with the RNGs seeded as on a fresh start.
        ck = _load_checkpoint(args.checkpoint, device)
        if bool(ck.get("args", {}).get("bf16", False)) != bool(args.bf16):
            raise SystemExit(f"train.py: {args.checkpoint!r} was trained "
                             f"{'with' if ck['args'].get('bf16') else 'without'} --bf16; resume "
                             "it the same way (a run keeps its precision to stay bit for bit)")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        start_epoch, step, history = ck["epoch"], ck["step"], ck["history"]
        if ema is not None and "ema" in ck:
            ema.model.load_state_dict(ck["ema"])
        train_loader.gen.set_state(ck["gen"].cpu())
        t_train[0] = ck.get("t_train", 0.0)
        if ck.get("pos", 0):
            resume_pos, resume_order = ck["pos"], ck["order"].cpu()
            resume_sums = ck["epoch_sums"]
        if "rng" in ck:
            _set_rng_state(ck["rng"], gen)
        if ck.get("compact"):
            print(f"{args.checkpoint} is a compact checkpoint: its half-width weights and "
                  "momentum continue the run closely, not bit for bit", flush=True)
        print(f"resumed from {args.checkpoint} at epoch {start_epoch + 1}, batch {resume_pos} "
              f"(step {step})", flush=True)

    def save_checkpoint(epoch_done: int, pos: int = 0, order=None, sums=None):
        """epoch_done: completed epochs; pos > 0: batches done of the epoch in progress."""
        ck = dict(model=model.state_dict(), opt=opt.state_dict(), epoch=epoch_done, step=step,
                  history=history, gen=train_loader.gen.get_state(), args=vars(args),
                  t_train=t_train[0], pos=pos, rng=_rng_state(gen))
        if pos:
            ck["order"], ck["epoch_sums"] = order, sums
        if ema is not None:
            ck["ema"] = ema.model.state_dict()
        _save_atomically(ck, args.checkpoint)
        if args.compact_checkpoint:
            _save_atomically(compact_checkpoint(ck), args.compact_checkpoint, compress=True)

    ck_every = args.checkpoint_minutes * 60 if args.checkpoint_minutes > 0 else None
    last_ck = time.time()
    enable_penalty(model, cfg["penalty"] > 0, args.penalty_kind, args.penalty_margin)
    cfg["penalty_kind"], cfg["penalty_margin"] = args.penalty_kind, args.penalty_margin
    stopped_early = False
    for epoch in range(start_epoch, cfg["epochs"]):
        model.train()
        if args.bn_freeze_epochs and epoch >= cfg["epochs"] - args.bn_freeze_epochs:
            for mod in model.modules():
                if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                    mod.eval()
        te = time.time()
        if resume_order is not None:
            order, pos = resume_order, resume_pos
            sums = dict(resume_sums)
            resume_order = None
        else:
            order, pos = train_loader.epoch_order(), 0
            sums = dict(loss=0.0, pen=0.0, nb=0, correct=0, n=0)
        bar = tqdm(total=steps_per_epoch, initial=pos,
                   desc=f"{name} epoch {epoch + 1}/{cfg['epochs']}",
                   disable=args.no_progress, leave=True, file=sys.stderr, dynamic_ncols=True)
        for xb, yb in train_loader.iterate(order, pos):
            if budget_s is not None and t_train[0] >= budget_s:
                stopped_early = True
                break
            ts = time.time()
            if ta is not None:
                # TrivialAugment works on uint8 images: undo normalisation per batch
                mean, std = train_loader.mean, train_loader.std
                u8 = ((xb * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)
                u8 = torch.stack([ta(img) for img in u8])
                xb = (u8.float() / 255 - mean) / std
            if cfg["erasing"]:
                xb = _random_erasing(xb, cfg["erasing"], gen)
            xb, yb = xb.to(device), yb.to(device)
            for g_ in opt.param_groups:
                g_["lr"] = lr_at(step)
            xin, perm, lam = xb, None, 1.0
            if cfg["mixup"]:
                lam = float(np.random.beta(cfg["mixup"], cfg["mixup"]))
                perm = torch.randperm(xb.shape[0], generator=gen).to(device)
                xin = lam * xb + (1 - lam) * xb[perm]
            if args.bf16:
                xin = xin.contiguous(memory_format=torch.channels_last)
            # (the losses are taken in float32, outside autocast)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                out = model(xin)
                if teachers:
                    with torch.no_grad():
                        t_out = [t_(xin).float() for t_ in teachers]
            out = out.float()
            loss = F.cross_entropy(out, yb, label_smoothing=args.label_smoothing)
            if perm is not None:
                loss = lam * loss + \
                    (1 - lam) * F.cross_entropy(out, yb[perm], label_smoothing=args.label_smoothing)
            if teachers:
                loss = (1 - args.kd_weight) * loss + \
                    args.kd_weight * kd_loss(out, t_out, args.kd_temperature)
            pen = range_penalty(model).to(device) if cfg["penalty"] > 0 else torch.zeros((), device=device)
            total_loss = loss + cfg["penalty"] * pen
            opt.zero_grad(set_to_none=True)
            total_loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if ema is not None:
                ema.update(model)
            step += 1
            pos += 1
            t_train[0] += time.time() - ts
            sums["nb"] += 1
            sums["loss"] += float(loss)
            sums["pen"] += float(pen)
            # train accuracy against the unmixed labels (approximate under MixUp)
            sums["correct"] += int((out.detach().argmax(1) == yb).sum())
            sums["n"] += int(yb.numel())
            bar.update(1)
            bar.set_postfix(loss=f"{sums['loss'] / sums['nb']:.4f}",
                            pen=f"{sums['pen'] / sums['nb']:.2e}",
                            train=f"{sums['correct'] / max(sums['n'], 1):.2%}", refresh=False)
            # (a stop on an epoch's last batch waits for the epoch-end checkpoint)
            stop_now = (args.stop_after_steps is not None and step >= args.stop_after_steps
                        and pos < steps_per_epoch)
            if args.checkpoint and (stop_now or (ck_every is not None
                                                 and time.time() - last_ck >= ck_every)):
                save_checkpoint(epoch, pos, order, sums)
                last_ck = time.time()
            if stop_now:
                bar.close()
                print(f"stopped after step {step} (epoch {epoch + 1}, batch {pos})"
                      + (f"; checkpoint {args.checkpoint}" if args.checkpoint else ""), flush=True)
                return dict(stopped_at_step=step)
        nb = sums["nb"]
        eval_model = model
        if ema is not None:
            # The averaged weights do not match the averaged BN statistics (a polynomial
            # network is far more sensitive to that than a ReLU one: 51% vs 77% at epoch 8
            # of cifar10-resnet20), so the model evaluated, as the one exported at the
            # end, is a copy with statistics re-estimated on fixed training batches where
            # that classifies better (better_bn, recal_loader).
            eval_model = better_bn(ema.model, recal_loader(), plain_train_loader)
        enable_penalty(model, False)
        with track_range(eval_model) as acts:
            ev = evaluate(eval_model, test_loader, device, test.exact)
        max_range = max((float(a_.max_abs) for a_ in acts), default=None)
        enable_penalty(model, cfg["penalty"] > 0)
        rec = dict(epoch=epoch + 1, steps=step, lr=lr_at(max(step - 1, 0)),
                   loss=sums["loss"] / max(nb, 1), penalty=sums["pen"] / max(nb, 1),
                   train_accuracy=sums["correct"] / max(sums["n"], 1),
                   test_accuracy=ev["accuracy"], max_input_range_test=max_range,
                   seconds=time.time() - te)
        if "exact_accuracy" in ev:
            rec["test_exact_accuracy"] = ev["exact_accuracy"]
        history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.4f}", train=f"{rec['train_accuracy']:.2%}",
                        test=f"{ev['accuracy']:.2%}",
                        range=f"{max_range:.2f}" if max_range is not None else "-")
        bar.close()
        print(json.dumps(rec), flush=True)
        if args.checkpoint:
            save_checkpoint(epoch + 1)
            last_ck = time.time()
        if args.stop_after_steps is not None and step >= args.stop_after_steps:
            print(f"stopped after step {step} (end of epoch {epoch + 1})", flush=True)
            return dict(stopped_at_step=step)
        if budget_s is not None and t_train[0] >= budget_s:
            print(f"time budget used up in epoch {epoch + 1} after {step} steps", flush=True)
            break
        if args.time_limit and (time.time() - t0) / 60 > args.time_limit and epoch + 1 < cfg["epochs"]:
            print(f"time limit reached after epoch {epoch + 1}; stopping", flush=True)
            stopped_early = True
            break
    # Seconds in training steps over the whole schedule, resumes included (t_train is
    # restored from the checkpoint); the wall-clock of this invocation alone would say
    # almost nothing of a schedule that was resumed at its end.
    train_seconds = t_train[0]
    final = model if ema is None else better_bn(ema.model, recal_loader(), plain_train_loader)
    return finish(args, cfg, name, final, train, test,
                  plain_train_loader, test_loader, device, history, train_seconds, n_params,
                  stopped_early, argv)


def layer_cards(m, acts, ranges, calib=None) -> list:
    """One card entry per exported veil::Poly node: its fit, measured range and
    coefficients (as exported and as trained)."""
    layers = []
    for i, (nd, a, r) in enumerate(zip(E.poly_nodes(m), acts, ranges)):
        layers.append(dict(index=i, onnx_node=nd["node"], degree=nd["degree"], base=nd["base"],
                           fit_range=nd["fit_range"], input_range=nd["input_range"],
                           input_range_measured=r,
                           calibration_scale=calib[i]["scale"] if calib else 1.0,
                           inside_fit_range=bool(nd["input_range"] <= nd["fit_range"] * (1 + 1e-6)),
                           coefficients_folded=nd["coefficients"],
                           coefficients=[float(c) for c in a.coefficients.detach()],
                           s=float(a.s), b=float(a.b)))
    return layers


def _strict_json(v):
    """NaN/inf -> None so that the card is valid JSON for strict parsers."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _strict_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_strict_json(x) for x in v]
    return v


def _command(argv) -> str:
    return "nice -n 10 /usr/bin/python3 python/train.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))


def finish_teacher(args, cfg, name, ev, ev_train, history, train_seconds, n_params, argv):
    """The card of a network with true ReLUs (--act exact-relu): accuracy and training
    record only. It serves as a --teacher through its --checkpoint; nothing is exported,
    since veil cannot evaluate a ReLU under encryption."""
    os.makedirs(args.out, exist_ok=True)
    card = dict(
        name=name, dataset=cfg["dataset"], teacher_only=True,
        note="true ReLU activations: a distillation teacher (train.py --teacher), not a veil model",
        test_accuracy=ev["accuracy"], test_n=ev["n"], exact_subset_accuracy=ev.get("exact_accuracy"),
        exact_subset_n=ev.get("exact_n"), train_accuracy=ev_train["accuracy"], parameters=n_params,
        hyperparameters={k: v for k, v in cfg.items() if k != "net"},
        epochs_run=len(history), steps_run=history[-1]["steps"] if history else 0,
        seed=args.seed, threads=args.threads, train_seconds=round(train_seconds, 1),
        epochs_wall_seconds=round(sum(h.get("seconds", 0.0) for h in history), 1),
        torch_version=torch.__version__, checkpoint=args.checkpoint,
        training_command=_command(argv), history=history)
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump(_strict_json(card), f, indent=2, allow_nan=False)
    print(f"{name}: test accuracy {ev['accuracy'] * 100:.2f}% (true ReLU: a teacher for "
          f"--teacher {args.checkpoint or '(no --checkpoint given)'}; no ONNX exported)", flush=True)
    return card


def finish(args, cfg, name, model, train, test, train_loader, test_loader, device, history,
           train_seconds, n_params, stopped_early, argv):
    dataset = cfg["dataset"]
    model = model.to(memory_format=torch.contiguous_format)
    enable_penalty(model, False)
    ev = evaluate(model, test_loader, device, test.exact)
    ev_train = evaluate(model, train_loader, device)
    if cfg["act"] == N.EXACT_RELU:
        return finish_teacher(args, cfg, name, ev, ev_train, history, train_seconds, n_params, argv)
    ranges = measure_ranges(model, [train_loader, test_loader], device)
    acts = polyacts(model)
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, f"{name}.onnx")
    model_cpu = model.cpu().eval()
    meta = {"veil.model": name}
    m = E.export(model_cpu, onnx_path, dataset, meta)
    calib = None
    if args.calibrate and cfg["trainable"]:
        calib = C.calibrate(m)
        onnx.checker.check_model(m)
        E.check_format(m)
        onnx.save(m, onnx_path)
    x_verify = next(iter(D.Batches(test.subset(args.verify_samples), dataset, args.verify_samples)))[0]
    diff = E.verify(model_cpu, m, x_verify)
    layers = layer_cards(m, acts, ranges, calib)
    cmd = _command(argv)
    ops = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    card = dict(
        name=name, dataset=dataset,
        dataset_note=("CIFAR-10 (reconstructed copy): exact_subset_accuracy is on the test "
                      "records whose exact_mask byte is 1") if dataset == "cifar10" else None,
        test_accuracy=ev["accuracy"], test_n=ev["n"],
        exact_subset_accuracy=ev.get("exact_accuracy"), exact_subset_n=ev.get("exact_n"),
        train_accuracy=ev_train["accuracy"],
        activation=dict(kind=cfg["act"], degree=cfg["degree"], fit_range=cfg["bound"],
                        trainable_coefficients=bool(cfg["trainable"]), clamp=cfg["clamp"]),
        layers=layers, max_input_range=max(l_["input_range"] for l_ in layers) if layers else None,
        range_calibrated=bool(calib),
        # inputs whose forward pass diverged (polyact.measure_ranges), left out of the ranges
        range_excluded_inputs=dict(train=ranges.excluded[0], test=ranges.excluded[1]),
        poly_layers=len(layers),
        linear_layers=ops.get("Conv", 0) + ops.get("Gemm", 0) + ops.get("MatMul", 0),
        onnx_ops=ops, parameters=n_params,
        hyperparameters={k: v for k, v in cfg.items() if k != "net"},
        epochs_run=len(history), steps_run=history[-1]["steps"] if history else 0,
        time_budget_minutes=args.time_budget, stopped_early=stopped_early, smoke=bool(args.smoke),
        seed=args.seed, threads=args.threads, device=str(device),
        train_seconds=round(train_seconds, 1),
        epochs_wall_seconds=round(sum(h.get("seconds", 0.0) for h in history), 1),
        torch_version=torch.__version__,
        init_checkpoint=args.init, training_command=cmd, onnx_file=os.path.basename(onnx_path),
        onnx_vs_torch_max_abs_diff=diff, history=history)
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump(_strict_json(card), f, indent=2, allow_nan=False)
    print(f"{name}: test accuracy {ev['accuracy'] * 100:.2f}%"
          + (f" (exact subset {ev['exact_accuracy'] * 100:.2f}% of {ev['exact_n']})"
             if "exact_accuracy" in ev else "")
          + f"; ranges {[round(l_['input_range'], 3) for l_ in layers]}"
          + (f" (measured {[round(r, 3) for r in ranges]} before calibration)" if calib else "")
          + (f"; {ranges.excluded[0]} training and {ranges.excluded[1]} test images diverged "
             "(non-finite output or an activation input beyond "
             f"{DIVERGED_FACTOR:g} x its fit range) and are left out of the ranges"
             if any(ranges.excluded) else "")
          + f"; onnx diff {diff:.2e}; "
          f"wrote {onnx_path}", flush=True)
    return card


if __name__ == "__main__":
    main()
