"""FixMatch training throughput (images/s) of WRN-28-2, B=64, mu=7, 32x32x3: a fastai `Learner` with certpl's
callbacks against a minimal plain-PyTorch FixMatch step of the same model and batch, measured in one run,
interleaved, at precision 32 and at bf16 with channels-last.

Usage: `python bench/throughput.py [--steps 20] [--warmup 3] [--bs 64] [--mu 7] [--precisions 32,bf16]`.
Large CPU batches are noisy with glibc's allocator; run with
`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736` to keep activations mapped between steps."""
import argparse, os, time, statistics
import torch, torch.nn as nn, torch.nn.functional as F
from fastai.learner import Learner
from fastai.data.core import DataLoaders
from fastai.callback.schedule import ParamScheduler
from fastai.callback.core import Callback
from certpl.models import WideResNet
from certpl.callback.fixmatch import FixMatch, EMA, fixmatch_opt, decay_splitter, fixmatch_sched, precision_cbs, SoftmaxThreshold
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from common import RepeatDL, Timer

def make_batch(bs, mu):
    g = torch.Generator().manual_seed(0)
    xl, uw, us = (torch.randn(n, 3, 32, 32, generator=g) for n in (bs, bs*mu, bs*mu))
    return ((xl, uw, us), torch.randint(0, 10, (bs,), generator=g), torch.arange(bs*mu), torch.randint(0, 10, (bs*mu,), generator=g))

def fastai_times(b, steps, warmup, precision):
    torch.manual_seed(0)
    model = WideResNet(10, 28, 2)
    dl = RepeatDL(b, steps + warmup)
    learn = Learner(DataLoaders(dl, dl), model, loss_func=nn.CrossEntropyLoss(), opt_func=fixmatch_opt(), splitter=decay_splitter,
                    wd=[5e-4, 0.], cbs=[FixMatch(SoftmaxThreshold(0.95)), EMA(0.999), ParamScheduler({'lr': fixmatch_sched(0.03)}), Timer()]
                    + precision_cbs(precision, channels_last=precision == 'bf16'))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.03)
    return learn.timer.times[warmup:]

def plain_times(b, steps, warmup, precision):
    torch.manual_seed(0)
    model = WideResNet(10, 28, 2)
    cl = precision == 'bf16'
    if cl: model = model.to(memory_format=torch.channels_last)
    dec, nodec = decay_splitter(model)
    opt = torch.optim.SGD([{'params': dec, 'weight_decay': 5e-4}, {'params': nodec, 'weight_decay': 0.}], lr=0.03, momentum=0.9, nesterov=True)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)
    sched = fixmatch_sched(0.03)
    (xl, uw, us), yl, _, _ = b
    times, n = [], steps + warmup
    for i in range(n):
        t = time.perf_counter()
        for g in opt.param_groups: g['lr'] = sched(i / n)
        x = torch.cat([xl, uw, us])
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
            logits = model(x)
        logits = logits.float()
        ll, lw, ls = logits[:len(xl)], logits[len(xl):len(xl)+len(uw)], logits[len(xl)+len(uw):]
        conf, pl = lw.detach().softmax(-1).max(-1)
        loss = F.cross_entropy(ll, yl) + (F.cross_entropy(ls, pl, reduction='none') * (conf >= 0.95).float()).mean()
        opt.zero_grad(); loss.backward(); opt.step(); ema.update_parameters(model)
        times.append(time.perf_counter() - t)
    return times[warmup:]

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--steps', type=int, default=20); p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--bs', type=int, default=64); p.add_argument('--mu', type=int, default=7)
    p.add_argument('--precisions', default='32,bf16')
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MALLOC_MMAP_MAX_={os.environ.get('MALLOC_MMAP_MAX_')} "
          f"MALLOC_TRIM_THRESHOLD_={os.environ.get('MALLOC_TRIM_THRESHOLD_')}")
    b = make_batch(a.bs, a.mu); n_img = a.bs * (1 + 2 * a.mu)
    for prec in a.precisions.split(','):
        # interleave: plain, fastai, plain, fastai halves so drift hits both alike
        half = a.steps // 2
        tp = plain_times(b, half, a.warmup, prec); tf = fastai_times(b, half, a.warmup, prec)
        tp += plain_times(b, a.steps - half, a.warmup, prec); tf += fastai_times(b, a.steps - half, a.warmup, prec)
        mp, mf = statistics.median(tp), statistics.median(tf)
        label = prec + (' + channels-last' if prec == 'bf16' else '')
        print(f"precision {label}: plain PyTorch {n_img/mp:.1f} img/s ({mp:.3f} s/step), fastai+certpl {n_img/mf:.1f} img/s "
              f"({mf:.3f} s/step), overhead {100*(mf/mp-1):+.1f}% (median of {len(tp)} steps each)")
