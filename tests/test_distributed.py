"Data-parallel training with torchrun on CPU (gloo): 2 processes against 1 process with the same total batch"
import json, shutil, subprocess, sys
from pathlib import Path
from mlflow.tracking import MlflowClient
from conftest import BIN

PROBE = Path(__file__).parent/'dist_probe.py'

def probe(out, bs, nproc=1, extra=None, die=None, ok=True):
    out.mkdir(exist_ok=True)
    cmd = [str(BIN/'torchrun'), '--standalone', f'--nproc_per_node={nproc}', '--no-python'] if nproc > 1 else []
    more = [json.dumps(extra or {})] + ([str(die)] if die is not None else [])
    r = subprocess.run(cmd + [sys.executable, str(PROBE), str(out), str(bs)] + more, capture_output=True, text=True, timeout=600)
    if not ok: assert r.returncode != 0; return r
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads((out/f'rank{i}.json').read_text()) for i in range(nproc)]

def test_two_processes_match_one_process_with_the_same_total_batch(tmp_path):
    (one,) = probe(tmp_path/'one', 16)
    r0, r1 = probe(tmp_path/'two', 8, nproc=2)
    # the ranks see disjoint unlabelled images in every step, and together the images of the single process's step
    assert len(r0['ids']) == len(one['ids']) == 20
    for a, b, both in zip(r0['ids'], r1['ids'], one['ids']):
        assert set(a).isdisjoint(b) and sorted(a + b) == both
    # they end identical: weights, EMA, and every metric (statistics are reduced over the ranks)
    assert r0['model'] == r1['model'] and r0['ema'] == r1['ema']
    assert r0['values'] == r1['values'] and r0['test_accuracy'] == r1['test_accuracy']
    # and close to the single process: batch norm normalises each rank's half batch, so not equal. Tolerances:
    # labelled loss within 5% per epoch, validation and test accuracy within 0.05
    for d, s in zip(r0['values'], one['values']):
        assert abs(d['loss_x'] - s['loss_x']) <= 0.05 * s['loss_x'], (d, s)
        assert abs(d['accuracy'] - s['accuracy']) <= 0.05, (d, s)
    assert abs(r0['test_accuracy'] - one['test_accuracy']) <= 0.05
    # rank 0 alone tracks the run
    c = MlflowClient(f"sqlite:///{tmp_path/'two'/'mlflow.db'}")
    (run,) = c.search_runs([c.get_experiment_by_name('FixMatch/digits/SoftMax').experiment_id])
    assert run.info.run_id == r0['run_id'] and r1['run_id'] is None
    assert run.data.params['world_size'] == '2' and run.info.status == 'FINISHED'

def test_the_console_script_under_torchrun(tmp_path):
    r = subprocess.run([str(BIN/'torchrun'), '--standalone', '--nproc_per_node=2', '--no-python', str(BIN/'certpl_train'),
                        'exp.max_epochs=1', 'data.steps_per_epoch=5'], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**__import__('os').environ, 'MLFLOW_TRACKING_URI': f'sqlite:///{tmp_path}/mlflow.db'})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('test accuracy (EMA model):') == 1  # rank 0 speaks
    c = MlflowClient(f'sqlite:///{tmp_path}/mlflow.db')
    (run,) = c.search_runs([c.get_experiment_by_name('FixMatch/digits/SoftMax').experiment_id])
    assert run.info.status == 'FINISHED' and len(c.get_metric_history(run.info.run_id, 'accuracy')) == 1

def test_two_rank_run_killed_and_resumed_ends_exactly_as_uninterrupted(tmp_path):
    "Policy state is global (every rank decides on the gathered batch) and each rank's RNG and partial sums are checkpointed"
    stateful = {'model.selection': 'freematch', 'model.dist_align': True, 'model.selection_ema': 0.9, 'model.drop_rate': 0.2,
                'data.steps_per_epoch': 5,
                'exp.checkpoint_every': 3, 'exp.checkpoint_dir': str(tmp_path/'ckpt')}
    full = probe(tmp_path/'full', 8, nproc=2, extra=stateful)
    assert full[0]['policy'] == full[1]['policy']  # the running state is the same on both ranks
    probe(tmp_path/'died', 8, nproc=2, extra=stateful, die=4, ok=False)  # killed mid-epoch, after the checkpoint of step 3
    (ck,) = [p for p in (tmp_path/'ckpt').glob('*.pt') if p.stem != full[0]['run_id']]
    resumed = probe(tmp_path/'died', 8, nproc=2, extra={**stateful, 'exp.resume': str(ck)})
    for a, b in zip(full, resumed):
        assert (a['model'], a['ema'], a['policy'], a['values'], a['test_accuracy']) == (b['model'], b['ema'], b['policy'], b['values'], b['test_accuracy'])

def _ranks(out, n=2): return [json.loads((out/f'rank{i}.json').read_text()) for i in range(n)]

def test_checkpoint_keeps_replicated_state_once_and_an_old_checkpoint_still_resumes(tmp_path):
    "A 2-rank checkpoint: rank 0's full state once, per rank only its random states and partial sums, all on the CPU"
    import torch
    from certpl.callback.checkpoint import load_checkpoint
    stateful = {'model.selection': 'freematch', 'model.dist_align': True, 'model.selection_ema': 0.9, 'data.steps_per_epoch': 5,
                'exp.checkpoint_every': 3, 'exp.checkpoint_dir': str(tmp_path/'ckpt')}
    full = probe(tmp_path/'full', 8, nproc=2, extra=stateful)
    probe(tmp_path/'died', 8, nproc=2, extra=stateful, die=4, ok=False)
    (ck,) = [p for p in (tmp_path/'ckpt').glob('*.pt') if p.stem != full[0]['run_id']]
    st = load_checkpoint(ck)
    assert 'averaged' in st['callbacks']['ema']  # once, from rank 0
    for r in st['ranks']:
        cbs = r['callbacks']
        assert cbs['ema'] == {} and cbs['best_ema'] == {}, cbs.keys()  # replicated: not per rank
        assert set(cbs['fix_match']) == {'_sums', '_n_batches'}  # the policy decides on the gathered batch: replicated
        def tensors(v):
            if isinstance(v, torch.Tensor): yield v
            elif isinstance(v, (list, tuple)): yield from (t for o in v for t in tensors(o))
            elif isinstance(v, dict): yield from (t for o in v.values() for t in tensors(o))
        assert all(t.device.type == 'cpu' for t in tensors(r))
    n_model = sum(v.numel() for v in st['model'].values())
    assert sum(t.numel() for r in st['ranks'] for t in tensors(r['callbacks'])) < 0.01 * n_model
    # a checkpoint written before `rank_attrs` held every callback's whole state per rank: it resumes to the same end
    old = {**st, 'ranks': [{**r, 'callbacks': {n: {**st['callbacks'].get(n, {}), **a} for n, a in r['callbacks'].items()}} for r in st['ranks']]}
    torch.save(old, tmp_path/'old.pt')
    for path in (ck, tmp_path/'old.pt'):
        out = tmp_path/f'resumed-{path.stem}'; out.mkdir()
        shutil.copy(tmp_path/'died'/'mlflow.db', out/'mlflow.db')  # the run it continues
        resumed = probe(out, 8, nproc=2, extra={**stateful, 'exp.resume': str(path)})
        for a, b in zip(full, resumed):
            assert (a['model'], a['ema'], a['policy'], a['values']) == (b['model'], b['ema'], b['policy'], b['values'])

def test_a_nan_loss_on_one_rank_stops_every_rank_with_the_same_line(tmp_path):
    r = probe(tmp_path/'nan', 8, nproc=2, extra={'probe.nan': {'1': 3}, 'exp.sync_every': 2}, ok=False)
    e0, e1 = _ranks(tmp_path/'nan')
    assert e0 == e1 and e0['type'] == 'NonFiniteLoss', (e0, e1)
    assert 'the training loss is nan at epoch 0, step 3 on rank 1 of 2 (labelled' in e0['error'], e0
    c = MlflowClient(f"sqlite:///{tmp_path/'nan'/'mlflow.db'}")
    (run,) = c.search_runs([c.get_experiment_by_name('FixMatch/digits/SoftMax').experiment_id])
    assert run.info.status == 'FAILED'

def test_a_signal_reaching_the_ranks_at_different_steps_stops_them_together_and_resumes_exactly(tmp_path):
    "SIGTERM to both ranks after steps 2 and 3 (as SLURM sends it), and SIGINT to rank 1 alone: one consistent checkpoint at step 4"
    base = {'model.selection': 'freematch', 'model.selection_ema': 0.9, 'data.steps_per_epoch': 5, 'exp.sync_every': 2,
            'exp.checkpoint_dir': str(tmp_path/'ckpt')}
    full = probe(tmp_path/'full', 8, nproc=2, extra=base)
    for name, sig, want in (('both', {'0': [2, 'SIGTERM'], '1': [3, 'SIGTERM']}, 'stopped by SIGTERM'),
                            ('one', {'1': [2, 'SIGINT']}, 'interrupted')):
        probe(tmp_path/name, 8, nproc=2, extra={**base, 'probe.signal': sig}, ok=False)
        e0, e1 = _ranks(tmp_path/name)
        assert e0['type'] == e1['type'] == 'Interrupted', (e0, e1)
        assert e0['error'].startswith(f'{want} at epoch 0, step 4;') and e1['error'].startswith(f'{want} at epoch 0, step 4;'), (e0, e1)
        ck = e0['error'].split('checkpoint saved to ')[1].split(';')[0]
        resumed = probe(tmp_path/name, 8, nproc=2, extra={**base, 'exp.resume': ck})
        for a, b in zip(full, resumed):
            assert (a['model'], a['ema'], a['policy'], a['values'], a['test_accuracy']) == (b['model'], b['ema'], b['policy'], b['values'], b['test_accuracy'])

def test_only_local_rank_0_downloads_and_a_failed_download_ends_every_rank(tmp_path):
    for how in ('ok', 'fail'):
        out = tmp_path/how; out.mkdir()
        r = subprocess.run([str(BIN/'torchrun'), '--standalone', '--nproc_per_node=2', '--no-python', sys.executable,
                            str(Path(__file__).parent/'dist_download.py'), str(out), how], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        r0, r1 = _ranks(out)
        assert (r0['downloads'], r1['downloads']) == (1, 0)  # rank 1 waited for rank 0's download, then read its files
        if how == 'ok': assert r0['n_train'] == r1['n_train'] == 50
        else:
            assert r0['error'] == r1['error'] and 'could not be downloaded (URLError' in r0['error'], (r0, r1)
