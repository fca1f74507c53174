"""Write the study's results the docs read (nbs/results/): per study its runs, table, paired comparison and
per-epoch histories, and one seed's per-image statistics for the analysis notebooks. A few MB in all.

    python bench/study/export_results.py --tracking-uri sqlite:///OUT_DIR/mlflow.db [--out nbs/results]

OUT_DIR is the folder `bench/study/run.sh OUT_DIR` trained into.
"""
import argparse
from pathlib import Path
import pandas as pd
from certpl.study import study_runs, aggregate, paired, study_histories, HISTORY_KEYS
from certpl.callback.mlflow import RunReader

STUDIES = ('pilot', 'rank40', 'rank250', 'outcome40')
def export_study(name, uri, out:Path):
    "Runs, table, paired differences and per-epoch histories of study `name`; None when the store has no such study"
    try: df = study_runs(name, uri)
    except ValueError as e: print(f"skip {name}: {e}"); return None
    df.to_csv(out/f'study_{name}_runs.csv', index=False)
    aggregate(df).to_csv(out/f'study_{name}_table.csv')
    pr = paired(df)
    if len(pr): pr.to_csv(out/f'study_{name}_paired.csv')
    study_histories(df, uri).to_csv(out/f'study_{name}_history.csv', index=False, float_format='%.5g')
    print(f"{name}: {len(df)} runs, {df.status.eq('FINISHED').sum()} finished")
    return df

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
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    runs = {s: export_study(s, a.tracking_uri, a.out) for s in STUDIES}
    export_statistics(runs['rank40'], a.tracking_uri, a.out)
