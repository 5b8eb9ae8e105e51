"""`Assistant`: the one answer pipeline every surface uses (CLI, chat page, evals).

The pipeline is a LangChain Runnable chain: standalone query → hybrid retrieval → abstention gate →
answer backend. `stream()` runs it with `.stream()` and yields the answer's text as the backend produces
it, then the final `Answer`; `ask()` consumes `stream()` and returns that `Answer`. An abstention and every
backend (extractive by default, an LLM if configured) come out of the same chain in the same shape.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from langchain_core.runnables import Runnable, RunnableGenerator, RunnableLambda

from .answering import Answer, AnswerContext, Composed, QuestionPart, concept_weights_of
from .backends import Backend, make_backend
from .change_answers import change_answer
from .config import Settings
from .gate import measure_evidence
from .questions import focus_of, question_parts, shape_of, shape_of_ask
from .retrieval import IndexReader, Retrieval
from .text import content_words, terms

MAX_QUESTION_CHARS = 2000
MAX_HISTORY_TURNS = 20
REFERRING_WORDS = frozenset(
    "it its it's they them their theirs this that these those there he she his her".split()
)
CONTINUATIONS = ("and ", "but ", "also ", "so ", "what about", "how about", "what if", "then ")
#: A question read with the conversation's subject replaces its literal reading when the gate's probability
#: that the documents answer it is higher by this much.
FOLLOW_UP_MARGIN = 0.2


class QuestionError(ValueError):
    """The question or the history cannot be used; the message says why."""


def standalone_query(question: str, history: list[dict[str, str]] | None, force: bool = False) -> str:
    """Turn a follow-up into a self-contained retrieval query without an LLM.

    A question that leans on earlier turns (few content words, a pronoun standing for the subject, or an
    opening like "and ...") gets the content words of the earlier user turns it follows appended; `force`
    appends them to any question (the pipeline tries that too, see `Assistant._retrieve`).
    """
    users = [turn["content"] for turn in (history or []) if turn.get("role") == "user" and turn.get("content")]
    if not users or not (force or _leans_on_history(question)):
        return question
    carried: list[str] = []
    have = set(content_words(question))
    for earlier in reversed(users):
        for word in content_words(earlier):
            if word not in have and word not in carried:
                carried.append(word)
        if not _leans_on_history(earlier):
            break
    return f"{question} {' '.join(carried)}".strip() if carried else question


def _leans_on_history(question: str) -> bool:
    lowered = question.lower().strip()
    words = re.findall(r"[a-z']+", lowered)
    return (len(content_words(question)) <= 2 or lowered.startswith(CONTINUATIONS)
            or any(w in REFERRING_WORDS for w in words))


def validate(question: str, history: list[dict[str, str]] | None) -> list[dict[str, str]]:
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question is {len(question):,} characters long; the limit is "
                            f"{MAX_QUESTION_CHARS:,}. Ask about one thing at a time.")
    if history is not None and not isinstance(history, list):
        raise QuestionError('the history must be a list of {"role": "user"|"assistant", "content": "..."}')
    turns = []
    for turn in history or []:
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant") \
                or not isinstance(turn.get("content"), str):
            raise QuestionError('each history turn must be an object {"role": "user"|"assistant", "content": "..."}')
        turns.append({"role": turn["role"], "content": turn["content"][:MAX_QUESTION_CHARS * 4]})
    return turns[-MAX_HISTORY_TURNS:]


@dataclass(frozen=True)
class Request:
    question: str
    history: list[dict[str, str]]
    kinds: list[str] | None
    doc_ids: list[str] | None
    started: float


class Assistant:
    """Grounded answers from the ingested documents. One instance serves many questions and threads."""

    def __init__(self, settings: Settings | None = None, backend: Backend | None = None,
                 reader: IndexReader | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.reader = reader or IndexReader(self.settings)
        self.backend = backend or make_backend(self.settings)
        self.chain = self._build_chain()

    def _build_chain(self) -> Runnable:
        return (RunnableLambda(self._retrieve, name="retrieve")
                | RunnableLambda(self._gate, name="abstention_gate")
                | RunnableGenerator(self._answer, name="answer"))

    def warm_up(self) -> None:
        """Load the index and the embedding model now, so the first question is not the slow one."""
        self.reader.retrieve("work-based learning", self.settings.top_k)

    def stream(self, question: str, history: list[dict[str, str]] | None = None, *,
               kinds: list[str] | None = None, doc_ids: list[str] | None = None) -> Iterator[str | Answer]:
        """Yield the answer text piece by piece, then the final `Answer`."""
        turns = validate(question, history)
        request = Request(question.strip(), turns, kinds, doc_ids, time.perf_counter())
        yield from self.chain.stream(request)

    def ask(self, question: str, history: list[dict[str, str]] | None = None, *,
            kinds: list[str] | None = None, doc_ids: list[str] | None = None) -> Answer:
        """Answer `question` (with optional chat `history`) from the documents, or abstain."""
        answer = None
        for event in self.stream(question, history, kinds=kinds, doc_ids=doc_ids):
            if isinstance(event, Answer):
                answer = event
        return answer

    def prepare(self, question: str, history: list[dict[str, str]] | None = None) -> AnswerContext:
        """Everything before the answer (standalone query, retrieval, evidence, the gate's decision)."""
        turns = validate(question, history)
        return self._gate(self._retrieve(Request(question.strip(), turns, None, None, time.perf_counter())))

    def _retrieve(self, request: Request) -> AnswerContext:
        """Retrieval and evidence for the standalone query. A question with a history that does not look
        like a follow-up ("Which schools did the students come from?") is also tried with the earlier
        turns' subject, and that reading wins when the documents answer it clearly better."""
        start = time.perf_counter()
        query = standalone_query(request.question, request.history)
        if query != request.question and self.settings.llm_condense:
            query = self.backend.condense(request.question, request.history) or query
        context = self._evidence(request, query)
        carried = standalone_query(request.question, request.history, force=True)
        if carried != query:
            alternative = self._evidence(request, carried)
            if alternative.evidence.score > context.evidence.score + FOLLOW_UP_MARGIN:
                context = alternative
        context.retrieve_ms = (time.perf_counter() - start) * 1000
        return context

    def _evidence(self, request: Request, query: str) -> AnswerContext:
        # The ask inside a long question; for a follow-up read with earlier turns' subject, the follow-up itself.
        focus = focus_of(request.question) or (request.question if query != request.question else "")
        retrieval = self.reader.retrieve(query, self.settings.top_k, request.kinds, request.doc_ids, focus=focus)
        sentences = retrieval.snapshot.sentences([c.chunk_id for c in retrieval.chunks])
        shape = shape_of_ask(focus, query)
        evidence = measure_evidence(query, shape, retrieval, sentences)
        return AnswerContext(request.question, query, request.history, retrieval, sentences, evidence, shape,
                             self._parts(request.question, retrieval), started=request.started)

    def _parts(self, question: str, retrieval: Retrieval) -> list[QuestionPart]:
        """The parts of a question that asks several things at once (none for a single question)."""
        texts = question_parts(question)
        if len(texts) < 2:
            return []
        snapshot = retrieval.snapshot
        return [QuestionPart(text, shape_of(text), self.reader.embed_query(text),
                             concept_weights_of(snapshot, snapshot.lexicon.concepts(terms(text))))
                for text in texts]

    def _gate(self, context: AnswerContext) -> AnswerContext:
        context.abstain = context.evidence.score < self.settings.min_evidence or not context.retrieval.chunks
        return context

    def _answer(self, contexts: Iterator[AnswerContext]) -> Iterator[str | Answer]:
        for context in contexts:
            changes = change_answer(context, self.reader.store, self.settings.answer_words)
            if changes is not None:  # "what changed?": answered from the document's change report (change_answers.py)
                context.abstain = False
                yield from changes.stream()
                answer = self._finish(context, changes)
                answer.backend = "editions"
                yield answer
                continue
            if context.abstain:
                composed = Composed([self.scope_message(context)], [])
                yield from composed.stream()
            else:
                composed = None
                for event in self.backend.stream(context):
                    if isinstance(event, Composed):
                        composed = event
                    else:
                        yield event
            yield self._finish(context, composed)

    def scope_message(self, context: AnswerContext) -> str:
        """What the assistant says when the documents don't answer: what it does cover, from the index."""
        documents = context.retrieval.snapshot.documents
        largest = sorted(documents.values(), key=lambda d: -int(d.get("pages", 0)))[:3]
        titles = "; ".join(f"{d['title']}" + (f" ({d['edition']})" if d.get("edition") else "") for d in largest)
        more = len(documents) - len(largest)
        scope = f"{titles}" + (f"; and {more} more" if more > 0 else "")
        return ("The documents I answer from don't cover this, so I won't guess. I answer questions about "
                f"Illinois work-based learning from {len(documents)} guidance documents: {scope}.")

    def _finish(self, context: AnswerContext, composed: Composed) -> Answer:
        total = (time.perf_counter() - context.started) * 1000
        timings = {"retrieve": round(context.retrieve_ms, 2),
                   "answer": round(max(total - context.retrieve_ms, 0.0), 2), "total": round(total, 2)}
        retrieved = [{"doc_id": c.doc_id, "page": c.page, "page_end": int(c.metadata.get("page_end", c.page)),
                      "chunk_id": c.chunk_id, "score": round(c.score, 5), "title": c.metadata["title"],
                      "section": c.metadata.get("section", "")}
                     for c in context.retrieval.ranking]
        return Answer(
            question=context.question, answer=composed.text, abstained=context.abstain,
            citations=composed.citations, retrieved=retrieved, timings_ms=timings,
            backend="none" if context.abstain else self.backend.name, query=context.query,
            evidence=context.evidence.as_dict(), guard=composed.guard,
        )
