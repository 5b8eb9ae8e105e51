"""The numpy question encoder gives the vectors sentence-transformers gives, and knows which models it can run."""

import json
import shutil

import numpy as np
import pytest

from wbl_assistant.embeddings import BertEncoder, default_model_path, load_embeddings, load_query_encoder

TEXTS = [
    "Can a 15 year old intern work until 9 pm on a school night?",
    "CDE",
    "What does the Work-Based Learning Manual say about Section 20(e) of the Child Labor Law of 2024?",
    "Émilie's café — naïve façade, 1–2 p.m.; ¿qué?",
    "hours " * 400,
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return np.asarray(load_embeddings().embed_documents(TEXTS), dtype=np.float32)


def test_numpy_encoder_matches_sentence_transformers(reference):
    encoder = load_query_encoder()
    assert isinstance(encoder, BertEncoder)
    ours = encoder.encode(TEXTS)
    assert ours.shape == reference.shape == (len(TEXTS), 384)
    assert np.abs(ours - reference).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    one_by_one = np.asarray([encoder.embed_query(text) for text in TEXTS], dtype=np.float32)
    assert np.abs(one_by_one - reference).max() < 1e-5


def test_rankings_agree_with_sentence_transformers(reference):
    query = np.asarray(load_query_encoder().embed_query(TEXTS[0]), dtype=np.float32)
    expected = np.asarray(load_embeddings().embed_query(TEXTS[0]), dtype=np.float32)
    assert list(np.argsort(-(reference @ query))) == list(np.argsort(-(reference @ expected)))


def test_a_model_of_another_shape_goes_through_sentence_transformers(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(default_model_path(), model)
    assert BertEncoder.supports(str(model))
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config["pooling_mode_cls_token"] = True
    pooling.write_text(json.dumps(config))
    assert not BertEncoder.supports(str(model))
    assert not isinstance(load_query_encoder(str(model)), BertEncoder)
    assert not BertEncoder.supports(str(tmp_path / "missing"))
