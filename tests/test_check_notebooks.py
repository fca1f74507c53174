"The docs check: which notebook cells must carry outputs"
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from check_notebooks import needs_output

def test_display_cells_need_outputs():
    for src in ('plt.plot(x)', 'ax = plot_history(h);', 'df.plot.bar()', 'show_doc(A.b)', 'x = 1\nprint(x)', 'display(df)'):
        assert needs_output(src), src

def test_other_cells_do_not():
    for src in ('x = 1', 'test_eq(a, b)', "plt.close('all')", '#| export\ndef f(): print(1)', '#| hide\nplt.plot(x)', 'y = 2 # print(z)'):
        assert not needs_output(src), src
