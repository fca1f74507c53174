"Faults: kill -9 and resume, Ctrl-C, a NaN loss, unwritable outputs; and sweeps through the launcher presets"
import os, signal, sqlite3, subprocess, time
from pathlib import Path
import pytest
from filelock import FileLock
from mlflow.tracking import MlflowClient
from conftest import run_cli, run_cli_cases, BIN, TINY
from test_cli import one_error_line, n_runs

# long enough (18 steps) that a signal sent after the first checkpoint arrives in the middle of training
JOB = ['data.steps_per_epoch=6', 'exp.max_epochs=3', 'model.wrn.depth=10', 'model.wrn.widen_factor=2',
       'data.batch_size.train=16', 'model.mu=3', 'exp.log_artifacts=false']

def accuracy_of(r):
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split('test accuracy (EMA model):')[1].split()[0]

@pytest.fixture(scope='session')
def uninterrupted(tmp_path_factory, worker_id):
    "The uninterrupted run's test accuracy, trained once per pytest session: the first worker to ask trains, the others wait and read it"
    if worker_id == 'master': return accuracy_of(run_cli(JOB, tmp_path_factory.mktemp('whole')))
    shared = tmp_path_factory.getbasetemp().parent  # this session's folder, above each worker's
    with FileLock(str(shared/'uninterrupted.lock')):
        f = shared/'uninterrupted.txt'
        if not f.exists(): f.write_text(accuracy_of(run_cli(JOB, tmp_path_factory.mktemp('whole'))))
        return f.read_text()

def start(args, cwd):
    e = {**os.environ, 'MLFLOW_TRACKING_URI': f'sqlite:///{cwd}/mlflow.db'}
    return subprocess.Popen([str(BIN/'certpl_train'), *args], cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

def wait_for_checkpoint(proc, cwd, timeout=300):
    for _ in range(int(timeout / 0.01)):
        found = list((Path(cwd)/'checkpoints').glob('*.pt'))
        if found: return found[0]
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(0.01)
    proc.kill(); pytest.fail('no checkpoint was written')

def status(cwd, run_id): return MlflowClient(f'sqlite:///{cwd}/mlflow.db').get_run(run_id).info.status

def test_kill_9_then_resume_ends_like_an_uninterrupted_run(tmp_path, uninterrupted):
    proc = start(JOB + ['exp.checkpoint_every=2'], tmp_path)
    ckpt = wait_for_checkpoint(proc, tmp_path)
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert proc.returncode == -signal.SIGKILL
    run_id = ckpt.stem
    assert status(tmp_path, run_id) == 'RUNNING'  # nobody could mark it
    r = run_cli([f'exp.resume={run_id}'], tmp_path)
    assert accuracy_of(r) == uninterrupted
    assert f'mlflow run: {run_id}' in r.stdout and status(tmp_path, run_id) == 'FINISHED'
    c = MlflowClient(f'sqlite:///{tmp_path}/mlflow.db')
    assert sorted({m.step for m in c.get_metric_history(run_id, 'mask_rate')}) == [0, 1, 2]
    assert n_runs(tmp_path) == 1
    assert [p.name for p in (tmp_path/'checkpoints').iterdir()] == [ckpt.name]  # no half-written file left

@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_marks_the_run_killed(tmp_path, uninterrupted, sig):
    "Ctrl-C, and SIGTERM (SLURM's time limit, `timeout`, `docker stop`): the step finishes, a checkpoint, KILLED, 128 + the signal"
    proc = start(JOB + ['exp.checkpoint_every=1'], tmp_path)
    ckpt = wait_for_checkpoint(proc, tmp_path)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, err[-2000:]
    line = [l for l in err.splitlines() if l.startswith('certpl_train:')][-1]
    assert 'checkpoint saved to' in line and f'continue with exp.resume={ckpt.stem}' in line, line
    assert line.startswith('certpl_train: stopped by SIGTERM at epoch' if sig == signal.SIGTERM else 'certpl_train: interrupted at epoch'), line
    assert status(tmp_path, ckpt.stem) == 'KILLED'
    assert accuracy_of(run_cli([f'exp.resume={ckpt}'], tmp_path)) == uninterrupted  # the file works as well as the id
    assert status(tmp_path, ckpt.stem) == 'FINISHED'

def test_nan_loss_in_one_job_of_a_sweep_stops_it_with_one_line_and_a_failed_run(tmp_path):
    "The job whose loss is NaN ends FAILED with one line, the sweep exits non-zero, the other job's run is recorded"
    r = run_cli(['-m', 'hydra/launcher=certpl_local', 'optimizer.lr=1e30,0.03'] + TINY, tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    line = [l for l in r.stderr.splitlines() if l.strip()][-1]
    assert line.startswith('certpl_train: error: job #0 (') and '): the training loss is ' in line and 'lower the learning rate (optimizer.lr=' in line, line
    assert sum(l.startswith('certpl_train:') for l in r.stderr.splitlines()) == 1  # said once, by the sweep
    runs = MlflowClient(f'sqlite:///{tmp_path}/mlflow.db').search_runs(['1'])
    assert sorted((r.data.params['optimizer.lr'], r.info.status) for r in runs) == [('0.03', 'FINISHED'), ('1e+30', 'FAILED')]

def test_unwritable_outputs_are_one_line_before_training(tmp_path):
    (tmp_path/'file').write_text('not a folder')
    bad = tmp_path/'file'/'sub'
    cases = [(['exp.checkpoint_every=5', f'exp.checkpoint_dir={bad}'], {}, f'exp.checkpoint_dir={bad} is not writable'),
             ([], {'MLFLOW_TRACKING_URI': f'sqlite:///{bad}/mlflow.db'}, f'{bad} (the folder of MLFLOW_TRACKING_URI=sqlite:///{bad}/mlflow.db) is not writable ({bad.parent} is a file'),
             ([f'exp.mlflow_uri=sqlite:///{bad}/m.db'], {}, f'(the folder of exp.mlflow_uri=sqlite:///{bad}/m.db) is not writable'),
             ([f'exp.mlflow_uri=file://{tmp_path}'], {}, "is a folder for MLflow's file store, which MLflow 3 refuses"),
             ([f'hydra.run.dir={bad}'], {}, f'hydra.run.dir={bad} is not writable'),
             (['exp.resume=nope'], {}, 'exp.resume=nope is neither a checkpoint file nor a run id')]
    for (args, env, msg), (code, err) in zip(cases, run_cli_cases([(TINY + a, e) for a, e, _ in cases], tmp_path)):
        assert msg in one_error_line(code, err), (args, env)
    assert n_runs(tmp_path) == 0 and not (tmp_path/'checkpoints').exists()

def test_launcher_presets_compose(tmp_path):
    r = subprocess.run([str(BIN/'certpl_train'), '--cfg', 'hydra', 'hydra/launcher=certpl_slurm', 'hydra.launcher.partition=gpu'],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher' in r.stdout
    assert 'partition: gpu' in r.stdout and 'gpus_per_node: 1' in r.stdout

def test_two_job_sweep_in_parallel_processes(tmp_path):
    "Two jobs at once, logging to one new SQLite store and one study experiment: neither trips over the other; `certpl_study` sums up"
    # Session 4's CI once found one of these two runs (1 run in 3): MLflow's `set_experiment`, losing the race to create
    # the study's experiment, left it inactive and the run went to `Default` (04_callback.mlflow forces that race)
    r = run_cli(['-m', 'hydra/launcher=certpl_local', 'exp.study=par', 'model.threshold=0.6,0.7'] + TINY, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'Joblib.Parallel(n_jobs=2' in r.stdout  # Hydra's joblib launcher ran them
    c = MlflowClient(f'sqlite:///{tmp_path}/mlflow.db')
    runs = c.search_runs([c.get_experiment_by_name('study/par').experiment_id])
    assert sorted(r.data.params['model.threshold'] for r in runs) == ['0.6', '0.7']
    assert all(r.info.status == 'FINISHED' for r in runs)
    s = subprocess.run([str(BIN/'certpl_study'), 'par', '--tracking-uri', f'sqlite:///{tmp_path}/mlflow.db'], cwd=tmp_path,
                       capture_output=True, text=True)
    assert s.returncode == 0, s.stderr[-2000:]
    assert 'model.threshold=0.6' in s.stdout and 'model.threshold=0.7' in s.stdout and '1/1' in s.stdout and 'summary run:' in s.stdout
    bad = subprocess.run([str(BIN/'certpl_study'), 'nope', '--tracking-uri', f'sqlite:///{tmp_path}/mlflow.db'], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [f"certpl_study: error: no study 'nope' in sqlite:///{tmp_path}/mlflow.db (no MLflow experiment study/nope)"]

def failed_line(r):
    "The last line on stderr of a run that failed (status 1) without a traceback"
    assert r.returncode == 1 and 'Traceback' not in r.stderr, (r.returncode, r.stderr[-2000:])
    return [l for l in r.stderr.splitlines() if l.strip()][-1]

def small_disk(folder, size):
    "Mount a tmpfs of `size` on `folder` (a full disk, ENOSPC); None where this machine does not allow mounting"
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(folder)], capture_output=True)
    return folder if r.returncode == 0 else None

def test_a_full_disk_keeps_the_last_checkpoint_and_fails_the_run_with_one_line(tmp_path):
    """The disk fills while a checkpoint is written (a 5 MB tmpfs: the first ~3.1 MB checkpoint fits, the second's
    temporary file does not), or while MLflow writes the model artifact (a 64 KB tmpfs for the artifacts): the run
    ends FAILED, one line names the file, the previous checkpoint is whole and resumes, no temporary file is left.
    Without mounting, a file-size limit (`ulimit -f`, EFBIG) plays the full disk for the checkpoint"""
    import resource
    ck = small_disk(tmp_path/'ckpt', '5m')
    limit = None if ck else (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000)))
    e = {**os.environ, 'MLFLOW_TRACKING_URI': f'sqlite:///{tmp_path}/mlflow.db'}
    try:
        r = subprocess.run([str(BIN/'certpl_train'), *JOB, 'exp.checkpoint_every=2', f'exp.checkpoint_dir={tmp_path/"ckpt"}'],
                           cwd=tmp_path, env=e, capture_output=True, text=True, timeout=600, preexec_fn=limit)
        line = failed_line(r)
        assert line.startswith(f'certpl_train: error: cannot write the checkpoint {tmp_path/"ckpt"}/') and 'free space' in line, line
        files = os.listdir(tmp_path/'ckpt')
        assert not [f for f in files if f.endswith('.tmp')], files  # nothing half-written
        (run,) = MlflowClient(f'sqlite:///{tmp_path}/mlflow.db').search_runs(['1'])
        assert run.info.status == 'FAILED'
        if ck:  # the previous checkpoint is whole: the run resumes from it once there is space
            assert 'the previous checkpoint' in line and files == [f'{run.info.run_id}.pt'], (line, files)
            subprocess.run(['mount', '-o', 'remount,size=64m', str(ck)], check=True)
            r2 = run_cli([f'exp.resume={run.info.run_id}'], tmp_path)
            assert r2.returncode == 0, r2.stderr[-2000:]
            assert MlflowClient(f'sqlite:///{tmp_path}/mlflow.db').get_run(run.info.run_id).info.status == 'FINISHED'
    finally:
        if ck: subprocess.run(['umount', str(ck)])
    art = small_disk(tmp_path/'art'/'mlruns', '64k')
    if art is None: return
    try:  # the artifacts of a new store go to ./mlruns beside it: here a 64 KB disk, too small for the model
        (tmp_path/'art'/'outputs').mkdir()
        r = run_cli(TINY, tmp_path/'art')
        line = failed_line(r)
        assert line.startswith('certpl_train: error: cannot write ') and '(No space left on device)' in line, line
        (run,) = MlflowClient(f'sqlite:///{tmp_path}/art/mlflow.db').search_runs(['1'])
        assert run.info.status == 'FAILED'
    finally: subprocess.run(['umount', str(art)])
