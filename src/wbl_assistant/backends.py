"""Answer backends: what turns retrieved, gated evidence into a cited answer.

Every backend implements `Backend`: `stream(context)` yields the answer's text piece by piece and ends with
the `Composed` answer; `compose(context)` returns it whole; `condense(question, history)` may rewrite a
follow-up into a standalone question (None: the backend does not). The pipeline (assistant.py) runs
retrieval and the abstention gate before any backend, so an out-of-scope question never reaches one.

- `ExtractiveBackend` (the default) quotes sentences of the retrieved chunks, each cited. Needs no LLM.
- `LLMBackend` generates with a LangChain chat model (any OpenAI-compatible server, or a local GGUF through
  llama.cpp), then the citation guard checks every sentence: it must cite a source it was given and be
  supported by it (see grounding.py). Unsupported sentences are dropped (or marked, by config); when nothing
  supported remains, or the model fails, the extractive answer is given instead.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from .answering import AnswerContext, Composed, cite, extractive_answer
from .config import Settings
from .grounding import SUPPORT_THRESHOLD, cited_text, sentence_support, split_cited
from .retrieval import RetrievedChunk

logger = logging.getLogger(__name__)

BACKENDS = ("extractive", "openai", "llamacpp")
SOURCE_CHARS = 1200
SYSTEM_PROMPT = """You answer questions from Illinois work-based learning coordinators and employers.
Use ONLY the numbered sources below. Never use outside knowledge.
After every sentence, write the number of the source it comes from in square brackets, like [1].
If the sources do not answer the question, reply exactly: The documents do not answer this question.
Answer in at most 4 short sentences."""
CONDENSE_PROMPT = """Rewrite the last question so that it can be understood without the conversation.
Keep its meaning. Reply with the rewritten question only."""
UNSUPPORTED_MARK = " [not supported by the cited source]"


class LLMError(RuntimeError):
    """The LLM backend cannot be used (missing package, model file or server); the message says why."""


class Backend(ABC):
    """The contract every answer backend implements (see the module docstring)."""

    name: str = ""

    @abstractmethod
    def stream(self, context: AnswerContext) -> Iterator[str | Composed]:
        """Text pieces as they are ready, then the final `Composed` (whose text the pieces add up to)."""

    def compose(self, context: AnswerContext) -> Composed:
        """The whole answer at once."""
        composed = None
        for event in self.stream(context):
            if isinstance(event, Composed):
                composed = event
        if composed is None:
            raise RuntimeError(f"the {self.name} backend ended without an answer")
        return composed

    def condense(self, question: str, history: list[dict[str, str]]) -> str | None:
        """A standalone rewrite of a follow-up question, or None when this backend does not rewrite."""
        return None


class ExtractiveBackend(Backend):
    """Quotes sentences of the retrieved chunks, each cited."""

    name = "extractive"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def stream(self, context: AnswerContext) -> Iterator[str | Composed]:
        composed = extractive_answer(context, self.settings.answer_words)
        yield from composed.stream()
        yield composed


def sources_prompt(chunks: list[RetrievedChunk]) -> str:
    blocks = []
    for n, chunk in enumerate(chunks, start=1):
        meta = chunk.metadata
        text = chunk.text if len(chunk.text) <= SOURCE_CHARS else chunk.text[:SOURCE_CHARS] + " ..."
        blocks.append(f"[{n}] {meta['title']} ({meta['edition']}), page {chunk.page}:\n{text}")
    return "\n\n".join(blocks)


@dataclass
class GuardResult:
    kept: list[tuple[str, RetrievedChunk, int]] = field(default_factory=list)
    marked: list[str] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)


class CitationGuard:
    """Checks each generated sentence against the sources it cites."""

    def __init__(self, context: AnswerContext, mode: str = "drop", threshold: float = SUPPORT_THRESHOLD) -> None:
        self.context = context
        self.chunks = context.retrieval.chunks
        self.mode = mode
        self.threshold = threshold
        self.result = GuardResult()

    def check(self, sentence: str, markers: list[int]) -> tuple[str, RetrievedChunk, int] | None:
        """The kept (sentence, chunk, page) or None; records what happened either way."""
        valid = [n for n in dict.fromkeys(markers) if 1 <= n <= len(self.chunks)]
        best, best_support = None, -1.0
        for n in valid:
            chunk = self.chunks[n - 1]
            support = sentence_support(sentence, chunk.text)
            if support > best_support:
                best, best_support = chunk, support
        if best is not None and best_support >= self.threshold:
            kept = (sentence, best, self._page(sentence, best))
            self.result.kept.append(kept)
            return kept
        reason = ("no citation" if not markers else "cites no given source" if not valid
                  else f"not supported by source {valid} (support {best_support:.2f})")
        self.result.dropped.append({"sentence": sentence, "markers": markers, "reason": reason,
                                    "support": round(max(best_support, 0.0), 3)})
        if self.mode == "mark":
            self.result.marked.append(sentence)
        return None

    def _page(self, sentence: str, chunk: RetrievedChunk) -> int:
        """The page of the chunk's sentence closest to the generated one (chunks can span pages)."""
        records = self.context.sentences.get(chunk.chunk_id, ())
        if not records:
            return chunk.page
        return max(records, key=lambda r: sentence_support(sentence, r.text)).page

    def summary(self, fallback: bool, error: str = "") -> dict[str, Any]:
        out = {"mode": self.mode, "kept": len(self.result.kept), "dropped": len(self.result.dropped),
               "dropped_sentences": self.result.dropped, "fallback": fallback}
        if error:
            out["error"] = error
        return out


class LLMBackend(Backend):
    """Generates with a LangChain chat model, then applies the citation guard sentence by sentence.

    `serialize`: one generation at a time (llama.cpp's in-process model is not thread-safe)."""

    def __init__(self, settings: Settings, chat_model: BaseChatModel, name: str = "openai",
                 serialize: bool = False) -> None:
        self.settings = settings
        self.chat_model = chat_model
        self.name = name
        self.calls = 0
        self._lock: AbstractContextManager = threading.Lock() if serialize else nullcontext()

    def messages(self, context: AnswerContext) -> list:
        history = []
        for turn in context.history[-6:]:
            kind = HumanMessage if turn["role"] == "user" else AIMessage
            history.append(kind(content=turn["content"][:1000]))
        sources = sources_prompt(context.retrieval.chunks)
        return [SystemMessage(content=f"{SYSTEM_PROMPT}\n\nSources:\n\n{sources}"), *history,
                HumanMessage(content=context.question)]

    def condense(self, question: str, history: list[dict[str, str]]) -> str | None:
        """A standalone version of a follow-up question, written by the model."""
        conversation = "\n".join(f"{t['role']}: {t['content'][:500]}" for t in history[-6:])
        with self._lock:
            self.calls += 1
            reply = self.chat_model.invoke([SystemMessage(content=CONDENSE_PROMPT),
                                            HumanMessage(content=f"{conversation}\nuser: {question}")])
        text = str(reply.content).strip().splitlines()[0] if str(reply.content).strip() else ""
        return text[:500] or question

    def _finish(self, context: AnswerContext, guard: CitationGuard, error: str = "") -> Composed:
        if not guard.result.kept:
            fallback = extractive_answer(context, self.settings.answer_words)
            fallback.guard = guard.summary(fallback=True, error=error)
            return fallback
        composed = cite(guard.result.kept)
        composed.pieces += [s + UNSUPPORTED_MARK for s in guard.result.marked]
        composed.guard = guard.summary(fallback=False)
        return composed

    def stream(self, context: AnswerContext) -> Iterator[str | Composed]:
        """Stream guarded sentences as they complete: each is checked before it is shown."""
        guard = CitationGuard(context, self.settings.guard_mode)
        text, done, numbers, error, shown = "", 0, {}, "", 0
        with self._lock:
            try:
                self.calls += 1
                for piece in self.chat_model.stream(self.messages(context)):
                    text += str(piece.content)
                    sentences = split_cited(text)
                    for sentence, markers in sentences[done:-1]:
                        for out in self._emit(guard, sentence, markers, numbers):
                            yield out if shown == 0 else " " + out
                            shown += 1
                    done = max(done, len(sentences) - 1)
            except Exception as failure:  # the server may be down or time out: answer extractively, say why
                logger.warning("LLM call failed, answering extractively: %s", failure)
                error = f"LLM call failed: {_short(failure)}"
            else:
                for sentence, markers in split_cited(text)[done:]:
                    for out in self._emit(guard, sentence, markers, numbers):
                        yield out if shown == 0 else " " + out
                        shown += 1
        composed = self._finish(context, guard, error)
        extra = composed.pieces if composed.guard.get("fallback") else composed.pieces[len(guard.result.kept):]
        for piece in extra:
            yield piece if shown == 0 else " " + piece
            shown += 1
        yield composed

    def _emit(self, guard: CitationGuard, sentence: str, markers: list[int], numbers: dict) -> Iterator[str]:
        kept = guard.check(sentence, markers)
        if kept is None:
            return
        key = (kept[1].doc_id, kept[2])
        numbers.setdefault(key, len(numbers) + 1)
        yield cited_text(kept[0], [numbers[key]])


def _short(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def make_chat_model(settings: Settings, backend: str) -> BaseChatModel:
    """The LangChain chat model for `backend` ("openai" or "llamacpp"), configured from settings."""
    if backend == "openai":
        try:
            from langchain_openai import ChatOpenAI
        except ImportError:
            raise LLMError("the openai backend needs langchain-openai: pip install 'wbl-assistant[openai]'") from None
        if not settings.openai_model:
            raise LLMError("set WBL_OPENAI_MODEL to the model name your server serves")
        return ChatOpenAI(base_url=settings.openai_base_url, model=settings.openai_model,
                          api_key=settings.openai_api_key or "not-needed", temperature=0, max_tokens=300,
                          timeout=settings.llm_timeout, max_retries=1)
    if backend == "llamacpp":
        if not settings.llamacpp_model_path:
            raise LLMError("set WBL_LLAMACPP_MODEL to the path of a GGUF file")
        try:
            from langchain_community.chat_models import ChatLlamaCpp
        except ImportError:
            raise LLMError("the llamacpp backend needs langchain-community and llama-cpp-python: "
                           "pip install 'wbl-assistant[local-llm]'") from None
        try:
            return ChatLlamaCpp(model_path=settings.llamacpp_model_path, n_ctx=4096, temperature=0,
                                max_tokens=300, verbose=False)
        except Exception as error:  # llama.cpp reports a bad file or missing package in many ways
            raise LLMError(f"cannot load {settings.llamacpp_model_path}: {error}") from None
    raise LLMError(f"unknown LLM backend {backend!r}")


def make_backend(settings: Settings, name: str | None = None) -> Backend:
    """The answer backend named by `name` or WBL_BACKEND: extractive (default), openai or llamacpp."""
    name = name or settings.backend
    if name == "extractive":
        return ExtractiveBackend(settings)
    return LLMBackend(settings, make_chat_model(settings, name), name, serialize=name == "llamacpp")
