"Every key of the configuration, fuzzed through `certpl_train --validate`"
from conftest import run_cli_cases
from test_cli import one_error_line, n_runs

def config_keys():
    "Every leaf key of certpl's typed configuration, with its type (Optional unwrapped): generated, not typed by hand"
    import dataclasses, typing
    from certpl.config import Config
    def walk(cls, pre=''):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            t = hints[f.name]
            t = next((a for a in typing.get_args(t) if a is not type(None)), t) if typing.get_origin(t) is typing.Union else t
            if dataclasses.is_dataclass(t): yield from walk(t, pre + f.name + '.')
            else: yield pre + f.name, t
    return list(walk(Config))

BAD = {int: ['abc', '1.5', '-1', '0'], float: ['abc', 'nan', 'inf', '-1', '0'], bool: ['maybe', '2'], str: ["''", 'no_such_choice']}
# the combinations the checks depend on: a key is also fuzzed where it takes effect
CONTEXTS = {'model.log_prob_threshold': ['model.features_gmm=true', 'model.dynamic_log_prob_threshold=false'],
            'model.mask_operation': ['model.features_gmm=true'], 'model.flex_mapping': ['model.selection=flexmatch'],
            'model.n_sigma': ['model.selection=softmatch'], 'model.selection_ema': ['model.selection=freematch'],
            'model.fairness': ['model.selection=freematch'], 'model.conf_threshold': ['model.certainty_strategy=BALDCertainty', 'model.T=2', 'model.drop_rate=0.3'],
            'model.T': ['model.certainty_strategy=PECertainty', 'model.drop_rate=0.3'], 'model.top_k': ['model.certainty_strategy=TopK'],
            'model.drop_type': ['model.drop_rate=0.3'], 'model.choose_threshold_on_val_freq': ['model.choose_threshold_on_val=true'],
            'model.choose_threshold_on_val_acc': ['model.choose_threshold_on_val=true'], 'exp.early_stopping_patience': ['exp.early_stopping=true'],
            'exp.log_statistics_freq': ['model.multi_strategy=true'], 'data.val_ratio': ['model.choose_threshold_on_val=true']}

def test_every_configuration_key_fuzzed(tmp_path):
    """Every key of the configuration, alone and where it takes effect, with values of the wrong type, empty, negative,
    zero, NaN, infinite and unknown choices, through `certpl_train --validate` (no training): the value is either accepted
    (exit 0) or refused with exit 2 and one line naming the key, never a traceback; NaN, infinity, a wrong type and an
    unknown choice are always refused; nothing is left behind (no MLflow run, checkpoint or Hydra run folder)"""
    keys = dict(config_keys())
    assert len(keys) > 70 and 'model.wrn.depth' in keys and 'exp.study' in keys
    free = {'data.root', 'data.labelled_list', 'exp.mlflow_uri', 'exp.checkpoint_dir', 'exp.resume', 'exp.study', 'exp.device',
            'data.source'}  # free-form strings (paths, names); data.source's unknown value is checked by its own message
    cases = []
    for k, t in keys.items():
        for v in BAD[t]:
            for ctx in ([], CONTEXTS.get(k)) if k in CONTEXTS else ([],):
                cases.append((k, v, ctx))
    results = run_cli_cases([(['--validate', *ctx, f'{k}={v}'], {}) for k, v, ctx in cases], tmp_path, timeout=1200)
    found = []
    for (k, v, ctx), (code, err) in zip(cases, results):
        assert 'Traceback' not in err, (k, v, ctx, err[-2000:])
        assert code in (0, 2), (k, v, ctx, code, err[-500:])
        if code == 2:
            line = one_error_line(code, err)
            assert line.startswith('certpl_train: error:') and (k in line or k.rsplit('.', 1)[-1] in line), (k, v, ctx, line)
            found.append((k, v))
        must = v in ('nan', 'inf', 'abc', 'maybe', '2', '1.5') or (v == 'no_such_choice' and k not in free)
        if t is bool and v == '2': must = True
        assert code == 2 or not must, f"{k}={v} (with {ctx}) was accepted"
    assert n_runs(tmp_path) == 0 and not (tmp_path/'checkpoints').exists() and not (tmp_path/'outputs').exists()
    print(f"{len(cases)} cases, {len(found)} refused")

def path_kinds(d):
    "The kinds of path a user types, made in folder `d`: every value is a (kind, text) pair"
    (d/'afile').write_text('x\n'); (d/'afolder').mkdir(); (d/'a b ü').mkdir()
    return {'empty': "''", 'missing': str(d/'missing'/'x'), 'file': str(d/'afile'), 'folder': str(d/'afolder'),
            'under a file': str(d/'afile'/'x'), 'spaces and non-ASCII': f'"{d}/a b ü"', 'unquoted non-ASCII': f'{d}/ünï',
            'relative': 'rel/x'}

SCHEMES = ['', 'file://', 'sqlite:///', 'sqlite://', 'http://', 'ftp://', 's3://', 'gs://']
# the kinds each role refuses whatever else holds (None: anything may be accepted)
MUST = {'read folder': {'empty', 'missing', 'file', 'under a file', 'unquoted non-ASCII', 'relative'},
        'read file': {'empty', 'missing', 'folder', 'under a file', 'unquoted non-ASCII', 'relative'},
        'written folder': {'empty', 'file', 'under a file', 'unquoted non-ASCII'},
        'tracking uri': {'empty', 'file', 'under a file', 'unquoted non-ASCII'}}
ROLES = {'data.root': ('read folder', ['data.source=folder']), 'data.labelled_list': ('read file', []), 'exp.resume': ('read file', []),
         'exp.checkpoint_dir': ('written folder', ['exp.checkpoint_every=5']), 'exp.mlflow_uri': ('tracking uri', [])}
OTHER = {'exp.device': ["''", 'tpu', 'meta', 'cuda:7', 'cuda:abc', 'cuda:-1', 'CPU'],
         'model.certainty_strategy': ["''", ':', 'nomod:X', 'os:path', 'a:b:c', 'os:', ':X'],
         'model.selection': ["''", ':', 'nomod:X', 'os:path', 'os:'],
         'exp.study': ["''", "' '"], 'hydra/launcher': ['nope', "''"], 'hydra/sweeper': ['nope']}

def test_free_form_values_fuzzed(tmp_path):
    """Keys whose value certpl hands to another library (paths that torchvision, PIL or SQLite open, MLflow URIs,
    `module:Class` names, devices, Hydra's groups), with every kind of value a user types (empty, missing, a file
    where a folder is expected and the reverse, spaces and non-ASCII, relative, another scheme): accepted, or exit 2
    with one line naming the key; never a traceback; nothing made in the folder (`--validate` writes nothing)"""
    d = tmp_path/'paths'; d.mkdir(); kinds = path_kinds(d)
    cases = []
    for key, (role, ctx) in ROLES.items():
        for kind, p in kinds.items():
            if role != 'tracking uri': cases.append((key, kind, p, ctx)); continue
            for s in SCHEMES:
                q = p.strip('"\'')
                v = (f'"{s}{q}"' if p.startswith('"') else f'{s}{q}') if p != "''" else (s or "''")
                cases.append((key, kind if s in ('', 'file://', 'sqlite:///') else f'scheme {s}', v, ctx))
    cases += [(k, 'other', v, []) for k, vs in OTHER.items() for v in vs]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*'))
    results = run_cli_cases([(['--validate', *ctx, f'{k}={v}'], {}) for k, _, v, ctx in cases], tmp_path, timeout=1200)
    refused = 0
    for (k, kind, v, ctx), (code, err) in zip(cases, results):
        assert 'Traceback' not in err, (k, v, err[-2000:])
        assert code in (0, 2), (k, v, code, err[-500:])
        if code == 2:
            line = one_error_line(code, err); refused += 1
            assert line.startswith('certpl_train: error:') and (k in line or 'the overrides' in line), (k, v, line)
        must = kind in MUST.get(ROLES.get(k, ('',))[0], ()) or kind.startswith('scheme') and not kind.startswith(('scheme http', 'scheme sqlite')) \
               or k in OTHER and v not in ('CPU',)
        assert code == 2 or not must, f"{k}={v} ({kind}) was accepted"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*')) == before  # no folder, store or run made
    print(f"{len(cases)} cases, {refused} refused")
