"""The default model's source GGUF (Q4_1, from scripts/get-default-model.sh) and its exact F32 twin (every tensor
dequantized by the gguf package, cached beside it), for the llama.cpp oracles."""
import os
import re
import subprocess
from pathlib import Path

import numpy as np

from conftest import ROOT

MODEL_DIR = ROOT / "models" / "smollm2-135m-instruct"


def q4_gguf() -> Path:
    """Runs get-default-model.sh (idempotent) and returns the GGUF path it prints."""
    r = subprocess.run(["bash", str(ROOT / "scripts" / "get-default-model.sh"), str(MODEL_DIR)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"get-default-model.sh failed:\n{r.stdout}\n{r.stderr}")
    m = re.search(r"^gguf: (.+)$", r.stdout, re.M)
    if not m:
        raise RuntimeError(f"get-default-model.sh did not print the GGUF path:\n{r.stdout}")
    return Path(m.group(1))


def f32_gguf(gguf_path: Path) -> Path:
    """The same model with every tensor dequantized (exactly, in f32) by the gguf package; cached."""
    import gguf
    out = gguf_path.with_name(gguf_path.stem + ".dequant-F32.gguf")
    if out.is_file() and out.stat().st_mtime >= gguf_path.stat().st_mtime:
        return out
    reader = gguf.GGUFReader(str(gguf_path))
    part = out.with_name(out.name + f".part-{os.getpid()}")
    w = gguf.GGUFWriter(str(part), arch=reader.fields["general.architecture"].contents())
    for f in reader.fields.values():
        if f.name.startswith("GGUF.") or f.name in ("general.architecture", "general.file_type"):
            continue
        vt = f.types[0]
        w.add_key_value(f.name, f.contents(), vt, sub_type=f.types[-1] if vt == gguf.GGUFValueType.ARRAY else None)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    for t in reader.tensors:
        a = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a.reshape([int(x) for x in reversed(t.shape)]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(part, out)
    return out
