"""`bench/study/export_results.py`: a study exported from one store, then runs from another store added to it.
The stores are real MLflow SQLite stores holding what `certpl_train` logs for a study's run (parameters, per-epoch
metrics, test accuracy), written with MLflow's client: training into them is tested in `nbs/07_study.ipynb`."""
import contextlib, io, runpy, sys
from types import SimpleNamespace
from unittest import mock
from pathlib import Path
import pandas as pd
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric, Param

ROOT = Path(__file__).resolve().parents[1]

def store(path, runs):
    "A store at `path` with study outcome40's `runs` (dicts of parameters), each with 3 epochs of metrics; its URI"
    uri = f'sqlite:///{path}/mlflow.db'
    c = MlflowClient(uri)
    exp = c.create_experiment('study/outcome40', artifact_location=(path/'artifacts').as_uri())
    for i, params in enumerate(runs):
        r = c.create_run(exp)
        acc = 0.3 + 0.1 * i + 0.01 * int(params['exp.seed'])
        c.log_batch(r.info.run_id, params=[Param(k, v) for k, v in params.items()], metrics=[
            Metric(k, v * (e + 1) / 3, 0, e) for e in range(3)
            for k, v in (('accuracy', acc), ('pl_acc', 0.8), ('pl_acc_all', 0.5), ('mask_rate', 0.6))] + [Metric('test_accuracy', acc, 0, 0)])
        c.set_terminated(r.info.run_id)
    return uri

def export(uri, out, *extra):
    """Run the script as `python bench/study/export_results.py ...` would, in this process (its imports are paid once):
    its exit status (`returncode`) and what it printed (`stdout`, `stderr`; a `SystemExit` message as Python prints it)"""
    script = ROOT/'bench/study/export_results.py'
    out_, err_, code = io.StringIO(), io.StringIO(), 0
    with mock.patch.object(sys, 'argv', [str(script), '--tracking-uri', uri, '--out', str(out), *extra]), \
         contextlib.redirect_stdout(out_), contextlib.redirect_stderr(err_):
        try: runpy.run_path(str(script), run_name='__main__')
        except SystemExit as e:
            if e.code is None or isinstance(e.code, int): code = e.code or 0
            else: code = 1; print(e.code, file=sys.stderr)
    return SimpleNamespace(returncode=code, stdout=out_.getvalue(), stderr=err_.getvalue())

def runs_of(out): return pd.read_csv(out/'study_outcome40_runs.csv', dtype={'seed': str})

def test_runs_from_another_store_join_the_exported_study(tmp_path):
    run = lambda seed, strategy, mu='2': {'exp.seed': seed, 'model.certainty_strategy': strategy, 'model.threshold': '0.5', 'model.mu': mu}
    a, b, c = (tmp_path/n for n in 'abc')
    for d in (a, b, c): d.mkdir()
    ua = store(a, [run('0', 'SoftMax'), run('0', 'Entropy')])
    ub = store(b, [run('1', 'Entropy')])  # nothing varies in this store
    out = tmp_path/'results'
    r = export(ua, out)
    assert r.returncode == 0, r.stderr[-3000:]
    first = runs_of(out)
    assert sorted(first.config) == ['model.certainty_strategy=Entropy', 'model.certainty_strategy=SoftMax']
    for _ in range(2):  # adding the same store twice adds its run once
        r = export(ub, out, '--add')
        assert r.returncode == 0, r.stderr[-3000:]
        df = runs_of(out)
        assert len(df) == 3 and set(first.run_id) < set(df.run_id)
        new = df[~df.run_id.isin(first.run_id)].iloc[0]
        assert (new.config, new.seed, new.status) == ('model.certainty_strategy=Entropy', '1', 'FINISHED')
        assert abs(new.test_accuracy - 0.31) < 1e-9
        hist = pd.read_csv(out/'study_outcome40_history.csv', dtype={'seed': str})
        assert set(hist.run_id) == set(df.run_id) and len(hist) == 9
        assert hist[hist.run_id == new.run_id].accuracy.round(5).tolist() == [round(0.31 * e / 3, 5) for e in (1, 2, 3)]
        table = pd.read_csv(out/'study_outcome40_table.csv', index_col='config')
        ent = df[df.config == 'model.certainty_strategy=Entropy'].test_accuracy
        assert table.loc['model.certainty_strategy=Entropy', 'finished'] == '2/2'
        assert abs(table.loc['model.certainty_strategy=Entropy', 'test_accuracy'] - ent.mean()) < 1e-9
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    # a store whose runs differ in a key the exported study does not name cannot be added: refused, nothing written
    uc = store(c, [run('2', 'SoftMax', '1'), run('2', 'SoftMax', '2')])
    r = export(uc, out, '--add')
    assert r.returncode != 0 and "['model.mu']" in r.stderr and 'nothing written' in r.stderr, r.stderr[-3000:]
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
