"""Host overhead of certpl's step (issue 25, part 3): certpl's end-to-end step (`build_learner` as `certpl_train` builds
it: fastai's loop, the FixMatch callback and its policy, EMA, schedule, FiniteLoss, StepHistory, the data stream with
its one copy a step) against a plain-PyTorch step of the same model, the same views and the same batch size (the
same batched augmentation called directly on uint8 images, FixMatch's loss, SGD, the EMA by `_foreach_lerp_`),
interleaved in rounds so that drift hits both alike. The difference is what certpl's host code costs a step, which
on a GPU (a WRN-28-2 step of a few ms) decides the throughput.

Settings: `digits` (the main job: 8x8 grey, its preset WRN and batch, mu=7) and `wrn10` (WRN-10-1 on 32x32x3
random images, B=64, mu=7). Prints per setting the median and interquartile range of both step times, their ratio,
the overhead in ms, and the `cProfile` functions whose own time grew most from the plain step to certpl's.

Usage: `python bench/host_overhead.py [--settings digits,wrn10] [--steps 25] [--rounds 2] [--profile 20]`"""
import argparse, cProfile, platform, pstats, statistics, time
import torch, torch.nn.functional as F
from fastai.callback.core import Callback, CancelValidException
from certpl.config import default_config, resolve_config
from certpl.core import ImageSet, SourceData
from certpl.data import load_source
from common import StepTimer
from certpl.learner import build_learner, config_model, tune_malloc, channels_last
from certpl.callback.fixmatch import decay_splitter, fixmatch_sched

def setting(name):
    "(source, configuration overrides)"
    if name == 'digits': return load_source('digits'), {}
    g = torch.Generator().manual_seed(0)
    mk = lambda n: ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10)
    return SourceData('random', mk(5000), mk(500), [str(i) for i in range(10)], (0.5,) * 3, (0.25,) * 3), \
        {'model.wrn.depth': 10, 'model.wrn.widen_factor': 1, 'data.batch_size.train': 64, 'model.mu': 7}

def make_certpl(src, over, steps):
    cfg = resolve_config(default_config(**{'data.steps_per_epoch': steps + 1, 'exp.max_epochs': 1, 'exp.logging': False,
                                           'exp.checkpoint': False, 'data.n_labelled': 50 if src.name == 'digits' else 250, **over}), src.name)
    torch.manual_seed(0)
    learn = build_learner(cfg, source=src, cbs=[StepTimer()])
    return cfg, learn

def certpl_round(learn):
    learn.dls.train.reset()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.03)
    return learn.step_timer.times

def make_plain(cfg, src, learn):
    "The same model (and memory format), views and batch size, in plain PyTorch"
    torch.manual_seed(0)
    model = config_model(cfg, src)
    if channels_last(cfg.exp.channels_last, learn.dls.device):  # what certpl's `ChannelsLast` callback does when the fit starts
        model = model.to(memory_format=torch.channels_last)
    dec, nodec = decay_splitter(model)
    opt = torch.optim.SGD([{'params': dec, 'weight_decay': 5e-4}, {'params': nodec, 'weight_decay': 0.}], lr=0.03, momentum=0.9, nesterov=True)
    ema = [p.detach().clone() for p in model.parameters()]
    bs, mu, aug = cfg.data.batch_size.train, cfg.model.mu, learn.dls.train.aug
    xl, yl = src.train.images[:bs], src.train.labels[:bs]
    xu = src.train.images[bs:bs + bs * mu]
    return model, opt, ema, (xl, yl, xu), aug

def plain_round(state, steps):
    model, opt, ema, (xl, yl, xu), aug = state
    sched, g, times = fixmatch_sched(0.03), torch.Generator().manual_seed(0), []
    for i in range(steps + 1):
        t = time.perf_counter()
        for pg in opt.param_groups: pg['lr'] = sched(i / steps)
        x = torch.cat([aug.weak(xl, g), aug.weak(xu, g), aug.strong(xu, g)])
        logits = model(x)
        ll, lw, ls = logits[:len(xl)], logits[len(xl):len(xl) + len(xu)], logits[len(xl) + len(xu):]
        conf, pl = lw.detach().softmax(-1).max(-1)
        loss = F.cross_entropy(ll, yl) + (F.cross_entropy(ls, pl, reduction='none') * (conf >= 0.95).float()).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        with torch.no_grad(): torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], 0.001)
        if i: times.append(time.perf_counter() - t)  # the first step warms up, as certpl's first is not timed
    return times

def spread(ts): q = statistics.quantiles(ts, n=4); return q[0], q[2]

def own_times(prof):
    st = pstats.Stats(prof)
    return {f"{k[0].split('site-packages/')[-1].split('/work/')[-1]}:{k[1]}({k[2]})": v[2] for k, v in st.stats.items()}

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--settings', default='digits,wrn10'); p.add_argument('--steps', type=int, default=25)
    p.add_argument('--rounds', type=int, default=2); p.add_argument('--profile', type=int, default=20)
    a = p.parse_args()
    tune_malloc()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in a.settings.split(','):
        src, over = setting(name)
        cfg, learn = make_certpl(src, over, a.steps)
        plain = make_plain(cfg, src, learn)
        tc, tp = [], []
        for r in range(a.rounds): tc += certpl_round(learn); tp += plain_round(plain, a.steps)
        mc, mp = statistics.median(tc), statistics.median(tp)
        (c1, c3), (p1, p3) = spread(tc), spread(tp)
        d = [c - q for c, q in zip(sorted(tc), sorted(tp))]
        print(f"\n{name}: B={cfg.data.batch_size.train}, mu={cfg.model.mu}, WRN-{cfg.model.wrn.depth}-{cfg.model.wrn.widen_factor}, "
              f"{src.train.images.shape[1:]}, {len(tc)} steps each in {a.rounds} interleaved rounds")
        print(f"  plain PyTorch {mp * 1e3:.1f} ms/step (IQR {p1 * 1e3:.1f}-{p3 * 1e3:.1f}), certpl {mc * 1e3:.1f} ms/step "
              f"(IQR {c1 * 1e3:.1f}-{c3 * 1e3:.1f}): certpl/plain {mc / mp:.3f}; host overhead {(mc - mp) * 1e3:.1f} ms/step "
              f"(quantile-matched differences: IQR {spread(d)[0] * 1e3:.1f}-{spread(d)[1] * 1e3:.1f} ms)")
        if a.profile:
            pc, pp = cProfile.Profile(), cProfile.Profile()
            pc.enable(); certpl_round(learn); pc.disable()
            pp.enable(); plain_round(plain, a.steps); pp.disable()
            oc, op = own_times(pc), own_times(pp)
            diff = sorted(((oc.get(k, 0) - op.get(k, 0), k) for k in set(oc) | set(op)), reverse=True)[:a.profile]
            print(f"  cProfile, own time per step, certpl minus plain (top {a.profile}):")
            for dt, k in diff: print(f"    {dt / a.steps * 1e3:7.3f} ms  {k}")
