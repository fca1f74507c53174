"""Fixed against adaptive pseudo-label selection, with softmax and with an uncertainty score, on Fashion-MNIST.

Every run has the same labels, seed, model and step budget; only `model.selection` and `model.certainty_strategy`
change. Printed per run: EMA test accuracy, and over the last epoch the mask rate (mean weight), the precision of
the kept pseudo-labels (weighted by the mask, against the hidden labels) and their recall (the share of right
pseudo-labels that were kept), plus wall time. Needs Debian's
dataset-fashion-mnist (or the idx files under data.root).

Usage: python bench/selection.py [--n_labelled 40] [--steps 50] [--epochs 4] [--depth 10] [--strategies SoftMax,Entropy]
                                 [--selections fixed,flexmatch,freematch,softmatch,adamatch]
MC strategies get T=10 after-BN dropout passes (dropout 0.3) when chosen. Each strategy's threshold is matched to
softmax 0.95: the score it gives a prediction with max probability 0.95 and the rest spread evenly (Entropy: 0.7645)."""
import argparse, time
import torch
from certpl.config import default_config
from certpl.learner import tune_malloc
from certpl.train import train
from certpl.uncertainty import get_strategy

def matched_threshold(strategy:str, p_max:float=0.95, n_classes:int=10)->float:
    "The score `strategy` gives a prediction with max probability `p_max` and the rest spread evenly"
    p = torch.full((1, n_classes), (1 - p_max) / (n_classes - 1)); p[0, 0] = p_max
    st = get_strategy(strategy)
    return float(st(p[None].expand(2, 1, n_classes) if st.mc else p)[0])

if __name__ == '__main__':
    tune_malloc()
    p = argparse.ArgumentParser()
    p.add_argument('--n_labelled', type=int, default=40); p.add_argument('--steps', type=int, default=50)
    p.add_argument('--epochs', type=int, default=4); p.add_argument('--seed', type=int, default=0)
    p.add_argument('--depth', type=int, default=10)
    p.add_argument('--strategies', default='SoftMax,Entropy')
    p.add_argument('--selections', default='fixed,flexmatch,freematch,softmatch,adamatch')
    a = p.parse_args()
    print(f"Fashion-MNIST, {a.n_labelled} labels, {a.steps * a.epochs} steps of B=16, mu=7, WRN-{a.depth}-2, seed {a.seed}")
    print('thresholds: ' + ', '.join(f'{st} {matched_threshold(st):.4f}' for st in a.strategies.split(',')))
    print(f"{'strategy':<14} {'selection':<10} {'test acc':>8} {'mask rate':>9} {'PL precision':>12} {'PL recall':>9} {'wall s':>7}")
    for strategy in a.strategies.split(','):
        for selection in a.selections.split(','):
            over = {'data.source': 'fashion_mnist', 'data.n_labelled': a.n_labelled, 'data.steps_per_epoch': a.steps,
                    'exp.max_epochs': a.epochs, 'exp.seed': a.seed, 'data.batch_size.train': 16, 'model.ema_decay': 0.99,
                    'model.wrn.bn_momentum': 0.01, 'exp.logging': False, 'model.certainty_strategy': strategy,
                    'model.wrn.depth': a.depth, 'model.selection': selection, 'model.threshold': round(matched_threshold(strategy), 4)}
            if strategy in ('MeanSoftmax', 'PECertainty', 'BALDCertainty'):
                over.update({'model.T': 10, 'model.drop_type': 'AfterBNDropout', 'model.drop_rate': 0.3})
            t = time.time()
            res = train(default_config(**over), show_progress=False)
            rec = res['learn'].recorder
            names = list(rec.metric_names[1:-1])
            last = rec.values[-1]
            mask, prec, acc_all = (last[names.index(k)] for k in ('mask_rate', 'pl_acc', 'pl_acc_all'))
            recall = mask * prec / acc_all  # kept and right / right (every unlabelled image's label is known here)
            print(f"{strategy:<14} {selection:<10} {res['test_accuracy']:8.4f} {mask:9.3f} {prec:12.4f} {recall:9.4f} "
                  f"{time.time() - t:7.0f}", flush=True)
