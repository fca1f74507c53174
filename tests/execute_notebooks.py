"""Run notebooks in place and keep their outputs, for the docs site (which shows what the notebooks store).

    python tests/execute_notebooks.py                 # every notebook under nbs/
    python tests/execute_notebooks.py nbs/07_study.ipynb ...

Figures are kept as PNG (not retina); progress bars, blank streams, MLflow's INFO log lines and warnings raised inside
installed packages are dropped, and other warnings keep their category and message without the file that raised them; `nbdev_clean` afterwards normalises the metadata.
`tests/check_notebooks.py` then checks sizes and that no output names a machine path. (execnb drops a cell's printed
lines when its last line ends with `;`: end a cell that prints and plots with an assignment, `ax = plot_...(...)`.)
"""
import argparse, os, re, time
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

ROOT = Path(__file__).resolve().parents[1]
_PKG_WARNING = re.compile(r'^\S*(site-packages|dist-packages)\S*:\d+: \w*Warning:.*\n(  .*\n)?', re.M)
_WARNING_AT = re.compile(r'^\S+:\d+: (\w+: .*)\n(  .*\n)?', re.M)  # `file:line: Category: message` and its source line
_NOISE = re.compile(r'^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INFO mlflow.*|.*\rDownloading artifacts.*|Downloading artifacts.*)\n', re.M)

def _text(o): return ''.join(o.get('text', ''))

def keep_output(o)->dict|None:
    "The output to store: None for a progress bar or an empty stream; package warnings cut out of stderr"
    html = ''.join(o.get('data', {}).get('text/html', ''))
    if '<progress' in html or 'progress-bar' in html: return None
    if o.get('output_type') == 'stream':
        text = re.sub(r'[^\n]*\r[^\n]*(\n|$)', '', _text(o))  # progress bars redraw their line with \\r
        if o.get('name') == 'stderr': text = _WARNING_AT.sub(r'\1\n', _NOISE.sub('', _PKG_WARNING.sub('', text)))
        if not text.strip(): return None
        o['text'] = text
    return o

def execute(path:Path):
    "Run the notebook at `path` in its folder, every cell (slow ones too), and write it back with its outputs"
    nb = read_nb(path)
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs = []  # execnb keeps a cell's old outputs when it prints nothing now
    cwd = os.getcwd(); os.chdir(path.parent)
    try:
        sh = CaptureShell(path, mpl_format='png')
        sh.run_all(nb, exc_stop=True)
    finally: os.chdir(cwd)
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs = [o for o in map(keep_output, c.outputs) if o is not None]
    write_nb(nb, path)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('notebooks', nargs='*', type=Path)
    a = p.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    for nb in a.notebooks or sorted((ROOT/'nbs').glob('*.ipynb')):
        t = time.time()
        execute(nb.resolve())
        print(f"{nb.name}: {time.time() - t:.0f} s, {nb.stat().st_size / 1e3:.0f} kB", flush=True)
