"""Fit the abstention gate's weights on the DEVELOPMENT split of every suite dataset; report held-out figures.

    .venv/bin/python evals/fit_gate.py [--suite evals/suite.toml] [--write] [--report-test]

For each dev item, the question goes through retrieval and the gate's features are read (see
src/wbl_assistant/gate.py); the label is whether the documents answer it. A class-balanced, L2-regularized
logistic regression is fitted on the standardized features (Newton's method, numpy), the decision threshold
is chosen on dev at the least cost, a false-refusal rate counting twice the rate of answered out-of-scope
questions (see `cost`), and the bias is shifted so that the threshold is a probability of 0.5 (the default
WBL_MIN_EVIDENCE). It also prints a leave-one-corpus-out check: fitted on the dev items of the other corpora,
how the gate does on each corpus's own dev items (a gate that only works on text it was fitted on fails there).
`--write` stores the weights in src/wbl_assistant/gate_model.json. `--report-test` also prints the refusal
figures on the test split, which are never used for fitting.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from wbl_assistant.assistant import Assistant  # noqa: E402
from wbl_assistant.config import Settings  # noqa: E402
from wbl_assistant.evaluation.dataset import load_dataset  # noqa: E402
from wbl_assistant.evaluation.suite import corpus_settings, load_suite  # noqa: E402
from wbl_assistant.gate import FEATURES, MODEL_PATH, evidence_features  # noqa: E402
from wbl_assistant.ingestion import ingest  # noqa: E402

L2 = 1.0
FALSE_REFUSAL_COST = 2.0


def collect(settings: Settings, suite: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rows, labels, names = [], [], []
    for entry in load_suite(suite):
        run_settings = corpus_settings(settings, entry.corpus, entry.catalog)
        ingest(run_settings)
        assistant = Assistant(run_settings)
        for item in load_dataset(entry.dataset):
            if item.split != split:
                continue
            context = assistant.prepare(item.question, item.history or None)
            features = evidence_features(context.query, context.shape, context.retrieval, context.sentences)
            rows.append([features[name] for name in FEATURES])
            labels.append(1.0 if item.answerable else 0.0)
            names.append(f"{entry.name}:{item.id}")
    return np.asarray(rows), np.asarray(labels), names


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Class-balanced L2 logistic regression by Newton's method; returns weights and bias on raw features."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    sample = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
    beta = np.zeros(z.shape[1])
    penalty = np.diag([0.0] + [L2] * x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(z @ beta)))
        gradient = z.T @ (sample * (p - y)) + penalty @ beta
        hessian = (z * (sample * p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = beta[1:] / scale
    return weights, float(beta[0] - (weights * mean).sum())


def cost(refusal: float, false_refusal: float) -> float:
    """What a threshold costs: a false refusal (an answer the documents hold, withheld) counts twice an
    answered out-of-scope question (whose answer still quotes and cites only the documents)."""
    return FALSE_REFUSAL_COST * false_refusal + (1 - refusal)


def rates(scores: np.ndarray, y: np.ndarray, threshold: float) -> tuple[float, float]:
    """(refusal rate of out-of-scope items, false-refusal rate of answerable ones) at a threshold."""
    answered = scores >= threshold
    return float((~answered[y == 0]).mean()), float((~answered[y == 1]).mean())


def fit_with_threshold(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights and a bias that puts the dev-chosen threshold at a probability of 0.5."""
    weights, bias = fit(x, y)
    scores = 1 / (1 + np.exp(-(x @ weights + bias)))
    candidates = sorted(set(np.round(scores, 4)))
    best = min(candidates, key=lambda t: (cost(*rates(scores, y, t)), rates(scores, y, t)[1]))
    return weights, bias - (math.log(best / (1 - best)) if 0 < best < 1 else 0.0)


def leave_one_corpus_out(x: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, tuple[float, float]]:
    """Per corpus: (refusal, false refusal) of a gate fitted on the other corpora's items only."""
    corpora = np.asarray([name.split(":", 1)[0] for name in names])
    out = {}
    for corpus in dict.fromkeys(corpora):
        held = corpora == corpus
        weights, bias = fit_with_threshold(x[~held], y[~held])
        out[str(corpus)] = rates(1 / (1 + np.exp(-(x[held] @ weights + bias))), y[held], 0.5)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=ROOT / "evals" / "suite.toml")
    parser.add_argument("--data-dir", type=Path, help="Where the eval indexes live (default: a temp dir).")
    parser.add_argument("--write", action="store_true", help="Store the fitted weights in gate_model.json.")
    parser.add_argument("--report-test", action="store_true", help="Also print figures on the test split.")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="fit-gate-"))
    settings = Settings.from_env(data_dir=data_dir)
    x, y, names = collect(settings, args.suite, "dev")
    for corpus, (refusal, false_refusal) in leave_one_corpus_out(x, y, names).items():
        print(f"dev of {corpus}, gate fitted on the others: refusal {refusal:.3f}, false refusal {false_refusal:.3f}")
    weights, bias = fit_with_threshold(x, y)
    refusal, false_refusal = rates(1 / (1 + np.exp(-(x @ weights + bias))), y, 0.5)
    print(f"dev: {len(y)} items ({int(y.sum())} answerable): refusal {refusal:.3f}, false refusal {false_refusal:.3f}")
    print("weights:", {name: round(float(w), 4) for name, w in zip(FEATURES, weights, strict=True)},
          "bias:", round(bias, 4))
    if args.report_test:
        tx, ty, _ = collect(settings, args.suite, "test")
        refusal, false_refusal = rates(1 / (1 + np.exp(-(tx @ weights + bias))), ty, 0.5)
        print(f"test: {len(ty)} items ({int(ty.sum())} answerable): refusal {refusal:.3f}, "
              f"false refusal {false_refusal:.3f}")
    if args.write:
        model = {"weights": {name: round(float(w), 6) for name, w in zip(FEATURES, weights, strict=True)},
                 "bias": round(bias, 6), "fitted_on": "dev split of " + str(args.suite.relative_to(ROOT)),
                 "items": len(y), "script": "evals/fit_gate.py"}
        MODEL_PATH.write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
        print(f"written: {MODEL_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
