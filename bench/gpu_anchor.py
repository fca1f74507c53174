"""Issue 15's GPU anchor: vanilla FixMatch against the study's best uncertainty score on the study's Fashion-MNIST setting
at the seed's model, for as many steps as a fixed time allows on one GPU; test accuracy of the EMA model against steps,
and steps/s.

The setting: Fashion-MNIST (the idx files), 40 labels (4 per class, seeded), no validation split (the final EMA model is
tested), WRN-28-2, B=16, mu=7, SGD lr 0.03 Nesterov, weight decay 5e-4 on weights, FixMatch's cosine schedule over the
planned steps, budget presets (tau = min(1000, steps / 10): EMA decay 1 - 1/tau, batch norm momentum 1/tau). Methods:
`softmax` (max softmax >= 0.95) and `pe` (PECertainty over the training pass's features, after-BN dropout 0.3, T = 10,
threshold 0.771: the study's coverage-matched threshold).

Standalone for a bare, offline GPU machine: needs torch and numpy, certpl/{core,models,augment,uncertainty}.py (loaded
from this checkout without fastai), fastcore (pure Python; carry `.venv/lib/python3.11/site-packages/fastcore`) and the
four idx files (carry a folder with them, 30 MB):

    python bench/gpu_anchor.py --data data/fashion-mnist --seconds 100          # about 4 minutes for both methods
    python bench/gpu_anchor.py --data /usr/share/datasets/fashion-mnist --seconds 20 --depth 10 --widen 1   # CPU smoke test
"""
import argparse, gzip, json, math, os, pathlib, platform, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from carried import load_fastcore  # noqa: E402
load_fastcore()
sys.path.insert(0, str(ROOT))
from certpl.models import WideResNet                      # noqa: E402 (after the path is set)
from certpl.augment import FixMatchAugment                # noqa: E402
from certpl.uncertainty import SoftMax, PECertainty, mc_head_probs  # noqa: E402

def read_idx(path):
    "An idx file (gzipped) as a uint8 array (certpl.data.read_idx without its checks: certpl.data needs fastai)"
    raw = gzip.open(path).read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4*i:8 + 4*i], 'big') for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4*ndim).reshape(shape)

def load(data):
    d = pathlib.Path(data)
    x, y = read_idx(d/'train-images-idx3-ubyte.gz'), read_idx(d/'train-labels-idx1-ubyte.gz')
    xt, yt = read_idx(d/'t10k-images-idx3-ubyte.gz'), read_idx(d/'t10k-labels-idx1-ubyte.gz')
    return torch.from_numpy(x.copy())[:, None], torch.from_numpy(y.astype(np.int64)), torch.from_numpy(xt.copy())[:, None], torch.from_numpy(yt.astype(np.int64))

def make_model(a, pe, bn_momentum, dev):
    return WideResNet(10, a.depth, a.widen, n_channels=1, scale=2, bn_momentum=bn_momentum,
                      drop_type='AfterBNDropout' if pe else 'Dropout', drop_rate=0.3 if pe else 0.).to(dev)

def step_fn(model, opt, aug, data, pe, thr, gen, dev, B=16, mu=7):
    "One FixMatch step; returns the mask rate"
    x, y, lab, unl = data
    li = lab[torch.randint(len(lab), (B,), generator=gen)]; ui = unl[torch.randint(len(unl), (B * mu,), generator=gen)]
    pin = (lambda t: t.pin_memory()) if dev.type == 'cuda' else (lambda t: t)  # `non_blocking` only means it from pinned memory
    xl, xu = pin(x[li]).to(dev, non_blocking=True), pin(x[ui]).to(dev, non_blocking=True)
    inp = torch.cat([aug.weak(xl, gen), aug.weak(xu, gen), aug.strong(xu, gen)])
    logits, feats = model.forward_features(inp)
    lx, lw, ls = logits[:B], logits[B:B + B*mu], logits[B + B*mu:]
    with torch.no_grad():
        score, label = (PECertainty()(mc_head_probs(model, feats[B:B + B*mu].detach(), 10)) if pe
                        else SoftMax()(lw.detach().float().softmax(-1)))
        mask = (score >= thr).float()
    loss = F.cross_entropy(lx, y[li].to(dev)) + (F.cross_entropy(ls, label, reduction='none') * mask).mean()
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return mask

def optimiser(model, lr=0.03):
    norm = (nn.modules.batchnorm._NormBase,)
    nodecay = {id(p) for m in model.modules() for n, p in m.named_parameters(recurse=False) if isinstance(m, norm) or n.endswith('bias')}
    ps = list(model.parameters())
    return torch.optim.SGD([{'params': [p for p in ps if id(p) not in nodecay], 'weight_decay': 5e-4},
                            {'params': [p for p in ps if id(p) in nodecay], 'weight_decay': 0.}], lr=lr, momentum=0.9, nesterov=True)

@torch.no_grad()
def test_accuracy(model, aug, xt, yt, dev):
    model.eval(); ok = 0
    for i in range(0, len(xt), 1000): ok += (model(aug.normalize(xt[i:i+1000].to(dev).float())).argmax(-1).cpu() == yt[i:i+1000]).sum().item()
    return ok / len(xt)

def run(a, method, data, test, dev):
    pe, thr = method == 'pe', (0.771 if method == 'pe' else 0.95)
    aug = FixMatchAugment((0.2860,), (0.3530,), flip=True, pad_crop=True)
    gen = torch.Generator().manual_seed(a.seed)
    # calibrate: steps/s of this method on this device, then plan the run to fit `seconds`
    m = make_model(a, pe, 0.001, dev); o = optimiser(m)
    for _ in range(3): step_fn(m, o, aug, data, pe, thr, gen, dev)
    if dev.type == 'cuda': torch.cuda.synchronize()
    t = time.perf_counter(); n = 10
    for _ in range(n): step_fn(m, o, aug, data, pe, thr, gen, dev)
    if dev.type == 'cuda': torch.cuda.synchronize()
    sps = n / (time.perf_counter() - t)
    K = max(20, int(a.seconds * sps * 0.9))  # leave time for the evaluations
    tau = max(1., min(1000., K / 10))
    torch.manual_seed(a.seed); gen = torch.Generator().manual_seed(a.seed)
    model = make_model(a, pe, 1 / tau, dev); opt = optimiser(model)
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(1 - 1 / tau), use_buffers=False)  # buffers copied, as the library's EMA
    curve, masks, t0 = [], [], time.perf_counter()
    for k in range(K):
        for g in opt.param_groups: g['lr'] = 0.03 * math.cos(7 * math.pi * k / (16 * K))
        model.train(); masks.append(step_fn(model, opt, aug, data, pe, thr, gen, dev).mean()); ema.update_parameters(model)  # no host read a step
        if (k + 1) % max(1, K // a.evals) == 0 or k + 1 == K:
            curve.append((k + 1, test_accuracy(ema.module, aug, *test, dev), float(torch.stack(masks[-50:]).mean())))
            print(f"{method:8s} step {k + 1:6d}/{K}  EMA test accuracy {curve[-1][1]:.4f}  mask rate {curve[-1][2]:.3f}", flush=True)
    wall = time.perf_counter() - t0
    return {'method': method, 'steps': K, 'tau': tau, 'calibrated_steps_per_s': sps, 'steps_per_s': K / wall, 'curve': curve}

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', required=True); p.add_argument('--seconds', type=float, default=100.)
    p.add_argument('--depth', type=int, default=28); p.add_argument('--widen', type=int, default=2)
    p.add_argument('--seed', type=int, default=0); p.add_argument('--evals', type=int, default=8)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    a = p.parse_args()
    dev = torch.device(a.device)
    x, y, xt, yt = load(a.data)
    rng = np.random.default_rng(a.seed)
    lab = torch.from_numpy(np.sort(np.concatenate([rng.choice(np.flatnonzero(y.numpy() == c), 4, replace=False) for c in range(10)])))
    unl = torch.from_numpy(np.setdiff1d(np.arange(len(y)), lab.numpy()))
    torch.backends.cudnn.benchmark = True  # as the library by default (exp.deterministic=false)
    print(f"device {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else platform.processor() or 'cpu'}, torch {torch.__version__}, "
          f"WRN-{a.depth}-{a.widen}, {a.seconds:.0f} s per method", flush=True)
    res = [run(a, m, (x, y, lab, unl), (xt, yt), dev) for m in ('softmax', 'pe')]
    for r in res: print(f"{r['method']:8s} {r['steps']} steps, {r['steps_per_s']:.1f} steps/s, final EMA test accuracy {r['curve'][-1][1]:.4f}")
    if os.environ.get('OUT'): pathlib.Path(os.environ['OUT'], 'gpu_anchor.json').write_text(json.dumps(res, indent=1))
