"""Write the study's results the docs read (nbs/results/): per study its runs, table, paired comparison and
per-epoch histories, and one seed's per-image statistics for the analysis notebooks. A few MB in all.

    python bench/study/export_results.py --tracking-uri sqlite:///OUT_DIR/mlflow.db [--out nbs/results] [--add]

OUT_DIR is the folder `bench/study/run.sh OUT_DIR` trained into. With --add, the store's runs are added to the studies
already exported in --out (runs made on another machine, or after the store that made the rest was lost): each
configuration is named by the exported study's keys, and a run in both is taken from the store. Studies the store does
not have, and the per-image statistics, are left as they are. A store whose runs vary in a key the exported study does
not name is refused before anything is written. Keys that are constant within each part are not compared (the export
keeps only the keys that vary): add runs made with the same settings, as `bench/study/run.sh` makes them.
"""
import argparse
from pathlib import Path
import pandas as pd
from certpl.study import study_runs, aggregate, paired, study_histories, HISTORY_KEYS
from certpl.callback.mlflow import RunReader

STUDIES = ('pilot', 'rank40', 'rank250', 'outcome40', 'outcome40x4', 'outcome250')
def exported(name, out:Path):
    "`(runs, histories)` of study `name` as exported in `out` (None, None: not exported)"
    f = out/f'study_{name}_runs.csv'
    if not f.exists(): return None, None
    cols = list(pd.read_csv(f, nrows=0).columns)
    keys = cols[cols.index('config') + 1:cols.index('test_accuracy')]
    df = pd.read_csv(f)
    df[keys + ['seed']] = pd.read_csv(f, dtype=str, keep_default_na=False)[keys + ['seed']]  # values as logged ('None' too)
    df.attrs['vary'] = keys
    return df, pd.read_csv(out/f'study_{name}_history.csv', dtype={'seed': str})

def collect(name, uri, out:Path, add:bool=False):
    "`(runs, histories)` of study `name` in the store, added to those exported in `out` when `add`; None when the store has no such study"
    old, old_hist = exported(name, out) if add else (None, None)
    try: df = study_runs(name, uri, keys=None if old is None else old.attrs['vary'])
    except ValueError as e: print(f"skip {name}: {e}"); return None
    if old is not None:
        extra = sorted(set(df.attrs['varies']) - set(old.attrs['vary']))
        if extra: raise SystemExit(f"{name}: the store's runs vary in {extra}, which the exported study does not name; nothing written")
    hist = study_histories(df, uri)
    if old is not None:
        print(f"{name}: adding {len(df)} runs to the {len(old)} exported")
        df = pd.concat([old[~old.run_id.isin(df.run_id)], df], ignore_index=True).sort_values(['config', 'seed'], ignore_index=True)
        hist = pd.concat([old_hist[~old_hist.run_id.isin(hist.run_id)], hist], ignore_index=True)
    return df, hist

def write_study(name, df:pd.DataFrame, hist:pd.DataFrame, out:Path):
    "Runs, table, paired differences and per-epoch histories of study `name`"
    df.to_csv(out/f'study_{name}_runs.csv', index=False)
    aggregate(df).to_csv(out/f'study_{name}_table.csv')
    pr = paired(df)
    if len(pr): pr.to_csv(out/f'study_{name}_paired.csv')
    hist.to_csv(out/f'study_{name}_history.csv', index=False, float_format='%.5g')
    print(f"{name}: {len(df)} runs, {df.status.eq('FINISHED').sum()} finished")

def export_statistics(df:pd.DataFrame, uri, out:Path, study='rank40', seed='0'):
    "Per-image statistics (weak views, every logged epoch) and the history of one run of `study` (`df`: its runs)"
    run = df[(df.seed == seed) & (df.status == 'FINISHED')].run_id.iloc[0]
    reader = RunReader(uri)
    stats = pd.concat(reader.tables(run, 'statistics', 'weak_epoch'), ignore_index=True)
    stats.to_csv(out/f'{study}_seed{seed}_weak.csv.gz', index=False, float_format='%.5g',
                 compression={'method': 'gzip', 'mtime': 0})  # no time stamp: the same statistics give the same file
    pd.DataFrame({k: reader.history(run, k) for k in HISTORY_KEYS + ('loss_x', 'loss_u')}).rename_axis('epoch').to_csv(
        out/f'{study}_seed{seed}_history.csv', float_format='%.5g')
    print(f"{study} seed {seed}: run {run}, {len(stats)} per-image rows")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--tracking-uri', required=True); p.add_argument('--out', default='nbs/results', type=Path)
    p.add_argument('--add', action='store_true', help="add the store's runs to the studies exported in --out")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    got = {s: collect(s, a.tracking_uri, a.out, a.add) for s in STUDIES}  # every study read and checked before any file is written
    for s, g in got.items():
        if g is not None: write_study(s, *g, a.out)
    if got['rank40'] is not None and not a.add: export_statistics(got['rank40'][0], a.tracking_uri, a.out)
