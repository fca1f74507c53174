"""On a GPU: FixMatch's batched augmentation (the copy of each step's uint8 images and draws from host memory
included, as the library makes it) as a share of a WRN-28-2 step (B=64, mu=7, 32x32x3), and channels-last
against contiguous. Standalone: needs torch (and numpy), certpl/augment.py and fastcore (pure Python, for `patch`), so
it runs on a bare, offline GPU machine: `python bench/gpu_augment.py` from the repository root (under 4 minutes), with
`.venv/lib/python3.11/site-packages/fastcore` carried when that machine has no fastcore. Target: augmentation < 10% of a
step. The step here is a bare model step; the library's whole step (callbacks, policy, EMA) is `bench/gpu_check.py`'s."""
import importlib.util, pathlib, platform, statistics, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from carried import load_fastcore  # noqa: E402
load_fastcore()

spec = importlib.util.spec_from_file_location('augment', pathlib.Path(__file__).resolve().parents[1]/'certpl'/'augment.py')
A = importlib.util.module_from_spec(spec); spec.loader.exec_module(A)

class Block(nn.Module):
    def __init__(self, ni, nf, stride, abr=False):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(ni, momentum=0.001), nn.Conv2d(ni, nf, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(nf, momentum=0.001), nn.Conv2d(nf, nf, 3, 1, 1, bias=False)
        self.short = None if ni == nf else nn.Conv2d(ni, nf, 1, stride, bias=False)
        self.abr = abr
    def forward(self, x0):
        x = F.leaky_relu(self.bn1(x0), 0.1)
        if self.abr: x0 = x
        y = self.conv2(F.leaky_relu(self.bn2(self.conv1(x)), 0.1))
        return (x0 if self.short is None else self.short(x0)) + y

def wrn28_2(c=10):
    w, n, layers = [16, 32, 64, 128], 4, [nn.Conv2d(3, 16, 3, 1, 1, bias=False)]
    for g in range(3):
        for i in range(n): layers.append(Block(w[g] if i == 0 else w[g+1], w[g+1], (1 if g == 0 else 2) if i == 0 else 1, g == 0 and i == 0))
    layers += [nn.BatchNorm2d(128, momentum=0.001), nn.LeakyReLU(0.1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, c)]
    return nn.Sequential(*layers)

def sync():
    if torch.cuda.is_available(): torch.cuda.synchronize()

def timeit(f, n=20, warm=5):
    for _ in range(warm): f()
    sync(); ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); sync(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

if __name__ == '__main__':
    import argparse
    p = argparse.ArgumentParser(); p.add_argument('--device', default='cuda'); p.add_argument('--n', type=int, default=20)
    p.add_argument('--bs', type=int, default=64)
    a = p.parse_args()
    dev = torch.device(a.device)
    print(f"{torch.cuda.get_device_name() if dev.type == 'cuda' else 'CPU'}, torch {torch.__version__}, {platform.processor() or platform.machine()}")
    B, mu = a.bs, 7
    h_l = torch.randint(0, 256, (B, 3, 32, 32), dtype=torch.uint8)  # the images live in host memory, as the library's do
    h_u = torch.randint(0, 256, (B * mu, 3, 32, 32), dtype=torch.uint8)
    aug = A.FixMatchAugment((0.5,) * 3, (0.25,) * 3)
    g = torch.Generator().manual_seed(0)
    def views():  # the library's data path: host draws, one copy of images and draws, views made on the device
        p = (aug.plan_weak(B, 32, 32, g), aug.plan_weak(B * mu, 32, 32, g), aug.plan_strong(B * mu, 32, 32, g))
        xl, xu, p = A.send((h_l, h_u, p), dev)
        return aug.apply_weak(xl, p[0]), aug.apply_weak(xu, p[1]), aug.apply_strong(xu, p[2])
    t_aug = timeit(views, a.n)
    x_l, x_u = h_l.to(dev), h_u.to(dev)
    batch = (aug.weak(x_l, g), aug.weak(x_u, g), aug.strong(x_u, g)); y = torch.randint(0, 10, (B,), device=dev)
    for cl in (False, True):
        for amp in (None, torch.bfloat16):
            torch.manual_seed(0); model = wrn28_2().to(dev)
            if cl: model = model.to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, nesterov=True, weight_decay=5e-4)
            def step():
                x = torch.cat(batch)
                with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
                    lo = model(x).float()
                ll, lw, ls = lo[:B], lo[B:B + B * mu], lo[B + B * mu:]
                conf, pl = lw.detach().softmax(-1).max(-1)
                loss = F.cross_entropy(ll, y) + (F.cross_entropy(ls, pl, reduction='none') * (conf >= 0.95)).mean()
                opt.zero_grad(); loss.backward(); opt.step()
            t_step = timeit(step, a.n)
            print(f"channels-last {cl!s:5}, {'bf16 autocast' if amp else 'fp32':13}: step {t_step * 1000:7.2f} ms, "
                  f"augmentation {t_aug * 1000:6.2f} ms = {100 * t_aug / (t_aug + t_step):4.1f}% of augmentation + step")
