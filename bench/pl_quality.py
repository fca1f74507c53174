"""Pseudo-label quality of every certainty strategy on real data (Fashion-MNIST), against vanilla softmax.

One FixMatch run decides with vanilla softmax (>= 0.95 on the training pass) while every strategy scores the same weak
views: the single-pass strategies from the training pass's logits, the MC strategies from T after-BN dropout passes,
BALD's model confidence 1/(1+MI) on its own (BALDConf), the feature log-likelihood from running class Gaussians
(GMMLogLik). On the last epoch's unlabelled images it prints, per strategy: the AUROC and average precision of its
score for pseudo-label correctness (scikit-learn), and the precision of the kept pseudo-labels at equal coverage (each
strategy keeps the same share of images that vanilla softmax keeps, its highest-scored ones). Needs Debian's
dataset-fashion-mnist (or the idx files under data.root).

Usage: python bench/pl_quality.py [n_labelled] [steps_per_epoch] [max_epochs]"""
import sys, time
import numpy as np, pandas as pd, torch
from sklearn.metrics import roc_auc_score, average_precision_score
from certpl.config import default_config
from certpl.learner import tune_malloc
from certpl.train import train

if __name__ == '__main__':
    tune_malloc()
    n_labelled, steps, epochs = (int(a) for a in (sys.argv[1:] + ['100', '100', '8'][len(sys.argv) - 1:]))
    cfg = default_config(**{
        'data.source': 'fashion_mnist', 'data.n_labelled': n_labelled, 'data.steps_per_epoch': steps, 'exp.max_epochs': epochs,
        'data.batch_size.train': 16, 'model.ema_decay': 0.99, 'model.wrn.bn_momentum': 0.01, 'exp.logging': False,
        'model.certainty_strategy': 'SoftMax', 'model.threshold': 0.95, 'model.T': 10, 'model.drop_type': 'AfterBNDropout',
        'model.drop_rate': 0.3, 'model.multi_strategy': True, 'exp.log_ul_w_statistics': 'image', 'exp.log_statistics_freq': 1,
        # class Gaussians score the features; with 'and' and an always-passing threshold they do not change the decision
        'model.features_gmm': True, 'model.mask_operation': 'and', 'model.dynamic_log_prob_threshold': False,
        'model.log_prob_threshold': -1e30})
    t = time.time()
    res = train(cfg, show_progress=False)
    learn = res['learn']
    print(f"Fashion-MNIST, {n_labelled} labels, {steps * epochs} steps of B=16, mu=7, WRN-16-2, after-BN dropout 0.3, T=10: "
          f"{time.time() - t:.0f} s, EMA test accuracy {res['test_accuracy']:.4f}")
    tab = pd.DataFrame(learn.strategy_stats.rows, columns=['id', 'step', 'epoch', 'view', 'strategy', 'score', 'pseudo_label', 'correct', 'label'])
    tab = tab[tab.correct != '']; tab['correct'] = tab.correct.astype(int)
    soft = tab[tab.strategy == 'SoftMax']
    coverage = float((soft.score >= 0.95).mean())
    print(f"last epoch: {soft.shape[0]} unlabelled views; vanilla softmax keeps {coverage:.3f} of them "
          f"with precision {soft[soft.score >= 0.95].correct.mean():.4f}; pseudo-label accuracy of all: {soft.correct.mean():.4f}")
    print(f"{'strategy':<15} {'AUROC':>7} {'AP':>7} {'precision@coverage':>19}")
    for name, g in tab.groupby('strategy', sort=False):
        k = max(1, int(round(coverage * len(g))))
        top = g.sort_values('score', ascending=False, kind='stable').head(k)
        print(f"{name:<15} {roc_auc_score(g.correct, g.score):7.4f} {average_precision_score(g.correct, g.score):7.4f} {top.correct.mean():19.4f}")
