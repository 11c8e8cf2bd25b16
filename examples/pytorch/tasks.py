"""tasks.py - a stream of task batches from a few topics.

Every prompt starts with the same system prefix (a sixth of the prompt). A topic is a base prompt;
a task of that topic is the base with a fraction of its body tokens replaced
(an edit rate drawn per task), so tasks of one topic share most tokens, at the
same positions. A share of the tasks are novel (a body unrelated to every
topic). With mean-pooled token embeddings, tasks of one topic land at cosine
about (1 - edit rate) of each other, mostly above the 0.8 threshold, and
unrelated tasks far lower (what they share is the system prefix).
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class Task:
    index: int
    topic: int              # -1: novel
    edit_rate: float
    tokens: np.ndarray      # (prompt_len,) int64


class TaskStream:
    def __init__(self, vocab, prompt_len, topics=8, novel=0.15, edit=(0.02, 0.15),
                 prefix_len=None, seed=0):
        prefix_len = prompt_len // 6 if prefix_len is None else prefix_len
        if not 0 <= prefix_len < prompt_len:
            raise ValueError("need 0 <= prefix_len < prompt_len")
        self.rng = np.random.default_rng(seed)
        self.vocab, self.prompt_len, self.novel, self.edit = vocab, prompt_len, novel, edit
        self.prefix = self.rng.integers(0, vocab, prefix_len)
        body = prompt_len - prefix_len
        self.bases = [self.rng.integers(0, vocab, body) for _ in range(topics)]
        # Topics are not equally popular (a few hot ones), as in real traffic.
        w = 1.0 / np.arange(1, topics + 1)
        self.popularity = w / w.sum()

    def task(self, index):
        if self.rng.random() < self.novel:
            topic, rate = -1, 1.0
            body = self.rng.integers(0, self.vocab, self.prompt_len - len(self.prefix))
        else:
            topic = int(self.rng.choice(len(self.bases), p=self.popularity))
            rate = float(self.rng.uniform(*self.edit))
            body = self.bases[topic].copy()
            pos = self.rng.random(body.size) < rate
            body[pos] = self.rng.integers(0, self.vocab, int(pos.sum()))
        return Task(index, topic, rate, np.concatenate([self.prefix, body]).astype(np.int64))

    def batches(self, n_tasks, batch_size):
        tasks = [self.task(i) for i in range(n_tasks)]
        return [tasks[i:i + batch_size] for i in range(0, n_tasks, batch_size)]
