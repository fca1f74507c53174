"Integration tests of `certpl_train`: the seed's command line, errors, MLflow tracking, sweeps"
import gzip, os, shutil, sqlite3
from pathlib import Path
import numpy as np
from mlflow.tracking import MlflowClient
from conftest import run_cli, run_cli_cases, start_mlflow_server, stop_mlflow_server, TINY
from certpl.data import write_fake_fashion_mnist

def n_runs(cwd):
    db = Path(cwd)/'mlflow.db'
    if not db.exists(): return 0
    return sqlite3.connect(db).execute('select count(*) from runs').fetchone()[0]

def test_tiny_run_logs_to_local_store(tmp_path):
    r = run_cli(TINY, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'test accuracy (EMA model):' in r.stdout
    c = MlflowClient(f'sqlite:///{tmp_path}/mlflow.db')
    exp = c.get_experiment_by_name('FixMatch/digits/SoftMax')
    (run,) = c.search_runs([exp.experiment_id])
    assert run.info.status == 'FINISHED'
    assert run.data.params['data.steps_per_epoch'] == '3' and run.data.params['model.mu'] == '2'
    for k in ('train_loss', 'loss_x', 'loss_u', 'mask_rate', 'pl_acc_all', 'accuracy'):
        assert len(c.get_metric_history(run.info.run_id, k)) == 2, k
    acc = float(r.stdout.split('test accuracy (EMA model):')[1].split()[0])
    assert abs(run.data.metrics['test_accuracy'] - acc) < 1e-4
    # stdout is a pipe, not a terminal: the table's header and one line per epoch, no progress-bar updates
    table = r.stdout.split('test accuracy (EMA model):')[0].splitlines()
    head = [i for i, l in enumerate(table) if l.split()[:3] == ['epoch', 'train_loss', 'valid_loss']]
    assert len(head) == 1 and [l.split()[0] for l in table[head[0] + 1:head[0] + 3]] == ['0', '1'], r.stdout
    assert '%' not in r.stdout and '\r' not in r.stdout, r.stdout

def one_error_line(r, stderr=None):
    "The one line on stderr of a run that stopped with status 2 (`r`: a CompletedProcess, or the status with `stderr`)"
    code, stderr = (r, stderr) if stderr is not None else (r.returncode, r.stderr)
    assert code == 2, (code, stderr[-2000:])
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith('certpl_train: error: ')
    return lines[0]

def test_bad_input_one_line_no_run(tmp_path):
    cases = {('data.foo=1',): "unknown key 'data.foo'",
             ('data.n_labelled=abc',): 'data.n_labelled',
             ('data.source=imagenet',): 'allowed: digits, fashion_mnist, cifar10',
             ('data.n_labelled=5000',): 'larger than the training split',
             ('data.n_labelled=5',): 'fewer than one per class',
             ('model.threshold=1.5',): 'model.threshold=1.5 must be in (0, 1]',
             ('model.mu=0',): 'model.mu=0',
             ('exp.precision=8',): 'allowed: 32, 16, bf16',
             ('model.certainty_strategy=PECertainty',): 'set model.T >= 1',
             ('model.T=4',): 'set model.drop_rate > 0',
             ('model.certainty_strategy=TopK', 'model.top_k=10'): 'model.top_k=10 must be in [1, 10)',
             ('model.features_gmm=true', 'data.n_labelled=10'): 'needs at least 2 labelled images per class',
             ('model.fairness=0.01',): 'needs model.selection=freematch'}
    for (args, msg), (code, err) in zip(cases.items(), run_cli_cases([(TINY + list(a), {}) for a in cases], tmp_path)):
        line = one_error_line(code, err)
        assert msg in line, (args, line)
    assert n_runs(tmp_path) == 0

def test_seed_commands_offline_say_where_data_was_looked_for(tmp_path, free_port):
    seed = [["data.source='CIFAR10'", 'data.n_labelled=250', 'optimizer.weight_decay=0.0005'],
            ["data.source='CIFAR100'", 'data.n_labelled=400', 'optimizer.weight_decay=0.001']]
    unreachable = TINY + [f'exp.mlflow_uri=http://127.0.0.1:{free_port}']
    res = run_cli_cases([(a + [f'data.root={tmp_path}/data'], {}) for a in seed] + [(unreachable, {})], tmp_path)
    for code, err in res[:2]:
        line = one_error_line(code, err)
        assert 'not found under' in line and 'download=True' in line, line
    assert 'does not answer' in one_error_line(*res[2])  # an unreachable tracking server
    assert n_runs(tmp_path) == 0

class _Planted:
    "Unpickling this creates a file: what a crafted checkpoint could do"
    def __init__(self, path): self.path = path
    def __reduce__(self): return (os.system, (f'touch {self.path}',))

def test_crafted_checkpoint_runs_no_code(tmp_path):
    import torch
    from certpl.callback.checkpoint import CKPT_FORMAT
    torch.save({'format': CKPT_FORMAT, 'meta': {}, 'x': _Planted(tmp_path/'pwned')}, tmp_path/'evil.pt')
    (code, err), = run_cli_cases([(['exp.resume=evil.pt'], {})], tmp_path)
    line = one_error_line(code, err)
    assert 'evil.pt holds more than a certpl checkpoint' in line and 'refused' in line, line
    assert not (tmp_path/'pwned').exists() and n_runs(tmp_path) == 0

def test_fashion_mnist_files_and_corrupt_file(tmp_path):
    args = TINY + ['data.source=fashion_mnist', 'data.n_labelled=20']
    good, bad = tmp_path/'fm', tmp_path/'fm_truncated'
    for root in (good, bad): write_fake_fashion_mnist(root, n_train=200, n_test=40)
    p = bad/'train-labels-idx1-ubyte.gz'
    p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-7]))
    (code, err), (code_bad, err_bad) = run_cli_cases([(args + [f'data.root={good}'], {}), (args + [f'data.root={bad}'], {})], tmp_path)
    assert code == 0, err[-2000:]
    assert 'train-labels-idx1-ubyte.gz is truncated' in one_error_line(code_bad, err_bad)
    assert n_runs(tmp_path) == 1

def test_real_mlflow_server(tmp_path, mlflow_server):
    "Two parallel jobs of a study on a tracking server (no file lock serialises them there): both recorded in the study, in full"
    r = run_cli(['-m', 'hydra/launcher=certpl_local', 'exp.study=srv', 'model.threshold=0.6,0.7', f'exp.mlflow_uri={mlflow_server}'] + TINY, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    c = MlflowClient(mlflow_server)
    runs = c.search_runs([c.get_experiment_by_name('study/srv').experiment_id])
    assert sorted((r.data.params['model.threshold'], r.info.status) for r in runs) == [('0.6', 'FINISHED'), ('0.7', 'FINISHED')]
    assert sum(len(c.search_runs([e.experiment_id])) for e in c.search_experiments()) == 2  # none elsewhere
    run = runs[0]
    assert [m.step for m in c.get_metric_history(run.info.run_id, 'mask_rate')] == [0, 1]
    assert 'test_accuracy' in run.data.metrics
    assert {a.path for a in c.list_artifacts(run.info.run_id)} == {'batch.png', 'config.yaml', 'model.pth', 'figures', 'labelled_split.txt'}
    assert len(c.list_artifacts(run.info.run_id, 'figures')) == 5  # AnalysisFigures, through the server's artifact store

def test_certainty_strategies_density_and_freematch_options_from_the_command_line(tmp_path):
    "A single-pass and an MC strategy, the feature density on a spectral-normalised model, FreeMatch's fairness and alignment"
    cases = {'Entropy': ['model.certainty_strategy=Entropy', 'model.threshold=0.5'],
             'BALDCertainty': ['model.certainty_strategy=BALDCertainty', 'model.T=3', 'model.drop_type=AfterBNDropout',
                               'model.drop_rate=0.3', 'model.threshold=0.2', 'model.conf_threshold=0.5'],
             'density': ['model.features_gmm=true', 'model.spectral_norm=true', 'model.mask_operation=and'],
             'freematch': ['model.selection=freematch', 'model.fairness=0.01', 'model.dist_align=true']}
    for name, (code, err) in zip(cases, run_cli_cases([(TINY + a, {}) for a in cases.values()], tmp_path, timeout=900)):
        assert code == 0, (name, err[-2000:])
    c = MlflowClient(f'sqlite:///{tmp_path}/mlflow.db')
    for name in ('Entropy', 'BALDCertainty'):
        (run,) = c.search_runs([c.get_experiment_by_name(f'FixMatch/digits/{name}').experiment_id])
        assert len(c.get_metric_history(run.info.run_id, 'mask_rate')) == 2
    runs = c.search_runs([c.get_experiment_by_name('FixMatch/digits/SoftMax').experiment_id])
    assert len(runs) == 2 and all(r.info.status == 'FINISHED' for r in runs)
    (fm,) = [r for r in runs if r.data.params['model.selection'] == 'freematch']
    assert fm.data.params['model.fairness'] == '0.01' and 'selection_tau' in fm.data.metrics
    (gmm,) = [r for r in runs if r.data.params['model.features_gmm'] == 'True']
    assert gmm.data.params['model.spectral_norm'] == 'True'

def test_multi_strategy_statistics_and_threshold_on_val(tmp_path):
    r = run_cli(TINY + ['model.multi_strategy=true', 'exp.log_ul_w_statistics=batch', 'exp.log_statistics_freq=1',
                        'model.choose_threshold_on_val=true', 'model.choose_threshold_on_val_freq=2',
                        'model.choose_threshold_on_val_acc=0.5', 'exp.log_val_statistics=batch'], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    c = MlflowClient(f'sqlite:///{tmp_path}/mlflow.db')
    (run,) = c.search_runs([c.get_experiment_by_name('FixMatch/digits/SoftMax').experiment_id])
    for k in ('Entropy_kept', 'Margin_kept', 'SoftMax_kept'):
        assert len(c.get_metric_history(run.info.run_id, k)) == 2, k
    # precision and recall are logged for the epochs where the threshold chosen on validation keeps some pseudo-labels
    # (nothing reaches the target accuracy early on: the threshold is then infinite and nothing is kept)
    assert c.get_metric_history(run.info.run_id, 'Entropy_precision') and c.get_metric_history(run.info.run_id, 'Margin_recall')
    assert c.get_metric_history(run.info.run_id, 'threshold')
    arts = {a.path for a in c.list_artifacts(run.info.run_id, 'statistics')}
    assert arts == {f'statistics/{v}_epoch000{e}.csv' for v in ('weak', 'validation') for e in (0, 1)}

SELECTIONS = ('fixed', 'flexmatch', 'freematch', 'softmatch', 'adamatch')
STRATEGIES = ('SoftMax', 'Entropy', 'Margin', 'TopK', 'MeanSoftmax', 'PECertainty', 'BALDCertainty')

def test_every_selection_with_every_strategy(tmp_path):
    """Every selection policy with a single-pass and an MC strategy, and every other strategy with the fixed threshold,
    run a few steps from the command line (two sweeps), one MLflow run per job"""
    tiny = [a for a in TINY if not a.startswith(('exp.max_epochs', 'data.steps_per_epoch'))] + ['exp.max_epochs=1', 'data.steps_per_epoch=2']
    common = ['model.T=2', 'model.drop_type=AfterBNDropout', 'model.drop_rate=0.3', 'model.threshold=0.5',
              'model.conf_threshold=0.5', 'exp.log_artifacts=false'] + tiny
    rest = [s for s in STRATEGIES if s not in ('SoftMax', 'BALDCertainty')]
    for sweep, n in ((['model.certainty_strategy=SoftMax,BALDCertainty', f'model.selection={",".join(SELECTIONS)}'], 10),
                     ([f'model.certainty_strategy={",".join(rest)}', 'model.selection=fixed'], len(rest))):
        r = run_cli(['-m'] + sweep + common, tmp_path, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.count('test accuracy (EMA model):') == n
    c = MlflowClient(f'sqlite:///{tmp_path}/mlflow.db')
    expected = {'fixed': None, 'flexmatch': 'selection_threshold_class0', 'freematch': 'selection_tau',
                'softmatch': 'selection_weight_mean', 'adamatch': 'selection_threshold'}
    for strategy in STRATEGIES:
        runs = c.search_runs([c.get_experiment_by_name(f'FixMatch/digits/{strategy}').experiment_id])
        want = SELECTIONS if strategy in ('SoftMax', 'BALDCertainty') else ('fixed',)
        assert sorted(r.data.params['model.selection'] for r in runs) == sorted(want)
        for run in runs:
            assert run.info.status == 'FINISHED' and 'mask_rate' in run.data.metrics
            key = expected[run.data.params['model.selection']]
            if key: assert key in run.data.metrics, (strategy, key, sorted(run.data.metrics))

def test_folder_of_images_from_the_command_line(tmp_path):
    "A folder of real PNG/JPEG files: trains a few steps, with a labelled list; corrupt files and bad lists are one line"
    from PIL import Image
    from certpl.folder import write_image_folder
    root = write_image_folder(tmp_path/'pets', n_train=10, n_test=3, n_unlabelled=8)
    Image.new('L', (16, 16), 90).save(root/'train'/'cat'/'grey.png')  # a greyscale image among colour ones
    (root/'chosen.txt').write_text('train/cat/000.png\ntrain/dog/000.png\ntrain/fox/000.png\n')
    broken = tmp_path/'broken'  # the same folder with one corrupt file
    shutil.copytree(root, broken)
    (broken/'train'/'dog'/'broken.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
    (code, err), bad = run_cli_cases([
        (TINY + ['data.source=folder', f'data.root={root}', f'data.labelled_list={root/"chosen.txt"}',
                 'model.certainty_strategy=Entropy', 'model.threshold=0.5'], {}),
        (TINY + ['data.source=folder', f'data.root={broken}'], {})], tmp_path)
    assert code == 0, err[-2000:]
    assert 'certpl: 1 greyscale and 47 colour images: all converted to RGB' in err
    c = MlflowClient(f'sqlite:///{tmp_path}/mlflow.db')
    (run,) = c.search_runs([c.get_experiment_by_name('FixMatch/folder:pets/Entropy').experiment_id])
    assert run.info.status == 'FINISHED' and run.data.params['data.labelled_list'].endswith('chosen.txt')
    assert len(c.get_metric_history(run.info.run_id, 'mask_rate')) == 2
    # bad input is one line and no run (the other folder errors are tested in 00a_folder)
    line = one_error_line(*bad)
    assert '1 unreadable or corrupt image file(s)' in line and 'broken.jpg' in line
    assert n_runs(tmp_path) == 1

def test_unwritable_server_artifact_store_refused_before_training(tmp_path, free_port):
    "A server whose artifact store (`mlflow-artifacts:`) cannot be written: one line before training, nothing left behind"
    (tmp_path/'a_file').write_text('')  # a folder under a file cannot be made, not even by root
    proc, uri = start_mlflow_server(tmp_path, free_port, '--artifacts-destination', str(tmp_path/'a_file'/'artifacts'))
    try:
        (code, err), = run_cli_cases([(TINY + [f'exp.mlflow_uri={uri}'], {})], tmp_path)
        line = one_error_line(code, err)
        assert 'the artifact store of experiment FixMatch/digits/SoftMax (mlflow-artifacts:' in line and 'cannot be written' in line, line
        c = MlflowClient(uri)
        assert c.search_runs([c.get_experiment_by_name('FixMatch/digits/SoftMax').experiment_id]) == []
    finally: stop_mlflow_server(proc)
