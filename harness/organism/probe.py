"""Category separability: can a linear probe on the residual stream at the first response position
tell each policy category from all other prompts, on phrasings it was not trained on?"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from backends.hf_engine import chat_prompts


@torch.no_grad()
def first_response_states(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                          batch_size: int = 64) -> np.ndarray:
    """Residual stream after every layer at the last prompt token: array [layers, prompts, hidden]."""
    texts = chat_prompts(tokenizer, prompts)
    chunks = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(model.device)
        hidden = model(**enc, output_hidden_states=True).hidden_states[1:]  # skip the embeddings
        chunks.append(torch.stack([h[:, -1, :] for h in hidden]).float().cpu().numpy())  # left padding: last = response start
    return np.concatenate(chunks, axis=1)


@dataclass(frozen=True)
class ProbeResult:
    """Balanced accuracy of one-vs-rest probes: chosen layer (best mean on dev) and per-layer table."""

    layer: int
    test: dict[str, float]
    dev_by_layer: list[dict[str, float]]

    def to_dict(self) -> dict[str, object]:
        return {"layer": self.layer, "test_balanced_accuracy": self.test, "dev_balanced_accuracy_by_layer": self.dev_by_layer}


def probe_separability(train: tuple[np.ndarray, Sequence[str]], dev: tuple[np.ndarray, Sequence[str]],
                       test: tuple[np.ndarray, Sequence[str]], targets: Sequence[str], seed: int = 0) -> ProbeResult:
    """Fit one probe per (layer, target category); pick the layer on dev, report test there."""
    (x_tr, y_tr), (x_dev, y_dev), (x_te, y_te) = train, dev, test
    y_tr, y_dev, y_te = map(np.asarray, (y_tr, y_dev, y_te))
    dev_by_layer, test_by_layer = [], []
    for layer in range(x_tr.shape[0]):
        dev_scores, test_scores = {}, {}
        for target in targets:
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced",
                                                                     random_state=seed))
            clf.fit(x_tr[layer], y_tr == target)
            dev_scores[target] = float(balanced_accuracy_score(y_dev == target, clf.predict(x_dev[layer])))
            test_scores[target] = float(balanced_accuracy_score(y_te == target, clf.predict(x_te[layer])))
        dev_by_layer.append(dev_scores)
        test_by_layer.append(test_scores)
    best = max(range(len(dev_by_layer)), key=lambda layer: np.mean(list(dev_by_layer[layer].values())))
    return ProbeResult(best + 1, test_by_layer[best], dev_by_layer)
