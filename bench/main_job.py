"""The main job (`certpl_train` with no arguments: digits, 50 labels) against a supervised-only run on the same 50
labels with the same budget (steps, batch size, model, optimiser, schedule, EMA). Prints wall time, peak memory and
EMA test accuracy of both. Run from the repository root: `python bench/main_job.py`."""
import os, resource, subprocess, sys, tempfile, time
from pathlib import Path
import torch

def main_job():
    with tempfile.TemporaryDirectory() as d:
        t = time.time()
        r = subprocess.run([str(Path(sys.executable).parent/'certpl_train')], cwd=d, capture_output=True, text=True,
                           env={**os.environ, 'MLFLOW_TRACKING_URI': f'sqlite:///{d}/mlflow.db'})
        wall = time.time() - t
    if r.returncode: sys.exit(r.stderr[-3000:])
    acc = float(r.stdout.split('test accuracy (EMA model):')[1].split()[0])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak, acc

def supervised_only():
    from certpl.learner import tune_malloc; tune_malloc()  # as certpl_train does
    from fastai.callback.core import Callback
    from certpl.config import default_config
    from certpl.train import train
    class SupervisedOnly(Callback):
        "Drop the unlabelled images: train on the labelled batch only"
        order, run_valid = 54, False
        def before_batch(self):
            (xl, uw, us), (yl, uid, uy) = self.xb[0], self.yb
            self.learn.xb, self.learn.yb = ((xl, uw[:0], us[:0]),), (yl, uid[:0], uy[:0])
    t = time.time()
    cfg = default_config(**{'model.lambda_u': 0.0, 'exp.logging': False})
    res = train(cfg, cbs=[SupervisedOnly()], show_progress=False)
    return time.time() - t, res['test_accuracy']

if __name__ == '__main__':
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPUs {os.cpu_count()}")
    wall, peak, acc = main_job()
    print(f"main job (certpl_train, digits, 50 labels): wall {wall:.0f} s, peak RSS {peak:.0f} MiB, EMA test accuracy {acc:.4f}")
    swall, sacc = supervised_only()
    print(f"supervised only, same 50 labels and budget:   wall {swall:.0f} s, EMA test accuracy {sacc:.4f}")
