"""Step time of uncertainty-filtered FixMatch relative to vanilla FixMatch: same model, same batch, T=10 MC passes.

Variants: vanilla (max softmax); after-BN MC dropout on the fast path (body once more in eval mode, head T times); the
same reusing the training pass's weak features (`model.mc_reuse_features`: head T times only); MC dropout inside the
blocks (the whole network T times); the feature density (running class Gaussians). Medians of `--steps` steps after
warm-up, the variants interleaved round-robin so drift hits all alike.

Usage: python bench/strategy_step_time.py [--bs 16] [--mu 7] [--size 32] [--depth 28] [--steps 10] [--T 10]
(run with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 on Linux CPUs)."""
import argparse, statistics, time
import torch, torch.nn as nn
from fastai.learner import Learner
from fastai.data.core import DataLoaders
from fastai.callback.core import Callback, CancelValidException
from certpl.models import WideResNet
from certpl.callback.fixmatch import FixMatch, EMA, fixmatch_opt, decay_splitter
from certpl.callback.certainty import CertaintyPolicy
from common import RepeatDL, Timer

VARIANTS = {
    'vanilla (SoftMax)': (dict(), dict(strategy='SoftMax')),
    'after-BN MC dropout, fast path (PECertainty)': (dict(drop_type='AfterBNDropout', drop_rate=0.3), dict(strategy='PECertainty', threshold=0.5)),
    'after-BN MC dropout, fast path on the training features (PECertainty, mc_reuse_features)': (dict(drop_type='AfterBNDropout', drop_rate=0.3), dict(strategy='PECertainty', threshold=0.5, reuse_features=True)),
    'MC dropout in the blocks, full network (PECertainty)': (dict(drop_type='Dropout', drop_rate=0.3), dict(strategy='PECertainty', threshold=0.5)),
    'feature density (SoftMax or GMM)': (dict(), dict(strategy='SoftMax', features_gmm=True)),
}

def run(variant, b, n, T, depth):
    torch.manual_seed(0)
    mk, pk = VARIANTS[variant]
    pk = dict(pk); pk.setdefault('T', T if 'MC' in variant else 0)
    model = WideResNet(10, depth, 2, **mk)
    dl = RepeatDL(b, n)
    dls = DataLoaders(dl, dl); dls.c = 10
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=fixmatch_opt(), splitter=decay_splitter,
                    wd=[5e-4, 0.], cbs=[FixMatch(CertaintyPolicy(**pk)), EMA(0.999), Timer()])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.03)
    return learn.timer.times[1:]  # the first step warms up

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    for k, v in dict(bs=16, mu=7, size=32, depth=28, steps=10, T=10, rounds=2).items(): p.add_argument(f'--{k}', type=int, default=v)
    a = p.parse_args()
    g = torch.Generator().manual_seed(0)
    b = ((torch.randn(a.bs, 3, a.size, a.size, generator=g), torch.randn(a.bs*a.mu, 3, a.size, a.size, generator=g),
          torch.randn(a.bs*a.mu, 3, a.size, a.size, generator=g)), torch.randint(0, 10, (a.bs,), generator=g),
         torch.arange(a.bs*a.mu), torch.randint(0, 10, (a.bs*a.mu,), generator=g))
    times = {v: [] for v in VARIANTS}
    per_round = max(1, a.steps // a.rounds)
    for _ in range(a.rounds):
        for v in VARIANTS: times[v] += run(v, b, per_round + 1, a.T, a.depth)
    base = statistics.median(times['vanilla (SoftMax)'])
    print(f"WRN-{a.depth}-2, B={a.bs}, mu={a.mu}, {a.size}x{a.size}x3, T={a.T}, {torch.get_num_threads()} threads; "
          f"median of {len(times['vanilla (SoftMax)'])} steps per variant")
    for v, ts in times.items():
        m = statistics.median(ts)
        print(f"{v:<90} {m:7.3f} s/step  {m / base:5.2f}x vanilla")
