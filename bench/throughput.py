"""End-to-end FixMatch step time of certpl against a plain-PyTorch compute step of the same model and batch, measured
in one run, interleaved: WRN-28-2, mu=7, 32x32x3, fp32, B=16 and B=64.

- certpl: `build_learner` as `certpl_train` builds it (callbacks, EMA, schedule, channels-last by default on the CPU)
  on its real data pipeline (`ssl_dataloaders`: uint8 batches, weak and strong views made batched on the device)
  over Fashion-MNIST zero-padded to 32x32x3 (random images when Debian's package is missing); a step is timed from
  one `after_batch` to the next, so fetching and augmenting the batch count;
- plain PyTorch: the FixMatch loss, SGD step and EMA update on one pre-made batch, the same memory format.

Usage: `python bench/throughput.py [--steps 10] [--warmup 2] [--bs 16,64] [--mu 7]`. Large CPU batches are noisy with
glibc's allocator; certpl's CLI tunes it (`tune_malloc`), and this script does the same for both."""
import argparse, os, platform, time, statistics
import torch, torch.nn.functional as F
from fastai.callback.core import Callback, CancelValidException
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from certpl.models import WideResNet
from certpl.callback.fixmatch import decay_splitter, fixmatch_sched
from certpl.config import default_config, resolve_config
from common import StepTimer
from certpl.learner import build_learner, tune_malloc

def source():
    import sys; sys.path.insert(0, os.path.dirname(__file__))
    from reproduce import fashion_32x3
    try: return fashion_32x3()
    except Exception:
        from certpl.core import ImageSet, SourceData
        g = torch.Generator().manual_seed(0)
        mk = lambda n: ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10)
        return SourceData('random', mk(5000), mk(500), [str(i) for i in range(10)], (0.5,) * 3, (0.25,) * 3)

def certpl_times(src, bs, mu, steps):
    cfg = resolve_config(default_config(**{'data.batch_size.train': bs, 'model.mu': mu, 'data.steps_per_epoch': steps + 1,
                                           'exp.max_epochs': 1, 'model.wrn.depth': 28, 'model.wrn.widen_factor': 2,
                                           'data.n_labelled': 40, 'exp.logging': False, 'exp.checkpoint': False}), src.name)
    torch.manual_seed(0)
    learn = build_learner(cfg, source=src, cbs=[StepTimer()])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.03)
    return learn.step_timer.times, learn.model.body[0].weight.is_contiguous(memory_format=torch.channels_last)

def plain_times(b, steps, channels_last):
    torch.manual_seed(0)
    model = WideResNet(10, 28, 2)
    if channels_last: model = model.to(memory_format=torch.channels_last)
    dec, nodec = decay_splitter(model)
    opt = torch.optim.SGD([{'params': dec, 'weight_decay': 5e-4}, {'params': nodec, 'weight_decay': 0.}], lr=0.03, momentum=0.9, nesterov=True)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=False)
    sched = fixmatch_sched(0.03)
    (xl, uw, us), yl = b
    times = []
    for i in range(steps):
        t = time.perf_counter()
        for g in opt.param_groups: g['lr'] = sched(i / steps)
        logits = model(torch.cat([xl, uw, us]))
        ll, lw, ls = logits[:len(xl)], logits[len(xl):len(xl)+len(uw)], logits[len(xl)+len(uw):]
        conf, pl = lw.detach().softmax(-1).max(-1)
        loss = F.cross_entropy(ll, yl) + (F.cross_entropy(ls, pl, reduction='none') * (conf >= 0.95).float()).mean()
        opt.zero_grad(); loss.backward(); opt.step(); ema.update_parameters(model)
        times.append(time.perf_counter() - t)
    return times

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--steps', type=int, default=10); p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--bs', default='16,64'); p.add_argument('--mu', type=int, default=7)
    a = p.parse_args()
    tune_malloc()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    src = source()
    for bs in map(int, a.bs.split(',')):
        g = torch.Generator().manual_seed(0)
        b = ((torch.randn(bs, 3, 32, 32, generator=g), torch.randn(bs * a.mu, 3, 32, 32, generator=g),
              torch.randn(bs * a.mu, 3, 32, 32, generator=g)), torch.randint(0, 10, (bs,), generator=g))
        half = a.steps // 2  # interleaved halves, so drift hits both alike
        tc, cl = certpl_times(src, bs, a.mu, half + a.warmup); tp = plain_times(b, half + a.warmup, cl)
        tc, tp = tc[a.warmup:], tp[a.warmup:]
        tc2, _ = certpl_times(src, bs, a.mu, a.steps - half + a.warmup); tp2 = plain_times(b, a.steps - half + a.warmup, cl)
        tc += tc2[a.warmup:]; tp += tp2[a.warmup:]
        mc, mp = statistics.median(tc), statistics.median(tp)
        print(f"B={bs}, mu={a.mu} ({bs * (1 + 2 * a.mu)} images/step), channels-last {cl}: plain PyTorch {mp:.3f} s/step, "
              f"certpl end to end {mc:.3f} s/step, certpl/plain {mc / mp:.3f} (median of {len(tc)} steps each)")
