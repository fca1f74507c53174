"Pieces shared by the step-time benchmarks"
import time, torch
from fastai.callback.core import Callback, CancelValidException

class RepeatDL:
    "Serve the same FixMatch batch `n` times (the data pipeline is not what is measured)"
    n_inp = 1
    def __init__(self, b, n): self.b, self.n, self.device = b, n, torch.device('cpu')
    def __len__(self): return self.n
    def __iter__(self): return (self.b for _ in range(self.n))
    def to(self, d): return self

class Timer(Callback):
    "Wall time of every training step; validation is skipped"
    order = 100
    def before_fit(self): self.times = []
    def before_batch(self): self.t = time.perf_counter()
    def after_batch(self): self.times.append(time.perf_counter() - self.t)
    def before_validate(self): raise CancelValidException()

class StepTimer(Callback):
    "Wall time from one `after_batch` to the next (fetching, augmenting and training on a batch), after every other callback; no validation"
    order = 10_000
    def before_fit(self): self.times, self.last = [], None
    def after_batch(self):
        t = time.perf_counter()
        if self.last is not None: self.times.append(t - self.last)
        self.last = t
    def before_validate(self): raise CancelValidException()
