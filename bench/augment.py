"""Augmentation throughput, one process, `torch.set_num_threads(1)`: FixMatch's weak + strong views of 448-image batches
(B=64, mu=7), batched on the CPU by `certpl.augment.FixMatchAugment`, against per-image pipelines measured in the
same run, interleaved:
- kekmodel's: PIL per image (flip, reflect pad-and-crop, RandAugmentMC with its PIL ops, Cutout), then ToTensor and
  Normalize, the reference the specification follows (`pil_op` is its rendering);
- certpl's before the batched pipeline: torchvision v2 `RandAugment` per uint8 image with a per-image seed.
Images: Fashion-MNIST (Debian's package) as 28x28x1, and zero-padded to 32x32 with 3 channels; random images if the
package is missing. Prints source images per second (each image gets both views) and the ratios.
Run from the repository root: `python bench/augment.py [--batches 6]`."""
import argparse, gzip, platform, random, statistics, time
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F, PIL.Image
from torchvision import transforms as T
from torchvision.transforms import v2
from certpl.augment import FixMatchAugment, RA_OPS, pil_op, cutout_box, pil_cutout

def images(n=448 * 8):
    p = Path('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')
    x = (torch.from_numpy(np.frombuffer(gzip.open(p).read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n].copy()) if p.exists()
         else torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8))
    return {'28x28x1': x, '32x32x3': F.pad(x, (2, 2, 2, 2)).repeat(1, 3, 1, 1).contiguous()}

class RandAugmentMC:
    "kekmodel's `RandAugmentMC(2, 10)` on a PIL image (its draws: Python's `random` and NumPy's global generators)"
    def __call__(self, img):
        for op in random.choices(RA_OPS, k=2):
            v = np.random.randint(1, 10)
            if random.random() < 0.5: img = pil_op(img, op, v, -1. if random.random() < 0.5 else 1.)
        w, h = img.size
        return pil_cutout(img, cutout_box(torch.from_numpy(np.random.uniform(0, 1, (1, 2))), h, w, int(min(h, w) * 0.5))[0])

def kekmodel_pipeline(size, c):
    pad, norm = int(size * 0.125), T.Normalize((0.5,) * c, (0.25,) * c)
    weak = T.Compose([T.RandomHorizontalFlip(), T.RandomCrop(size, padding=pad, padding_mode='reflect'), T.ToTensor(), norm])
    strong = T.Compose([T.RandomHorizontalFlip(), T.RandomCrop(size, padding=pad, padding_mode='reflect'), RandAugmentMC(), T.ToTensor(), norm])
    def run(x):
        out = []
        for a in x:
            img = PIL.Image.fromarray(a.permute(1, 2, 0).squeeze(-1).numpy())
            out.append((weak(img), strong(img)))
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])
    return run

def old_certpl_pipeline(c):
    class FixMatchRandAugment(v2.RandAugment):  # certpl's per-image strong view before the batched pipeline
        @property
        def magnitude(self): return int(torch.randint(self.num_magnitude_bins, ()))
        @magnitude.setter
        def magnitude(self, v): pass
    ra, aug = FixMatchRandAugment(num_ops=2, fill=127), FixMatchAugment((0.5,) * c, (0.25,) * c)
    def run(x, step=[0]):
        strong = []
        for i, a in enumerate(x):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(step[0] * 10_000 + i); strong.append(ra(a))
        step[0] += 1
        g = torch.Generator().manual_seed(step[0])
        us = torch.stack(strong)  # then flip, crop, Cutout and normalise of the batch, as it did
        return aug.weak(x, g), aug.normalize(aug.flip_crop(us, g))
    return run

def batched_pipeline(c):
    aug = FixMatchAugment((0.5,) * c, (0.25,) * c)
    def run(x, step=[0]):
        g = torch.Generator().manual_seed(step[0]); step[0] += 1
        return aug.weak(x, g), aug.strong(x, g)
    return run

if __name__ == '__main__':
    p = argparse.ArgumentParser(); p.add_argument('--batches', type=int, default=6); p.add_argument('--bs', type=int, default=448)
    a = p.parse_args()
    torch.set_num_threads(1); random.seed(0); np.random.seed(0)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, batches of {a.bs} images")
    for name, x in images(a.bs * a.batches).items():
        c, size = x.shape[1], x.shape[-1]
        runs = {'batched (certpl.augment)': batched_pipeline(c), 'per image, kekmodel (PIL)': kekmodel_pipeline(size, c),
                'per image, certpl before (torchvision v2)': old_certpl_pipeline(c)}
        times = {k: [] for k in runs}
        for r in runs.values(): r(x[:a.bs])  # warm-up
        for b in range(a.batches):  # interleaved
            xb = x[b * a.bs:(b + 1) * a.bs]
            for k, r in runs.items():
                t = time.perf_counter(); r(xb); times[k].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med['batched (certpl.augment)']
        for k, m in med.items():
            print(f"{name}: {k:42s} {a.bs / m:8.0f} source images/s ({m * 1000:7.1f} ms/batch)"
                  + ('' if m == base else f"; batched is {m / base:.1f}x faster"))
