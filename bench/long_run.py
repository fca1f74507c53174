"""Flat memory and flat checkpoints over a long run (issue 25, part 4): a tiny model for 20,000 steps with checkpoints
every 5,000 steps at epoch boundaries and the statistics callbacks on; prints resident memory (RSS and RssAnon) after
steps 2,000 and 20,000 and every checkpoint's size, and extrapolates both to the seed's 2^20 steps.

Setting: random 32x32x3 images (500 labelled, 5,000 unlabelled), WRN-10-1, B=8, mu=2, 500-step epochs,
`model.multi_strategy=true` (every strategy's counts and AUROC each epoch) and per-batch weak-view tables every epoch,
`exp.checkpoint=true` (BestEMA), EMA, FiniteLoss, StepHistory: what `certpl_train` builds, without MLflow.
Memory figures do not depend on the CPU's load; the wall time printed does.

Usage: `python bench/long_run.py [--steps 20000] [--every 5000] [--epoch 500]`"""
import argparse, os, platform, tempfile, time
from pathlib import Path
import torch
from fastai.callback.core import Callback
from certpl.config import default_config, resolve_config
from certpl.core import ImageSet, SourceData
from certpl.learner import build_learner, tune_malloc
from certpl.callback.checkpoint import Checkpoint

def mem():
    "(RSS, RssAnon) of this process in MB, from /proc"
    f = dict(l.split(':', 1) for l in Path('/proc/self/status').read_text().splitlines() if ':' in l)
    return tuple(int(f[k].split()[0]) / 1024 for k in ('VmRSS', 'RssAnon'))

class Watch(Callback):
    order = 200
    def __init__(self, at): self.at, self.seen = set(at), {}
    def after_batch(self):
        if self.training and self.train_iter in self.at: self.seen[self.train_iter] = mem()

class Sizes(Callback):
    "The checkpoint file's size each time `Checkpoint` writes it"
    order = Checkpoint.order + 1
    def before_fit(self): self.sizes, self.last = [], None
    def after_epoch(self):
        s = self.learn.checkpoint.saved
        if s is not None and s != self.last: self.last = s; self.sizes.append((s[3], os.path.getsize(s[0])))

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--steps', type=int, default=20_000); p.add_argument('--every', type=int, default=5_000)
    p.add_argument('--epoch', type=int, default=500)
    a = p.parse_args()
    tune_malloc(); torch.manual_seed(0)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    g = torch.Generator().manual_seed(0)
    mk = lambda n: ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10)
    src = SourceData('random', mk(6000), mk(500), [str(i) for i in range(10)], (0.5,) * 3, (0.25,) * 3)
    cfg = resolve_config(default_config(**{'data.batch_size.train': 8, 'model.mu': 2, 'data.steps_per_epoch': a.epoch,
                                           'exp.max_epochs': a.steps // a.epoch, 'model.wrn.depth': 10, 'model.wrn.widen_factor': 1,
                                           'data.n_labelled': 500, 'exp.logging': False, 'model.multi_strategy': True,
                                           'exp.log_ul_w_statistics': 'batch', 'exp.log_statistics_freq': 1}), src.name)
    with tempfile.TemporaryDirectory() as d:
        learn = build_learner(cfg, source=src, cbs=[Watch(sorted({*range(2_000, a.steps + 1, 2_000), a.steps})), Checkpoint(Path(d)/'c.pt', every=a.every), Sizes()])
        t = time.time()
        with learn.no_bar(), learn.no_logging(): learn.fit(cfg.exp.max_epochs, cfg.optimizer.lr)
        wall = time.time() - t
        sizes = learn.sizes.sizes
    (r1, a1), (r2, a2) = learn.watch.seen[2_000], learn.watch.seen[a.steps]
    per = lambda x, y: (y - x) / (a.steps - 2_000)
    print(f"{a.steps:,} steps in {wall / 60:.1f} min: RSS {r1:.1f} MB after step 2,000, {r2:.1f} MB after step {a.steps:,} "
          f"(RssAnon {a1:.1f} -> {a2:.1f} MB)")
    print(f"growth {per(r1, r2) * 1e3:.3f} KB/step RSS, {per(a1, a2) * 1e3:.3f} KB/step RssAnon; extrapolated to 2^20 steps: "
          f"{per(r1, r2) * (2**20 - a.steps):+.1f} MB RSS, {per(a1, a2) * (2**20 - a.steps):+.1f} MB RssAnon more than at step {a.steps:,}")
    half = min(k for k in learn.watch.seen if k >= a.steps // 2)  # the second half's slope: the trend once the allocator has warmed up
    (rh, ah), n = learn.watch.seen[half], a.steps - half
    print(f"second half (steps {half:,} to {a.steps:,}): {(r2 - rh) / n * 1e3:.3f} KB/step RSS, {(a2 - ah) / n * 1e3:.3f} KB/step RssAnon; "
          f"extrapolated to 2^20 steps: {(r2 - rh) / n * (2**20 - a.steps):+.1f} MB RSS, {(a2 - ah) / n * (2**20 - a.steps):+.1f} MB RssAnon")
    print('RSS / RssAnon every 2,000 steps (MB): ' + ', '.join(f'{k:,}: {r:.1f} / {an:.1f}' for k, (r, an) in sorted(learn.watch.seen.items())))
    for step, size in sizes: print(f"checkpoint at step {step:,}: {size / 1e6:.4f} MB")
    (s0, b0), (s1, b1) = sizes[0], sizes[-1]
    print(f"checkpoint growth {s0:,} -> {s1:,}: {(b1 - b0) / b0 * 100:+.3f}% ({(b1 - b0) / (s1 - s0):.2f} bytes/step; "
          f"extrapolated to 2^20 steps {b0 + (b1 - b0) / (s1 - s0) * (2**20 - s0):,.0f} bytes)")
