"""N runs at once into one MLflow store: are they all recorded, in the experiment they were meant for? (issue 26)

Three ways to start the N runs, each repeated `--rounds` times in a fresh folder:
  procs     N plain `certpl_train` processes started together (a tiny digits job each)
  launcher  one `certpl_train -m` sweep of N jobs through Hydra's joblib launcher (`hydra/launcher=certpl_local`)
  start     N Python processes that open an `MLflowRun` at the same instant (a shared start time), log the test
            accuracy and end: the tracking part of a run alone, so the experiment's creation really happens at once
Stores: `new` (nothing there), `existing` (a store with tables and another experiment, the study's not created yet),
`server` (an `mlflow server` over SQLite, started here). `--code nolock` takes certpl's store lock away (as on a
tracking server, where no file lock serialises the runs); `--code session4` also makes the experiment with plain
`mlflow.set_experiment` and starts the run by name: the code of session 4, when CI lost a run. Both in a store made
beforehand (as the sweep's `prepare_store` does).

Prints, per round: runs in the study's experiment, runs elsewhere, FINISHED runs, runs with test_accuracy, exit codes.
Usage: python bench/store_stress.py --how start --store new --code session4 --n 2 4 8 --rounds 20
"""
import argparse, json, os, signal, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
TINY = ['data.steps_per_epoch=3', 'exp.max_epochs=1', 'model.wrn.depth=10', 'model.wrn.widen_factor=1',
        'data.batch_size.train=8', 'model.mu=2', 'exp.log_artifacts=false']
STUDY = 'stress'

START = r'''
import sys, time
import mlflow
import certpl.callback.mlflow as m
from contextlib import nullcontext
if sys.argv[3] != 'today': m.store_lock, m.open_store = (lambda uri=None: nullcontext()), (lambda uri=None: None)  # no lock
if sys.argv[3] == 'session4':  # the code of session 4 (before 1a0cc92): plain mlflow.set_experiment, started by name
    m.set_experiment = lambda name, tries=3: mlflow.set_experiment(name)
    start = mlflow.start_run; mlflow.start_run = lambda run_id=None, experiment_id=None: start(run_id=run_id)
t0 = float(sys.argv[1])
while time.time() < t0: time.sleep(0.0005)
with m.MLflowRun(f'study/{sys.argv[2]}', probe=False) as run: run.log_metrics({'test_accuracy': 0.5})
'''

def serve(d:Path, port:int):
    env = {**os.environ, 'MLFLOW_SERVER_ENABLE_JOB_EXECUTION': 'false'}
    p = subprocess.Popen([str(BIN/'mlflow'), 'server', '--host', '127.0.0.1', '--port', str(port), '--backend-store-uri',
                          f'sqlite:///{d}/server.db', '--default-artifact-root', str(d/'artifacts'), '--workers', '1'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d, env=env, start_new_session=True)
    uri = f'http://127.0.0.1:{port}'
    for _ in range(240):
        try: urllib.request.urlopen(uri + '/health', timeout=1); return p, uri
        except Exception: time.sleep(0.5)
    raise SystemExit('mlflow server did not start')

def count(uri:str)->dict:
    from mlflow.tracking import MlflowClient
    c = MlflowClient(uri)
    exps = {e.experiment_id: e.name for e in c.search_experiments()}
    runs = c.search_runs(list(exps), max_results=10_000)
    mine = [r for r in runs if exps[r.info.experiment_id] == f'study/{STUDY}']
    return dict(study=len(mine), elsewhere=sum(exps[r.info.experiment_id] != f'study/{STUDY}' and not r.data.tags.get('earlier')
                                               for r in runs),
                finished=sum(r.info.status == 'FINISHED' for r in mine),
                with_accuracy=sum('test_accuracy' in r.data.metrics for r in mine),
                where=sorted({exps[r.info.experiment_id] for r in runs if not r.data.tags.get('earlier')}))

def one_round(how:str, n:int, uri:str, d:Path, code:str)->dict:
    env = {**os.environ, 'MLFLOW_TRACKING_URI': uri, 'OMP_NUM_THREADS': '1'}
    if code != 'today':
        from mlflow.tracking import MlflowClient
        MlflowClient(uri).search_experiments(max_results=1)  # the store's tables, made before the processes start
    if how == 'start':
        t0 = time.time() + 8  # every process has imported by then
        ps = [subprocess.Popen([sys.executable, '-c', START, str(t0), STUDY, code], cwd=d, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    elif how == 'procs':
        ps = [subprocess.Popen([str(BIN/'certpl_train'), *TINY, f'exp.study={STUDY}', f'exp.seed={i}', f'hydra.run.dir={d}/out{i}'],
                               cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(n)]
    else:
        ps = [subprocess.Popen([str(BIN/'certpl_train'), '-m', 'hydra/launcher=certpl_local', f'hydra.launcher.n_jobs={n}',
                                *TINY, f'exp.study={STUDY}', 'exp.seed=' + ','.join(map(str, range(n)))],
                               cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)]
    codes = []
    for p in ps:
        _, err = p.communicate(timeout=1800); codes.append(p.returncode)
        if p.returncode: print('   a process failed:', err.strip().splitlines()[-1:] if err.strip() else '(no stderr)', flush=True)
    return dict(count(uri), codes=codes)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--how', choices=['start', 'procs', 'launcher'], default='start')
    ap.add_argument('--store', choices=['new', 'existing', 'server'], default='new')
    ap.add_argument('--n', type=int, nargs='+', default=[2, 4, 8])
    ap.add_argument('--rounds', type=int, default=10)
    ap.add_argument('--code', choices=['today', 'nolock', 'session4'], default='today', help="how='start' only")
    a = ap.parse_args()
    print(f"how={a.how} store={a.store} code={a.code}", flush=True)
    for n in a.n:
        lost = 0; t = time.time()
        for i in range(a.rounds):
            with tempfile.TemporaryDirectory() as d:
                d = Path(d); server = None
                if a.store == 'server':
                    import socket
                    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
                    server, uri = serve(d, port)
                else: uri = f'sqlite:///{d}/mlflow.db'
                if a.store == 'existing':
                    from mlflow.tracking import MlflowClient
                    c = MlflowClient(uri); e = c.create_experiment('study/earlier')
                    c.set_terminated(c.create_run(e, tags={'earlier': '1'}).info.run_id)
                try: r = one_round(a.how, n, uri, d, a.code)
                finally:
                    if server: os.killpg(server.pid, signal.SIGKILL); server.wait()
                missing = n - r['study']; lost += missing > 0
                print(f"N={n} round {i + 1}: {json.dumps(r)}" + (f"  <-- {missing} of {n} runs not in study/{STUDY}" if missing else ''), flush=True)
        print(f"N={n}: {lost} of {a.rounds} rounds lost a run ({time.time() - t:.0f} s)", flush=True)

if __name__ == '__main__': main()
