"""`bench/study/export_results.py`: a study exported from one store, then runs from another store added to it"""
import subprocess, sys
from pathlib import Path
import pandas as pd
from conftest import run_cli, TINY

ROOT = Path(__file__).resolve().parents[1]

def export(uri, out, *extra):
    return subprocess.run([sys.executable, str(ROOT/'bench/study/export_results.py'), '--tracking-uri', uri, '--out', str(out), *extra],
                          capture_output=True, text=True, timeout=300)

def runs_of(out): return pd.read_csv(out/'study_outcome40_runs.csv', dtype={'seed': str})

def test_runs_from_another_store_join_the_exported_study(tmp_path):
    common = ['exp.study=outcome40', 'exp.log_artifacts=false', 'model.threshold=0.5'] + TINY
    a, b, c = (tmp_path/n for n in 'abc')
    for d in (a, b, c): d.mkdir()
    r = run_cli(['-m', 'exp.seed=0', 'model.certainty_strategy=SoftMax,Entropy'] + common, a)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_cli(['exp.seed=1', 'model.certainty_strategy=Entropy'] + common, b)  # nothing varies in this store
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path/'results'
    r = export(f'sqlite:///{a}/mlflow.db', out)
    assert r.returncode == 0, r.stderr[-3000:]
    first = runs_of(out)
    assert sorted(first.config) == ['model.certainty_strategy=Entropy', 'model.certainty_strategy=SoftMax']
    for _ in range(2):  # adding the same store twice adds its run once
        r = export(f'sqlite:///{b}/mlflow.db', out, '--add')
        assert r.returncode == 0, r.stderr[-3000:]
        df = runs_of(out)
        assert len(df) == 3 and set(first.run_id) < set(df.run_id)
        new = df[~df.run_id.isin(first.run_id)].iloc[0]
        assert (new.config, new.seed, new.status) == ('model.certainty_strategy=Entropy', '1', 'FINISHED')
        hist = pd.read_csv(out/'study_outcome40_history.csv')
        assert set(hist.run_id) == set(df.run_id)
        table = pd.read_csv(out/'study_outcome40_table.csv', index_col='config')
        ent = df[df.config == 'model.certainty_strategy=Entropy'].test_accuracy
        assert table.loc['model.certainty_strategy=Entropy', 'finished'] == '2/2'
        assert abs(table.loc['model.certainty_strategy=Entropy', 'test_accuracy'] - ent.mean()) < 1e-9
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    # a store whose runs differ in a key the exported study does not name cannot be added: refused, nothing written
    r = run_cli(['-m', 'exp.seed=2', 'model.certainty_strategy=SoftMax', 'model.mu=1,2'] + [x for x in common if x != 'model.mu=2'], c)
    assert r.returncode == 0, r.stderr[-3000:]
    r = export(f'sqlite:///{c}/mlflow.db', out, '--add')
    assert r.returncode != 0 and "['model.mu']" in r.stderr, r.stderr[-3000:]
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
