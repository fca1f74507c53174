"""What the per-image statistics cost (issue 25, part 2): the step time of `model.multi_strategy=true
exp.log_ul_w_statistics=image` on a table epoch against the same configuration with the statistics off. The policy
is PECertainty with T=4 head-only MC samples (after-BN dropout 0.3, `model.mc_reuse_features=true`), so its own MC
passes are there in both; what differs is every strategy's scores, counts, AUROC scores and table rows (and the
eval-mode MC samples the table's MC rows are made of; also measured without them, `exp.log_statistics_eval_mc=false`). Also the time to make the epoch's table once
(`StrategyStats.frame` and parquet), and the table's size. Interleaved rounds, median of the steps.

Usage: `python bench/stats_overhead.py [--models 10-1,28-2] [--steps 12] [--rounds 2]`. Targets: <= 10% at WRN-10-1,
<= 3% at WRN-28-2."""
import argparse, io, platform, statistics, time, sys, os
import torch
sys.path.insert(0, os.path.dirname(__file__))
from host_overhead import StepTimer
from certpl.config import default_config, resolve_config
from certpl.core import ImageSet, SourceData
from certpl.learner import build_learner, tune_malloc

PE = {'model.certainty_strategy': 'PECertainty', 'model.T': 4, 'model.drop_type': 'AfterBNDropout', 'model.drop_rate': 0.3,
      'model.mc_reuse_features': True, 'model.threshold': 0.771}
STATS = {'model.multi_strategy': True, 'exp.log_ul_w_statistics': 'image', 'exp.log_statistics_freq': 1}

def learner(src, model, stats, steps, eval_mc=True):
    d, w = map(int, model.split('-'))
    cfg = resolve_config(default_config(**{'data.steps_per_epoch': steps + 1, 'exp.max_epochs': 1, 'exp.logging': False,
        'exp.checkpoint': False, 'data.n_labelled': 250, 'model.wrn.depth': d, 'model.wrn.widen_factor': w,
        'data.batch_size.train': 64, 'model.mu': 7, **PE, **(STATS if stats else {}),
        'exp.log_statistics_eval_mc': eval_mc}), src.name)
    torch.manual_seed(0)
    return build_learner(cfg, source=src, cbs=[StepTimer()])

def fit(learn):
    learn.dls.train.reset()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.03)
    return learn.step_timer.times

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--models', default='10-1,28-2'); p.add_argument('--steps', type=int, default=12); p.add_argument('--rounds', type=int, default=2)
    a = p.parse_args()
    tune_malloc()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    g = torch.Generator().manual_seed(0)
    mk = lambda n: ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10)
    src = SourceData('random', mk(5000), mk(500), [str(i) for i in range(10)], (0.5,) * 3, (0.25,) * 3)
    for model in a.models.split(','):
        on, off, bn = learner(src, model, True, a.steps), learner(src, model, False, a.steps), learner(src, model, True, a.steps, eval_mc=False)
        t_on, t_off, t_bn = [], [], []
        for _ in range(a.rounds): t_on += fit(on); t_off += fit(off); t_bn += fit(bn)
        m_on, m_off, m_bn = statistics.median(t_on), statistics.median(t_off), statistics.median(t_bn)
        print(f"WRN-{model}: without the eval-mode MC rows (exp.log_statistics_eval_mc=false) {m_bn * 1e3:.1f} ms/step: "
              f"{(m_bn / m_off - 1) * 100:+.1f}% over statistics off")
        ss = on.strategy_stats
        t = time.perf_counter(); f = ss.frame('weak'); pq = f.to_parquet(index=False); t_tab = time.perf_counter() - t
        print(f"WRN-{model}, B=64, mu=7: statistics off {m_off * 1e3:.1f} ms/step, on {m_on * 1e3:.1f} ms/step: "
              f"{(m_on / m_off - 1) * 100:+.1f}% ({len(t_on)} steps each, {a.rounds} interleaved rounds); the table of "
              f"{len(f):,} rows ({f.strategy.nunique()} strategies) made in {t_tab:.2f} s once an epoch, {len(pq) / 2**20:.2f} MiB as parquet "
              f"({t_tab / a.steps * 1e3:.1f} ms a step spread over the epoch)")
