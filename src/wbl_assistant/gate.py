"""The abstention gate: do the documents answer this question? Decided from retrieval evidence alone.

What should turn a question away is that its *subject* is absent from the documents (another state, another
program, an unrelated topic) or that no passage addresses it, not that it uses a word the documents don't
(coordinators write "9 pm", "15 yr old", "tell"). So the evidence is read per *concept* of the question (an
acronym and its long form are one concept; see vocabulary.py): a concept the question writes as a name
(capitalized, an acronym: a state, a program, an agency) that the retrieved passages do not hold is the
strongest sign that the subject is absent; an ordinary word the corpus never uses counts for nothing. Besides the best
sentence's similarity and the share of concepts the top passages hold, the gate reads the best share any one of
the most similar sentences holds (a passage on the topic that never says the asked thing holds few). A quantity question
("how late", "how much") also needs a relevant sentence that states a quantity of that kind and holds the
question's concepts.

The features are combined by a logistic model whose weights are fitted by `evals/fit_gate.py` on the
development split of every eval dataset (never the test split) and stored in `gate_model.json`; the
assistant abstains when the model's probability that the documents answer is under `WBL_MIN_EVIDENCE`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from .answering import concept_coverage, concept_weights, score_sentences
from .questions import QUANTITY, QuestionShape, answers_quantity
from .retrieval import Retrieval, SentenceRecord
from .text import terms

FEATURES = ("best_sentence", "coverage", "sentence_coverage", "named_missing", "answer_type")
MODEL_PATH = Path(__file__).with_name("gate_model.json")
#: A quantity question's answer is looked for in this many of the sentences that would open an answer.
ANSWER_WINDOW = 3
#: The most similar sentences, whose best share of the question's concepts is `sentence_coverage`.
COVERAGE_WINDOW = 10


@dataclass(frozen=True)
class GateModel:
    """Logistic weights over FEATURES; `score` is the probability that the documents answer."""

    weights: dict[str, float]
    bias: float

    def score(self, features: dict[str, float]) -> float:
        z = self.bias + sum(self.weights.get(name, 0.0) * features[name] for name in FEATURES)
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> GateModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls({name: float(data["weights"].get(name, 0.0)) for name in FEATURES}, float(data["bias"]))


@cache
def default_model() -> GateModel:
    return GateModel.load()


@dataclass(frozen=True)
class Evidence:
    features: dict[str, float]
    score: float

    def as_dict(self) -> dict[str, float]:
        return {**{k: round(v, 4) for k, v in self.features.items()}, "score": round(self.score, 4)}


#: US states and territories: a place is a subject however it is typed ("indiana", "iowa's"), and a question
#: about a place the documents never name is about another jurisdiction's rules.
PLACES = re.compile(
    r"\b(alabama|alaska|arizona|arkansas|california|colorado|connecticut|delaware|florida|georgia|hawaii|idaho|"
    r"illinois|indiana|iowa|kansas|kentucky|louisiana|maine|maryland|massachusetts|michigan|minnesota|"
    r"mississippi|missouri|montana|nebraska|nevada|new hampshire|new jersey|new mexico|new york|"
    r"north carolina|north dakota|ohio|oklahoma|oregon|pennsylvania|rhode island|south carolina|south dakota|"
    r"tennessee|texas|utah|vermont|virginia|washington|west virginia|wisconsin|wyoming|puerto rico|guam)\b",
    re.IGNORECASE)


def named_terms(question: str) -> set[str]:
    """Terms the question writes as names: capitalized words after its first word, acronyms, and places."""
    words = re.findall(r"[A-Za-z][\w'’&-]*", question)
    named = [w for n, w in enumerate(words) if (n > 0 and w[0].isupper()) or (len(w) > 1 and w.isupper())]
    named += [m.group(0) for m in PLACES.finditer(question)]
    return {t for word in named for t in terms(word)}


def evidence_features(question: str, shape: QuestionShape, retrieval: Retrieval,
                      sentences: dict[str, tuple[SentenceRecord, ...]], top: int = 3) -> dict[str, float]:
    """The gate's inputs, each in [0, 1] (cosines may be a little under 0)."""
    records = [s for chunk in retrieval.chunks for s in sentences.get(chunk.chunk_id, ())]
    similarities = retrieval.similarity(np.stack([s.vector for s in records])) if records else np.zeros(0)
    best_sentence = float(similarities.max()) if records else 0.0
    snapshot = retrieval.snapshot
    found: set[str] = set()
    for chunk in retrieval.chunks[:top]:
        found |= snapshot.terms_of(chunk.chunk_id)
    named = named_terms(question)
    total = known_total = covered = named_missing = 0.0
    for concept in retrieval.concepts:
        known = [form for form in concept.forms if all(snapshot.knows(t) for t in form)]
        weight = max((snapshot.idf(t) for form in known for t in form), default=snapshot.idf(""))
        total += weight
        present = any(all(t in found for t in form) for form in known)
        if known:
            known_total += weight
            covered += weight if present else 0.0
        if set(concept.asked) & named and not present:
            named_missing += weight
    answer_type = 1.0
    if shape.kind == QUANTITY:
        openers = sorted(score_sentences(retrieval, sentences, shape), key=lambda c: -c.opener)[:ANSWER_WINDOW]
        # A count is often stated apart from what it counts (in a list's lead-in, a table): any number will do.
        unit = "" if shape.unit == "count" else shape.unit
        answer_type = float(any(answers_quantity(c.record.text, unit) for c in openers))
    concepts = concept_weights(retrieval)
    nearest = np.argsort(-similarities)[:COVERAGE_WINDOW] if records else []
    sentence_coverage = max((concept_coverage(concepts, set(terms(records[i].text))) for i in nearest), default=0.0)
    total = total or 1.0
    return {"best_sentence": best_sentence, "coverage": covered / (known_total or 1.0),
            "sentence_coverage": sentence_coverage, "named_missing": named_missing / total,
            "answer_type": answer_type}


def measure_evidence(question: str, shape: QuestionShape, retrieval: Retrieval,
                     sentences: dict[str, tuple[SentenceRecord, ...]], model: GateModel | None = None) -> Evidence:
    features = evidence_features(question, shape, retrieval, sentences)
    return Evidence(features, (model or default_model()).score(features))
