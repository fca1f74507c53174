"""The prepared GPU check (issue 25, part 6): **the library's own step** (`build_learner`: FixMatch, its policy, EMA,
schedule, FiniteLoss, StepHistory, the data stream with its one copy a step) at the seed's scale, WRN-28-2, B=64,
mu=7, 32x32x3 (Fashion-MNIST's idx files zero-padded to 32x32x3 when present, random images otherwise), and a
per-image PIL pipeline in 4 DataLoader workers feeding the same model, as kekmodel's and USB's users train.

Measures, per precision (fp32, bf16) and memory format (channels-last on, off): the median step time; the
augmentation's share of it (the data stream's `_next` timed alone); synchronisations counted by
`torch.cuda.set_sync_debug_mode('warn')` over steps after the first; peak GPU memory. Then the PIL pipeline's step.

On the GPU machine (Python 3.12, torch, numpy, pandas, matplotlib, scikit-learn, pyarrow, pillow; no fastai, fastcore,
fastprogress, omegaconf, mlflow, torchvision): `python bench/gpu_check.py --prepare` here downloads the missing
wheels for that machine into `bench/gpu_deps` (under 64 MiB, carried with the call), and the check puts them on the
path and stands a stub in for MLflow (runs use `exp.logging=false`). Smoke test on a CPU:
`python bench/gpu_check.py --device cpu --small --steps 3 --no-pil`. Under 4 minutes on one H100 with the defaults."""
import argparse, importlib.util, os, platform, statistics, subprocess, sys, time, types, warnings, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPS = ROOT/'bench'/'gpu_deps'
PURE = ['fastai==2.8.7', 'fastcore==1.14.5', 'fastprogress', 'fasttransform', 'plum-dispatch', 'beartype', 'fastdownload',
        'omegaconf>=2.3,<2.4', 'antlr4-python3-runtime==4.9.3', 'typing_extensions', 'packaging']

def prepare(py='312', torchvision='0.26.0'):
    "Download the pure-Python wheels certpl imports, and PyYAML and torchvision for CPython `py`, into `bench/gpu_deps`"
    DEPS.mkdir(exist_ok=True)
    pip = [sys.executable, '-m', 'pip', 'download', '--no-deps', '-d', str(DEPS/'wheels')]
    subprocess.run(pip + PURE, check=True)
    subprocess.run(pip + ['--only-binary=:all:', '--python-version', py, '--platform', 'manylinux_2_28_x86_64',
                          '--platform', 'manylinux2014_x86_64', 'PyYAML', f'torchvision=={torchvision}'], check=True)
    for w in (DEPS/'wheels').glob('*.whl'): zipfile.ZipFile(w).extractall(DEPS/'site')
    print(f"{DEPS/'site'}: {sum(f.stat().st_size for f in (DEPS/'site').rglob('*') if f.is_file()) / 2**20:.1f} MiB")

def use_carried():
    "Put the carried packages on the path, and a stub for MLflow when it is not installed (runs do not log)"
    if (DEPS/'site').is_dir(): sys.path.insert(1, str(DEPS/'site'))
    if importlib.util.find_spec('mlflow') is None:
        class _Client:
            def __init__(self, *a, **k): pass
        m, t, e = (types.ModuleType(n) for n in ('mlflow', 'mlflow.tracking', 'mlflow.exceptions'))
        t.MlflowClient, e.MlflowException, m.tracking, m.exceptions = _Client, type('MlflowException', (Exception,), {}), t, e
        sys.modules.update({'mlflow': m, 'mlflow.tracking': t, 'mlflow.exceptions': e})
    sys.path.insert(0, str(ROOT))

def source(n=20_000):
    "Fashion-MNIST padded to 32x32x3 (the idx files, when present), else random 32x32x3 images"
    import torch, torch.nn.functional as F
    from certpl.core import ImageSet, SourceData
    try:
        from certpl.data import load_fashion_mnist_source
        s = load_fashion_mnist_source('data', download=False)
        conv = lambda x, k: ImageSet(F.pad(x.images[:k], (2, 2, 2, 2)).repeat(1, 3, 1, 1).contiguous(), x.labels[:k])
        return SourceData('fashion_mnist', conv(s.train, n), conv(s.test, 2000), s.classes, (0.286,) * 3, (0.353,) * 3, flip=True)
    except Exception:
        g = torch.Generator().manual_seed(0)
        mk = lambda k: ImageSet(torch.randint(0, 256, (k, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(k) % 10)
        return SourceData('random', mk(n), mk(2000), [str(i) for i in range(10)], (0.5,) * 3, (0.25,) * 3)

def sync(dev):
    import torch
    if dev.type == 'cuda': torch.cuda.synchronize()

def library_step(src, dev, precision, cl, steps, warm=3, depth=28, width=2, bs=64, mu=7):
    "Median step time of `build_learner`'s step, the data stream's share, syncs counted, peak memory"
    import torch
    from fastai.callback.core import Callback, CancelValidException
    from certpl.config import default_config, resolve_config
    from certpl.learner import build_learner
    class Times(Callback):
        order = 10_000
        def before_fit(self): self.t, self.last, self.n = [], None, 0
        def after_batch(self):
            sync(dev); t = time.perf_counter(); self.n += 1
            if self.last is not None and self.n > warm: self.t.append(t - self.last)
            if self.n == warm and dev.type == 'cuda': torch.cuda.set_sync_debug_mode('warn')  # from here on, count
            self.last = time.perf_counter()
        def before_validate(self): raise CancelValidException()
    cfg = resolve_config(default_config(**{'data.steps_per_epoch': steps + warm + 1, 'exp.max_epochs': 1, 'exp.logging': False,
        'exp.checkpoint': False, 'data.n_labelled': 250, 'model.wrn.depth': depth, 'model.wrn.widen_factor': width,
        'data.batch_size.train': bs, 'model.mu': mu, 'exp.precision': precision, 'exp.channels_last': cl, 'exp.device': str(dev)}), src.name)
    torch.manual_seed(0)
    learn = build_learner(cfg, source=src, cbs=[Times()])
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.03)
        if dev.type == 'cuda': torch.cuda.set_sync_debug_mode(0)
    syncs = [x for x in w if 'synchroniz' in str(x.message).lower()]
    dl, ts = learn.dls.train, []
    for _ in range(steps):
        sync(dev); t = time.perf_counter(); dl._next(); sync(dev); ts.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == 'cuda' else float('nan')
    where = sorted({f'{x.filename.split("/")[-1]}:{x.lineno}' for x in syncs})[:8]
    return statistics.median(learn.times.t), statistics.median(ts), len(syncs) / max(len(learn.times.t), 1), where, peak

def pil_step(src, dev, steps, workers=4):
    "The peers' pipeline: per-image PIL weak and strong views (certpl's PIL reference ops) in DataLoader workers, same model"
    import torch, torch.nn.functional as F, numpy as np, PIL.Image
    from certpl.augment import RA_OPS, pil_op, pil_cutout, draw_randaugment, cutout_box
    from certpl.models import WideResNet
    class DS(torch.utils.data.Dataset):
        def __init__(self, x): self.x = x
        def __len__(self): return len(self.x)
        def view(self, img, strong, g):
            if torch.rand(1, generator=g) < 0.5: img = img.transpose(PIL.Image.FLIP_LEFT_RIGHT)
            a = np.pad(np.array(img), ((4, 4), (4, 4), (0, 0)), mode='reflect'); dy, dx = torch.randint(0, 9, (2,), generator=g).tolist()
            img = PIL.Image.fromarray(a[dy:dy + 32, dx:dx + 32])
            if strong:
                p = draw_randaugment(1, generator=g)
                for k in range(2):
                    if p.apply[0, k]: img = pil_op(img, RA_OPS[p.ops[0, k]], int(p.v[0, k]), float(p.sign[0, k]))
                img = pil_cutout(img, cutout_box(torch.rand(1, 2, generator=g), 32, 32, 16)[0])
            return (torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i); img = PIL.Image.fromarray(self.x[i].permute(1, 2, 0).numpy())
            return self.view(img, False, g), self.view(img, True, g)
    dl = torch.utils.data.DataLoader(DS(src.train.images), batch_size=448, shuffle=True, num_workers=workers, pin_memory=dev.type == 'cuda', drop_last=True, persistent_workers=True)
    model = WideResNet(10, 28, 2).to(dev); opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, nesterov=True)
    xl, yl = (src.train.images[:64].float() / 255).to(dev), src.train.labels[:64].to(dev)
    it, ts = iter(dl), []
    for i in range(steps + 2):
        sync(dev); t = time.perf_counter()
        uw, us = (v.to(dev, non_blocking=True) for v in next(it))
        lo = model(torch.cat([xl, uw, us])); ll, lw, ls = lo[:64], lo[64:512], lo[512:]
        conf, pl = lw.detach().softmax(-1).max(-1)
        loss = F.cross_entropy(ll, yl) + (F.cross_entropy(ls, pl, reduction='none') * (conf >= 0.95)).mean()
        opt.zero_grad(); loss.backward(); opt.step(); sync(dev)
        if i >= 2: ts.append(time.perf_counter() - t)
    return statistics.median(ts)

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--prepare', action='store_true'); p.add_argument('--device', default=None)
    p.add_argument('--steps', type=int, default=20); p.add_argument('--no-pil', action='store_true')
    p.add_argument('--small', action='store_true', help='WRN-10-1, B=8, mu=2: the CPU smoke test')
    a = p.parse_args()
    if a.prepare: prepare(); sys.exit()
    use_carried()
    import torch, fastai, fastcore
    dev = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    name = torch.cuda.get_device_name() if dev.type == 'cuda' else platform.processor() or platform.machine()
    print(f"{name}; Python {platform.python_version()}, torch {torch.__version__}, fastai {fastai.__version__}, fastcore {fastcore.__version__}")
    src = source()
    size = dict(depth=10, width=1, bs=8, mu=2) if a.small else dict(depth=28, width=2, bs=64, mu=7)
    print(f"data: {src.name}, {len(src.train)} images 32x32x3; WRN-{size['depth']}-{size['width']}, B={size['bs']}, mu={size['mu']}, {a.steps} timed steps each")
    for precision in ('32', 'bf16'):
        for cl in (False, True):
            step, data, syncs, where, peak = library_step(src, dev, precision, cl, a.steps, **size)
            print(f"precision {precision:4} channels-last {cl!s:5}: step {step * 1e3:8.2f} ms, data stream (augmentation and its copy) "
                  f"{data * 1e3:7.2f} ms = {100 * data / step:4.1f}% of the step, {syncs:.2f} syncs/step {where}, peak {peak:.2f} GiB")
    if not a.no_pil: print(f"per-image PIL pipeline, 4 workers, same model (fp32): step {pil_step(src, dev, a.steps) * 1e3:.2f} ms")
