"""Golden figures: fingerprints of a few `certpl_train` runs, to show that a change of structure changed no result.

Each run is made through the command line (which keeps its keys across refactors) in a fresh folder; it prints the EMA
test accuracy, a SHA-256 over the final EMA model's tensors (`model.pth`, keys in order) and one over every metric the
run logged to MLflow (key, step, value; wall-clock metrics left out). `resume` kills a run with SIGKILL after its first
checkpoint and resumes it: its fingerprints must equal `mc` run's. Run from the repository root, before and after:
`python bench/golden.py > before.txt`, then `diff before.txt after.txt`. Compare on one machine with one thread count."""
import argparse, hashlib, os, signal, sqlite3, subprocess, sys, tempfile, time
from pathlib import Path
import torch

BIN = Path(sys.executable).parent/'certpl_train'
SHORT = ['data.steps_per_epoch=6', 'exp.max_epochs=3', 'model.wrn.depth=10', 'model.wrn.widen_factor=2', 'data.batch_size.train=16', 'model.mu=3']
RUNS = {
    'main': [],  # the main job: digits, 50 labels, 24 epochs of 64 steps
    'mc': SHORT + ['model.multi_strategy=true', 'model.drop_type=AfterBNDropout', 'model.drop_rate=0.3', 'model.T=4', 'model.certainty_strategy=BALDCertainty',
                   'model.features_gmm=true', 'model.dist_align=true', 'exp.log_ul_w_statistics=image', 'exp.log_val_statistics=batch',
                   'exp.log_statistics_freq=1'],
    'freematch': SHORT + ['model.selection=freematch', 'model.fairness=0.1', 'model.certainty_strategy=Margin'],
    'softmatch': SHORT + ['model.selection=softmatch', 'model.certainty_strategy=PECertainty', 'model.drop_rate=0.2', 'model.T=3', 'model.mc_reuse_features=true',
                          'model.drop_type=AfterBNDropout'],
    'flexmatch': SHORT + ['model.selection=flexmatch', 'model.spectral_norm=true', 'model.choose_threshold_on_val=true',
                          'model.choose_threshold_on_val_freq=4'],
    'fashion': ['data.source=fashion_mnist', 'data.n_labelled=40', 'data.steps_per_epoch=8', 'exp.max_epochs=2', 'data.batch_size.train=8',
                'model.mu=2', 'model.wrn.depth=10', 'model.wrn.widen_factor=1', 'data.val_ratio=0'],
}

def env(d): return {**os.environ, 'MLFLOW_TRACKING_URI': f'sqlite:///{d}/mlflow.db', 'MPLBACKEND': 'Agg'}

def fingerprint(d, stdout):
    acc = stdout.split('test accuracy (EMA model):')[1].split()[0]
    sd = torch.load(next(Path(d).rglob('model.pth')), map_location='cpu', weights_only=False)
    sd = sd.state_dict() if hasattr(sd, 'state_dict') else sd
    h = hashlib.sha256()
    for k, v in sd.items(): h.update(k.encode()); h.update(v.detach().contiguous().numpy().tobytes())
    rows = sqlite3.connect(f'{d}/mlflow.db').execute(
        "select key, step, value from metrics where key not like '%time%' order by key, step, timestamp").fetchall()
    m = hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
    return f'test accuracy {acc}  weights {h.hexdigest()[:16]}  metrics {m} ({len(rows)} values)'

def run(name, args):
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([str(BIN), *args], cwd=d, env=env(d), capture_output=True, text=True)
        if r.returncode: sys.exit(f'{name} failed:\n{r.stderr[-3000:]}')
        return fingerprint(d, r.stdout)

def resumed(args):
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.Popen([str(BIN), *args, 'exp.checkpoint_every=4'], cwd=d, env=env(d), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while not list(Path(d, 'checkpoints').glob('*.pt')):
            if p.poll() is not None: sys.exit(p.stderr.read().decode()[-3000:])
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL); p.wait()
        ckpt = next(Path(d, 'checkpoints').glob('*.pt'))
        r = subprocess.run([str(BIN), f'exp.resume={ckpt.stem}'], cwd=d, env=env(d), capture_output=True, text=True)
        if r.returncode: sys.exit(f'resume failed:\n{r.stderr[-3000:]}')
        return fingerprint(d, r.stdout)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--only', nargs='*', default=None, help='run names (default: all, and resume)')
    a = ap.parse_args()
    for name, args in RUNS.items():
        if a.only is None or name in a.only: print(f'{name:10s} {run(name, args)}', flush=True)
    if a.only is None or 'resume' in a.only: print(f"{'resume':10s} {resumed(RUNS['mc'])}   (must equal mc)", flush=True)
