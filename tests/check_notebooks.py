"""Checks that need no Quarto: notebook size, no machine paths in outputs, plotting and display cells carry their
outputs (the docs site shows what the notebooks store), README.md matches nbs/index.ipynb"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MACHINE = re.compile(r'(/work/|/tmp/|/root/|/home/|/Users/|C:\\\\)')

DISPLAY = re.compile(r'(\bplt\.(?!close\b)|\bplot_\w+\(|\.plot[.(]|\bshow_doc\(|\bprint\(|\bdisplay\()')

def needs_output(src:str)->bool:
    "A visible, non-exported code cell that plots, prints or displays something"
    if src.lstrip().startswith(('#| export', '#| hide', '#|export', '#|hide')): return False
    return bool(DISPLAY.search('\n'.join(l.split('#')[0] for l in src.splitlines())))

def readme_from_index(nb_path=ROOT/'nbs'/'index.ipynb'):
    "README text from index.ipynb: markdown cells as they are, visible code cells and their text outputs fenced"
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': parts.append(src)
        elif c['cell_type'] == 'code' and not src.lstrip().startswith('#| hide'):
            parts.append(f"```python\n{src}\n```")
            out = ''.join(''.join(o.get('text', '')) for o in c.get('outputs', []) if o.get('output_type') == 'stream')
            if out: parts.append(f"```\n{out.rstrip()}\n```")
    return '\n\n'.join(parts) + '\n'

def main(write=False):
    errors = []
    for nb in sorted((ROOT/'nbs').rglob('*.ipynb')):
        size = nb.stat().st_size
        if size > 1_000_000: errors.append(f"{nb.name} is {size/1e6:.1f} MB (limit 1 MB)")
        for k, c in enumerate(json.loads(nb.read_text())['cells']):
            if c['cell_type'] == 'code' and needs_output(''.join(c['source'])) and not c.get('outputs'):
                errors.append(f"{nb.name}: cell {k} plots, prints or displays but stores no output: run "
                              f"`python tests/execute_notebooks.py nbs/{nb.name}` (then nbdev_clean) and commit it")
            for o in c.get('outputs', []):
                text = json.dumps(o)
                if MACHINE.search(text): errors.append(f"{nb.name}: an output holds a machine path ({MACHINE.search(text).group(0)})")
    readme = readme_from_index()
    if write: (ROOT/'README.md').write_text(readme)
    elif (ROOT/'README.md').read_text() != readme:
        errors.append("README.md does not match nbs/index.ipynb: run `python tests/check_notebooks.py --write-readme`")
    for e in errors: print(e, file=sys.stderr)
    return 1 if errors else 0

if __name__ == '__main__': sys.exit(main(write='--write-readme' in sys.argv))
