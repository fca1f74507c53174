"""Memory and time of loading a folder of images (issue 28): a synthetic folder of 50,000 32x32 PNGs and one of 20,000
96x96 PNGs, loaded by `ssl_dataloaders(source='folder')` (everything a run does to its data before training), twice.

Each load runs in a fresh process; after the imports it records its resident memory (VmRSS) and anonymous memory
(RssAnon: mapped file pages count in VmRSS, not here) as the baseline, samples both every 2 ms while loading, and reports
the peaks above the baseline as multiples of the images' uint8 size, and the load time (imports apart). The first load
of today's code builds the cache under <folder>/.certpl_cache; the second maps it. Run the same script against an older
checkout to compare: `PYTHONPATH=<old checkout> python bench/folder_load.py --folders <dir>` (it reuses the folders).

Usage: python bench/folder_load.py [--folders DIR] [--only 32|96]"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path
import numpy as np

SETS = {'32': (50_000, 32), '96': (20_000, 96)}

def write_folder(root:Path, n:int, side:int, n_classes:int=10, seed:int=0):
    "n RGB PNGs of side x side in root/train/<class>/ (smooth blobs plus noise: PNG sizes like photos', not like pure noise)"
    from PIL import Image
    if (root/'done').exists(): return
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side] / side
    for i in range(n):
        c = i % n_classes; d = root/'train'/f'c{c}'; d.mkdir(parents=True, exist_ok=True)
        base = (np.sin(6 * (xx * (c + 1) + yy)) * 60 + 128)[..., None] + rng.integers(-30, 30, (side, side, 3))
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(d/f'{i:06d}.png')
    (root/'done').write_text(str(n))

def _status():
    out = {}
    for line in open('/proc/self/status'):
        k, _, v = line.partition(':')
        if k in ('VmRSS', 'RssAnon', 'VmHWM'): out[k] = int(v.split()[0]) * 1024
    return out

def measure(root:str):
    "One load in this process: peaks above the post-import baseline, seconds"
    import threading
    import certpl.data as data, sklearn.model_selection, PIL.Image, PIL.PngImagePlugin  # imports apart
    open('/proc/self/clear_refs', 'w').write('5')  # resets VmHWM: the imports' peak is not the load's
    base, peak, stop = _status(), {'VmRSS': 0, 'RssAnon': 0}, threading.Event()
    def sample():
        while not stop.is_set():
            s = _status(); peak['VmRSS'] = max(peak['VmRSS'], s['VmRSS']); peak['RssAnon'] = max(peak['RssAnon'], s['RssAnon'])
            time.sleep(0.002)
    th = threading.Thread(target=sample, daemon=True); th.start()
    t = time.perf_counter()
    dls = data.ssl_dataloaders('folder', n_labelled=40, root=root, bs=64, mu=7, steps_per_epoch=1, download=False)
    secs = time.perf_counter() - t
    stop.set(); th.join(); end = _status()
    n = len(dls.source.train) + len(dls.source.test) + (len(dls.source.unlabelled) if dls.source.unlabelled is not None else 0)
    size = n * dls.source.n_channels * dls.source.size ** 2
    return {'seconds': secs, 'uint8_bytes': size, 'peak_rss_x': (max(peak['VmRSS'], end['VmHWM']) - base['VmRSS']) / size,
            'peak_anon_x': (peak['RssAnon'] - base['RssAnon']) / size, 'cache': (Path(root)/'.certpl_cache').is_dir()}

if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--measure': print(json.dumps(measure(sys.argv[2]))); sys.exit()
    ap = argparse.ArgumentParser(); ap.add_argument('--folders', default='/tmp/certpl_folder_bench'); ap.add_argument('--only')
    a = ap.parse_args()
    import certpl
    print(f"certpl from {Path(certpl.__file__).parent}; {os.cpu_count()} CPUs")
    for k, (n, side) in SETS.items():
        if a.only and a.only != k: continue
        root = Path(a.folders)/f'png{side}'
        t = time.perf_counter(); write_folder(root, n, side); made = time.perf_counter() - t
        for c in root.glob('.certpl_cache'): import shutil; shutil.rmtree(c)  # the first load starts without a cache
        print(f"\n{n:,} {side}x{side} PNGs under {root} ({made:.0f} s to write or find)")
        for load in ('first load', 'second load'):
            r = subprocess.run([sys.executable, __file__, '--measure', str(root)], capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
            if r.returncode: print(r.stderr[-2000:]); sys.exit(1)
            m = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"  {load:12s} {m['seconds']:7.2f} s   peak resident {m['peak_rss_x']:.2f}x and anonymous {m['peak_anon_x']:.2f}x "
                  f"the images' {m['uint8_bytes'] / 2**20:,.0f} MiB   cache: {m['cache']}")
