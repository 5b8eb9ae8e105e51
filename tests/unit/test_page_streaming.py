"""How often the chat page sends streamed text: an answer complete at once goes out once; a slow one streams."""

from __future__ import annotations

import time

from wbl_assistant.answering import Answer
from wbl_assistant.app import STREAM_INTERVAL, ChatPage
from wbl_assistant.config import Settings


class PacedAssistant:
    """Yields `pieces` with `gap` seconds before each, then the final answer (no citations)."""

    def __init__(self, pieces: list[str], gap: float) -> None:
        self.pieces, self.gap = pieces, gap

    def stream(self, question, history):
        for piece in self.pieces:
            time.sleep(self.gap)
            yield piece
        yield Answer(question, " ".join(self.pieces), False, [], [], {}, "paced")


def chat_updates(tmp_path, pieces: list[str], gap: float) -> list[str]:
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=tmp_path / "corpus")
    page = ChatPage(settings, PacedAssistant(pieces, gap))
    return [chat[-1]["content"] for chat, *_ in page.respond("How many hours?", [], [])]


def test_an_answer_complete_within_the_interval_is_sent_once(tmp_path):
    updates = chat_updates(tmp_path, ["One.", "Two.", "Three."], gap=0.0)
    assert updates == ["", "One. Two. Three."]


def test_a_slow_answer_streams_its_text_as_it_comes(tmp_path):
    updates = chat_updates(tmp_path, ["One.", "Two.", "Three."], gap=STREAM_INTERVAL * 1.5)
    assert updates[0] == "" and updates[-1] == "One. Two. Three."
    streamed = updates[1:-1]
    assert streamed and streamed == sorted(streamed, key=len), updates
    assert all("One." in text for text in streamed)


def test_streamed_text_goes_out_as_plain_values_without_component_updates(tmp_path):
    """Gradio answers any prop update, even an empty `gr.update()`, by building a new component and its config
    for the session: under load that cost the page more CPU than the answer. Only the first and the last
    yield (clearing, then setting, the source choices) may carry one."""
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=tmp_path / "corpus")
    page = ChatPage(settings, PacedAssistant(["One.", "Two.", "Three."], STREAM_INTERVAL * 1.5))
    yields = list(page.respond("How many hours?", [], []))
    assert len(yields) > 2

    def updates(values: tuple) -> int:
        return sum(isinstance(v, dict) and "update" in v.get("__type__", "") for v in values)

    assert [updates(y) for y in yields[1:-1]] == [0] * (len(yields) - 2)
    assert updates(yields[0]) == updates(yields[-1]) == 1
