"""Vanilla FixMatch in the setting of the reference run (kekmodel/FixMatch-pytorch, unmodified, on CPU: 62.4% EMA test
accuracy after the last of 1,500 steps): Fashion-MNIST, the first 50,000 training images, each 28x28 zero-padded by
2 px to 32x32 with the channel repeated 3 times, the 10,000 test images; 40 labels (4 per class), WRN-28-2, B=16,
mu=7, lr 0.03, SGD Nesterov, wd 5e-4, threshold 0.95, seed 5, no validation split, one evaluation at the end.

  --setting reference: as kekmodel ran it: labelled images also in the unlabelled stream, EMA 0.999, BN momentum 0.001
  --setting certpl:    certpl's defaults: labelled images excluded (the seed), budget presets (tau = min(1000, steps/10))

Prints final EMA test accuracy, mean mask rate over training and s/step. Runs in parts: `--checkpoint-every N` writes
checkpoints under --out; run the same command with `--resume` to continue the last run of that setting exactly.
Run from the repository root: `python bench/reproduce.py --setting reference`."""
import argparse, json, platform, time
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F

def fashion_32x3(root=None):
    "Fashion-MNIST as the reference run used it: first 50,000 training images, zero-padded to 32x32, 3 channels"
    from certpl.core import ImageSet
    from certpl.data import load_fashion_mnist_source
    src = load_fashion_mnist_source(root or 'data', download=False)
    def conv(s, n=None):
        x = s.images[:n] if n else s.images
        return ImageSet(F.pad(x, (2, 2, 2, 2)).repeat(1, 3, 1, 1).contiguous(), s.labels[:n] if n else s.labels)
    train, test = conv(src.train, 50_000), conv(src.test)
    x = train.images[:, :1].float() / 255
    mean, std = (float(x.mean()),) * 3, (float(x.std()),) * 3
    return type(src)('fashion_mnist', train, test, src.classes, mean, std, flip=True)

def config(setting, steps, seed, epochs, out, threads):
    from certpl.config import default_config
    o = {'data.n_labelled': 40, 'data.val_ratio': 0.0, 'data.batch_size.train': 16, 'model.mu': 7,
         'data.steps_per_epoch': steps // epochs, 'exp.max_epochs': epochs, 'model.wrn.depth': 28, 'model.wrn.widen_factor': 2,
         'optimizer.lr': 0.03, 'optimizer.nesterov': True, 'optimizer.weight_decay': 5e-4, 'model.threshold': 0.95,
         'exp.seed': seed, 'exp.mlflow_uri': f'sqlite:///{out}/mlflow.db', 'exp.checkpoint_dir': f'{out}/checkpoints',
         'exp.log_artifacts': False}
    if setting == 'reference':
        o.update({'data.include_labelled_in_unlabelled': True, 'model.ema_decay': 0.999, 'model.wrn.bn_momentum': 0.001})
    return default_config(**o)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--setting', choices=('reference', 'certpl'), default='reference')
    p.add_argument('--steps', type=int, default=1500); p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--seed', type=int, default=5); p.add_argument('--threads', type=int, default=0)
    p.add_argument('--checkpoint-every', type=int, default=100)
    p.add_argument('--out', default='bench_out/reproduce'); p.add_argument('--resume', action='store_true')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    from certpl.learner import tune_malloc
    from certpl.train import train
    tune_malloc()
    out = Path(a.out)/f'{a.setting}-seed{a.seed}-{a.steps}'; out.mkdir(parents=True, exist_ok=True)
    cfg = config(a.setting, a.steps, a.seed, a.epochs, out.resolve(), a.threads)
    cfg.exp.checkpoint_every = a.checkpoint_every
    state = out/'run.json'
    if a.resume:
        cfg.exp.resume = json.loads(state.read_text())['checkpoint']
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"setting {a.setting}, {a.steps} steps, seed {a.seed}", flush=True)
    t = time.time()
    from fastai.callback.core import Callback
    class Remember(Callback):
        "Note the checkpoint file (for --resume) and time the training phases (data pipeline and steps, no evaluation)"
        order = 99
        train_s, steps = 0., 0
        def before_fit(self): state.write_text(json.dumps({'checkpoint': str(self.learn.checkpoint.path.resolve())}))
        def before_train(self): self.t0 = time.perf_counter()
        def after_batch(self): self.steps += self.training
        def after_train(self): self.train_s += time.perf_counter() - self.t0
    res = train(cfg, cbs=[Remember()], source=fashion_32x3())
    wall = time.time() - t
    rec = res['learn'].recorder
    names = list(rec.metric_names[1:-1])
    mask = [v[names.index('mask_rate')] for v in rec.values]
    rem = res['learn'].remember
    print(f"final EMA test accuracy {res['test_accuracy']:.4f}; mean mask rate {np.mean(mask):.3f} "
          f"(per epoch: {' '.join(f'{m:.3f}' for m in mask)}); {rem.train_s / max(rem.steps, 1):.3f} s/step over the "
          f"{rem.steps} steps of this part; wall {wall:.0f} s", flush=True)
    (out/'result.json').write_text(json.dumps({'test_accuracy': res['test_accuracy'], 'mask_rate': mask, 'steps_this_part': rem.steps,
                                               's_per_step': rem.train_s / max(rem.steps, 1), 'wall_s_this_part': wall,
                                               'run_id': res['run_id']}))

if __name__ == '__main__': main()
