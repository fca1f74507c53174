"""Run a short FixMatch job (under torchrun or not) and write what each rank saw and ended with to <out>/rank<r>.json.

Usage: [torchrun --standalone --nproc_per_node=2] python tests/dist_probe.py <out folder> <labelled batch per process>
[<JSON of configuration overrides> [<training step at which rank 0 kills itself with SIGKILL>]]
Overrides starting with `probe.` are the probe's own: `probe.signal` {rank: [step, "SIGINT" or "SIGTERM"]} sends a rank
that signal after that training step, `probe.nan` {rank: step} makes that rank's loss NaN at that step. A run that raises
writes {"error": its message, "type": its class name} to rank<r>.json and exits with status 1."""
import hashlib, json, os, signal, sys
from pathlib import Path
from fastai.callback.core import Callback
from certpl.config import default_config
from certpl.train import train

class Probe(Callback):
    "Record the unlabelled ids of every training step"
    order = 99
    def __init__(self): self.ids = []  # not in before_fit: fastai's `validate` calls that too
    def after_batch(self):
        if self.training: self.ids.append(sorted(self.learn.fix_match.u_id.tolist()))

class Die(Callback):
    "`kill -9` of rank 0 after training step `at` (torchrun then stops the other ranks)"
    order = 99
    def __init__(self, at): self.at = at
    def after_batch(self):
        import torch.distributed as dist
        if self.training and self.learn.train_iter == self.at and dist.get_rank() == 0: os.kill(os.getpid(), signal.SIGKILL)

class Signal(Callback):
    "Send this rank a signal after training step `at` (what SLURM or a user's Ctrl-C does)"
    order = 99
    def __init__(self, at, sig): self.at, self.sig = at, getattr(signal, sig)
    def after_batch(self):
        if self.training and self.learn.train_iter == self.at: os.kill(os.getpid(), self.sig)

class NaN(Callback):
    "Make this rank's loss NaN at training step `at` (before the backward pass and `FiniteLoss`)"
    order = 58
    def __init__(self, at): self.at = at
    def after_loss(self):
        if self.training and self.learn.train_iter == self.at: self.learn.loss_grad = self.learn.loss_grad * float('nan')

def digest(state): return hashlib.sha1(b''.join(v.detach().cpu().numpy().tobytes() for v in state.values() if hasattr(v, 'detach'))).hexdigest()

def _flat(d, pre=''):
    for k, v in d.items():
        if isinstance(v, dict): yield from _flat(v, f'{pre}{k}.')
        else: yield f'{pre}{k}', v

if __name__ == '__main__':
    out, bs = Path(sys.argv[1]), int(sys.argv[2])
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    own = {k: extra.pop(k) for k in list(extra) if k.startswith('probe.')}
    rank = int(os.environ.get('RANK', 0))
    cfg = default_config(**{'data.steps_per_epoch': 10, 'exp.max_epochs': 2, 'model.wrn.depth': 10, 'model.wrn.widen_factor': 1,
                            'model.mu': 2, 'data.batch_size.train': bs, 'model.threshold': 0.7, 'exp.log_artifacts': False,
                            'model.ema_decay': 0.99, 'model.wrn.bn_momentum': 0.01,  # as before the budget rule: these
                            'exp.mlflow_uri': f'sqlite:///{out}/mlflow.db', **extra})  # tests compare processes, not budgets
    probe = Probe()
    cbs = [probe] + ([Die(int(sys.argv[4]))] if len(sys.argv) > 4 else [])
    if str(rank) in own.get('probe.signal', {}): cbs.append(Signal(*own['probe.signal'][str(rank)]))
    if str(rank) in own.get('probe.nan', {}): cbs.append(NaN(own['probe.nan'][str(rank)]))
    try: res = train(cfg, cbs=cbs, show_progress=False)
    except BaseException as e:
        (out/f'rank{rank}.json').write_text(json.dumps({'error': str(getattr(e, 'msg', e)), 'type': type(e).__name__}))
        sys.exit(1)
    learn = res['learn']
    names = list(learn.recorder.metric_names[1:-1])
    (out/f'rank{rank}.json').write_text(json.dumps({
        'ids': probe.ids, 'model': digest(learn.model.state_dict()), 'ema': digest(learn.ema.averaged.state_dict()), 'run_id': res['run_id'],
        'policy': digest({k: v for k, v in _flat(learn.fix_match.policy.state_dict())}),
        'test_accuracy': res['test_accuracy'], 'values': [dict(zip(names, map(float, v))) for v in learn.recorder.values]}))
