import os, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent

def run_cli(args, cwd, timeout=600, env=None):
    "Run `certpl_train` with `args` in `cwd`; returns the CompletedProcess"
    e = {**os.environ, 'MLFLOW_TRACKING_URI': f'sqlite:///{cwd}/mlflow.db', **(env or {})}
    return subprocess.run([str(BIN/'certpl_train'), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=e)

TINY = ['data.steps_per_epoch=3', 'exp.max_epochs=2', 'model.wrn.depth=10', 'model.wrn.widen_factor=1',
        'data.batch_size.train=8', 'model.mu=2']

@pytest.fixture
def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
    return port

def start_mlflow_server(tmp_path, port, *artifacts):
    """A real `mlflow server` on 127.0.0.1 with a SQLite backend (`artifacts`: its artifact options); returns (process, URI).
    Without MLflow's job execution (about eight Huey consumer processes the tests do not use), in its own process group:
    `stop_mlflow_server` ends it with every process it started"""
    env = {**os.environ, 'MLFLOW_SERVER_ENABLE_JOB_EXECUTION': 'false'}
    proc = subprocess.Popen([str(BIN/'mlflow'), 'server', '--host', '127.0.0.1', '--port', str(port),
                             '--backend-store-uri', f'sqlite:///{tmp_path}/server.db', *artifacts, '--workers', '1'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path, env=env, start_new_session=True)
    uri = f'http://127.0.0.1:{port}'
    for _ in range(240):
        try: urllib.request.urlopen(uri + '/health', timeout=1); break
        except Exception: time.sleep(0.5)
    else:
        stop_mlflow_server(proc); pytest.fail('mlflow server did not start in 2 minutes')
    return proc, uri

def stop_mlflow_server(proc):
    "End the server and every process it started (its process group)"
    import signal
    try: os.killpg(proc.pid, signal.SIGTERM); proc.wait(10)
    except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    except ProcessLookupError: pass
    try: os.killpg(proc.pid, signal.SIGKILL)  # workers that outlived the server
    except ProcessLookupError: pass

@pytest.fixture
def mlflow_server(tmp_path, free_port):
    "A real `mlflow server` with its artifacts in a local folder; yields its URI"
    proc, uri = start_mlflow_server(tmp_path, free_port, '--default-artifact-root', str(tmp_path/'artifacts'))
    yield uri
    stop_mlflow_server(proc)

_RUNNER = r'''
import json, os, sys, tempfile
import mlflow
from certpl.cli import main
results, base = [], dict(os.environ)
for args, env in json.loads(sys.argv[1]):
    os.environ.clear(); os.environ.update(base, **env); mlflow.set_tracking_uri(None)
    with tempfile.TemporaryFile('w+') as f:
        sys.stderr.flush(); saved = os.dup(2); os.dup2(f.fileno(), 2); code = 0
        try: main(args)
        except SystemExit as e: code = e.code
        finally: sys.stderr.flush(); os.dup2(saved, 2); os.close(saved)
        f.seek(0); results.append([code, f.read()])
print('@@' + json.dumps(results))
'''

def run_cli_cases(cases, cwd, timeout=600):
    """Run `certpl_train` once per `(args, env)` in `cases`, all in one Python process (the imports are paid once);
    returns `(exit status, everything written to stderr)` per case"""
    import json
    e = {**os.environ, 'MLFLOW_TRACKING_URI': f'sqlite:///{cwd}/mlflow.db'}
    r = subprocess.run([sys.executable, '-c', _RUNNER, json.dumps([[list(a), dict(v)] for a, v in cases])], cwd=cwd,
                       capture_output=True, text=True, timeout=timeout, env=e)
    assert r.returncode == 0 and '@@' in r.stdout, r.stderr[-3000:]
    return [tuple(x) for x in json.loads(r.stdout.split('@@')[-1])]
