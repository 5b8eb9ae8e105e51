"""LLM answer backends behind the grounding guard: any OpenAI-compatible server, or a local GGUF.

They plug into the same place as the extractive backend: retrieval and the abstention gate run first
(an out-of-scope question never reaches the model), and the output has the same shape. After generation
the citation guard checks every sentence: it must cite a source it was given and be supported by it
(every number and most content words found there). Unsupported sentences are dropped (or marked, by
config); when nothing supported remains, the extractive answer is used instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableLambda

from .answering import AnswerContext, Composed, cite, extractive_answer
from .config import Settings
from .grounding import SUPPORT_THRESHOLD, sentence_support, split_cited
from .retrieval import RetrievedChunk

logger = logging.getLogger(__name__)

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
        records = self.context.sentences.get(chunk.chunk_id, [])
        if not records:
            return chunk.page
        return max(records, key=lambda r: sentence_support(sentence, r.text)).page

    def summary(self, fallback: bool, error: str = "") -> dict[str, Any]:
        out = {"mode": self.mode, "kept": len(self.result.kept), "dropped": len(self.result.dropped),
               "dropped_sentences": self.result.dropped, "fallback": fallback}
        if error:
            out["error"] = error
        return out


class LLMBackend:
    """Generates with a LangChain chat model, then applies the citation guard."""

    def __init__(self, settings: Settings, chat_model: BaseChatModel, name: str = "openai") -> None:
        self.settings = settings
        self.chat_model = chat_model
        self.name = name
        self.calls = 0

    def messages(self, context: AnswerContext) -> list:
        history = []
        for turn in context.history[-6:]:
            kind = HumanMessage if turn["role"] == "user" else AIMessage
            history.append(kind(content=turn["content"][:1000]))
        sources = sources_prompt(context.retrieval.chunks)
        return [SystemMessage(content=f"{SYSTEM_PROMPT}\n\nSources:\n\n{sources}"), *history,
                HumanMessage(content=context.question)]

    def condense(self, question: str, history: list[dict[str, str]]) -> str:
        """A standalone version of a follow-up question, written by the model."""
        conversation = "\n".join(f"{t['role']}: {t['content'][:500]}" for t in history[-6:])
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
        if guard.result.marked:
            composed.text += " " + " ".join(s + UNSUPPORTED_MARK for s in guard.result.marked)
        composed.guard = guard.summary(fallback=False)
        return composed

    def compose(self, context: AnswerContext) -> Composed:
        guard = CitationGuard(context, self.settings.guard_mode)
        try:
            self.calls += 1
            text = str(self.chat_model.invoke(self.messages(context)).content)
        except Exception as error:  # the server may be down or time out: answer extractively, say why
            logger.warning("LLM call failed, answering extractively: %s", error)
            return self._finish(context, guard, error=f"LLM call failed: {_short(error)}")
        for sentence, markers in split_cited(text):
            guard.check(sentence, markers)
        return self._finish(context, guard)

    def runnable(self) -> Runnable:
        return RunnableLambda(lambda ctx: (ctx, self.compose(ctx)), name=f"{self.name}_answer")

    def stream(self, context: AnswerContext) -> Iterator[str | Composed]:
        """Stream guarded sentences as they complete: each is checked before it is shown."""
        guard = CitationGuard(context, self.settings.guard_mode)
        text, done, numbers, error = "", 0, {}, ""
        try:
            self.calls += 1
            for piece in self.chat_model.stream(self.messages(context)):
                text += str(piece.content)
                sentences = split_cited(text)
                for sentence, markers in sentences[done:-1]:
                    yield from self._emit(guard, sentence, markers, numbers)
                done = max(done, len(sentences) - 1)
        except Exception as failure:  # as in compose: fall back to the extractive answer
            logger.warning("LLM stream failed, answering extractively: %s", failure)
            error = f"LLM call failed: {_short(failure)}"
        else:
            for sentence, markers in split_cited(text)[done:]:
                yield from self._emit(guard, sentence, markers, numbers)
        composed = self._finish(context, guard, error)
        if composed.guard.get("fallback"):
            yield from _sentences_of(composed.text)
        elif guard.result.marked:
            yield " " + " ".join(s + UNSUPPORTED_MARK for s in guard.result.marked)
        yield composed

    def _emit(self, guard: CitationGuard, sentence: str, markers: list[int], numbers: dict) -> Iterator[str]:
        kept = guard.check(sentence, markers)
        if kept is None:
            return
        key = (kept[1].doc_id, kept[2])
        numbers.setdefault(key, len(numbers) + 1)
        yield f"{kept[0]} [{numbers[key]}] "


def _sentences_of(text: str) -> Iterator[str]:
    for piece in re.split(r"(?<=\])\s+(?!\[)", text):
        if piece:
            yield piece + " "


def _short(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def make_backend(settings: Settings, name: str | None = None) -> Any:
    """The answer backend named by `name` or WBL_BACKEND: extractive (default), openai or llamacpp."""
    from .assistant import ExtractiveBackend

    name = name or settings.backend
    if name == "extractive":
        return ExtractiveBackend(settings)
    return LLMBackend(settings, make_chat_model(settings, name), name)
