"""Run a short FixMatch job (under torchrun or not) and write what each rank saw and ended with to <out>/rank<r>.json.

Usage: [torchrun --standalone --nproc_per_node=2] python tests/dist_probe.py <out folder> <labelled batch per process>"""
import hashlib, json, sys
from pathlib import Path
from fastai.callback.core import Callback
from certpl.train import default_config, train

class Probe(Callback):
    "Record the unlabelled ids of every training step"
    order = 99
    def __init__(self): self.ids = []  # not in before_fit: fastai's `validate` calls that too
    def after_batch(self):
        if self.training: self.ids.append(sorted(self.learn.fix_match.u_id.tolist()))

def digest(module): return hashlib.sha1(b''.join(v.detach().cpu().numpy().tobytes() for v in module.state_dict().values())).hexdigest()

if __name__ == '__main__':
    out, bs = Path(sys.argv[1]), int(sys.argv[2])
    cfg = default_config(**{'data.steps_per_epoch': 10, 'exp.max_epochs': 2, 'model.wrn.depth': 10, 'model.wrn.widen_factor': 1,
                            'model.mu': 2, 'data.batch_size.train': bs, 'model.threshold': 0.7, 'exp.log_artifacts': False,
                            'exp.mlflow_uri': f'sqlite:///{out}/mlflow.db'})
    probe = Probe()
    res = train(cfg, cbs=[probe], show_progress=False)
    import torch.distributed as dist
    rank = dist.get_rank() if dist.is_initialized() else 0
    learn = res['learn']
    names = list(learn.recorder.metric_names[1:-1])
    (out/f'rank{rank}.json').write_text(json.dumps({
        'ids': probe.ids, 'model': digest(learn.model), 'ema': digest(learn.ema.averaged), 'run_id': res['run_id'],
        'test_accuracy': res['test_accuracy'], 'values': [dict(zip(names, map(float, v))) for v in learn.recorder.values]}))
