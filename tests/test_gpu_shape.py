"""The training step stays on the device: no call that would make the host wait for a GPU, and at most 2 host-to-device
copies a step for the data, counted on the CPU by `certpl.test_utils.SyncCounter` (see 09_test_utils).

A step is counted from the first callback's `before_batch` to the last callback's `after_batch` (forward, loss,
policy, backward, optimiser, EMA, callbacks). fastai's own loop makes 1 sync a step (its `Recorder` moves the
smoothed loss to the CPU), so every configuration must make exactly that one, and no copy."""
import pytest, torch
from certpl.config import default_config, resolve_config
from certpl.learner import build_learner
from certpl.test_utils import StepSyncs, SyncCounter

PE = {'model.certainty_strategy': 'PECertainty', 'model.T': 10, 'model.drop_type': 'AfterBNDropout', 'model.drop_rate': 0.3}
CONFIGS = {
    'vanilla': {},
    'pe': PE,
    'pe_reuse': {**PE, 'model.mc_reuse_features': True, 'model.threshold': 0.771},
    'pe_dropout': {**PE, 'model.drop_type': 'Dropout'},  # dropout in every block: T full passes
    'density': {'model.features_gmm': True, 'model.spectral_norm': True},
    'density_and': {'model.features_gmm': True, 'model.spectral_norm': True, 'model.mask_operation': 'and',
                    'model.dynamic_log_prob_threshold': False, 'model.log_prob_threshold': -50.0},
    'flexmatch': {'model.selection': 'flexmatch'},
    'freematch': {'model.selection': 'freematch'},
    'freematch_fairness': {'model.selection': 'freematch', 'model.fairness': 0.01},
    'softmatch': {'model.selection': 'softmatch'},
    'adamatch': {'model.selection': 'adamatch'},
    'dist_align': {'model.dist_align': True},
    'bald': {**PE, 'model.certainty_strategy': 'BALDCertainty'},
    'multi_strategy_image': {**PE, 'model.T': 4, 'model.certainty_strategy': 'SoftMax', 'model.multi_strategy': True,
                             'exp.log_ul_w_statistics': 'image', 'exp.log_ul_s_statistics': 'batch', 'exp.log_statistics_freq': 1},
    'bf16': {'exp.precision': 'bf16'},
}

def learner(over, steps=4):
    cfg = resolve_config(default_config(**{'data.steps_per_epoch': steps, 'exp.max_epochs': 1, 'exp.logging': False,
                                           'exp.checkpoint': False, 'data.n_labelled': 50, 'data.batch_size.train': 8,
                                           'model.mu': 2, 'exp.seed': 0, **over}))
    torch.manual_seed(0)
    return build_learner(cfg, cbs=[StepSyncs()])

@pytest.mark.parametrize('name', list(CONFIGS))
def test_no_sync_in_the_step(name):
    learn = learner(CONFIGS[name])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.03)
    steps = learn.step_syncs.steps
    assert len(steps) == 4
    for i, c in enumerate(steps[1:], 1):  # the first step also reads what is read once a fit (the EMA's counter, the score range)
        certpl = {k: v for k, v in c.where.items() if 'fastai/' not in k}
        assert not certpl, f'{name}, step {i}: {certpl}'
        assert (c.syncs, c.copies) == (1, 0), f'{name}, step {i}: {dict(c.where)}'

def test_first_step_reads_little():
    "What the first step reads once a fit: the EMA's step counter, and a bounded selection's first score range"
    for name, most in (('vanilla', 2), ('softmatch', 3)):
        learn = learner(CONFIGS[name])
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.03)
        assert learn.step_syncs.steps[0].syncs <= most, dict(learn.step_syncs.steps[0].where)

@pytest.mark.parametrize('name', ['vanilla', 'pe'])
def test_data_stream_one_copy_a_step(name):
    "Images, labels, ids and every augmentation draw reach the training device in one copy (the target is at most 2)"
    dl = learner(CONFIGS[name]).dls.train
    dl._next()  # the first batch also copies the normalisation constants, once
    for _ in range(3):
        with SyncCounter() as c: dl._next()
        assert c.copies == 1, dict(c.where)

def test_a_sync_added_to_the_step_is_caught():
    "The check can fail: a callback that reads the loss every step is counted"
    from fastai.callback.core import Callback
    class ReadsLoss(Callback):
        def after_loss(self): self.seen = float(self.learn.loss)
    learn = learner({}); learn.add_cb(ReadsLoss())
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.03)
    assert all(c.syncs == 2 for c in learn.step_syncs.steps[1:])
    assert any('__float__' in k and 'test_gpu_shape' in k for k in learn.step_syncs.steps[1].where)
