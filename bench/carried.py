"""For the standalone GPU scripts: on a bare machine without fastcore, load the copy carried with the checkout
(`.venv/lib/python3.11/site-packages/fastcore`, pure Python) without putting the rest of `.venv` on the path."""
import importlib.util, pathlib, sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FASTCORE = ROOT/'.venv'/'lib'/'python3.11'/'site-packages'/'fastcore'

def load_fastcore():
    "Make `import fastcore` work: the installed one, else the carried copy"
    if importlib.util.find_spec('fastcore') is not None or not FASTCORE.is_dir(): return
    spec = importlib.util.spec_from_file_location('fastcore', FASTCORE/'__init__.py', submodule_search_locations=[str(FASTCORE)])
    sys.modules['fastcore'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(sys.modules['fastcore'])
