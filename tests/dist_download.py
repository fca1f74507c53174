"""Under torchrun: load CIFAR-10 with download=True into an empty folder, with torchvision's downloader replaced by one that
writes small files in CIFAR's format ("ok") or fails as offline ("fail"); each rank writes what it did to <out>/rank<r>.json.

Usage: torchrun --standalone --nproc_per_node=2 --no-python python tests/dist_download.py <out folder> ok|fail"""
import json, os, sys, time, urllib.error
from pathlib import Path
from unittest import mock
import torch.distributed as dist
from certpl.core import DataError
from certpl.data import load_source, write_fake_cifar

if __name__ == '__main__':
    out, how = Path(sys.argv[1]), sys.argv[2]
    dist.init_process_group('gloo')
    rank, calls = dist.get_rank(), []
    def download(url, root, filename=None, md5=None):
        calls.append(url); time.sleep(1)  # slower than the other rank's start: a rank that did not wait finds nothing
        if how == 'fail': raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')
        write_fake_cifar(Path(root))
    with mock.patch('torchvision.datasets.utils.download_and_extract_archive', download):
        try: res = {'n_train': len(load_source('cifar10', out/'data', download=True, verify=False).train)}
        except DataError as e: res = {'error': str(e)}
    (out/f'rank{rank}.json').write_text(json.dumps(res | {'downloads': len(calls)}))
    dist.destroy_process_group()
