#!/usr/bin/env python3
"""Seed corpus for fuzz_safetensors: small valid safetensors images (several dtypes, metadata, empty
tensors) and index JSON documents, so the fuzzer starts from inputs that reach deep into the parser."""
import json
import struct
import sys
from pathlib import Path


def image(tensors, metadata=None):
    header, data, off = {}, b"", 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(payload)]}
        data += payload
        off += len(payload)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    seeds = {
        "one_f32": image({"a": ("F32", [2], b"\0" * 8)}),
        "mlx_q": image({"w.weight": ("U32", [2, 1], b"\1" * 8), "w.scales": ("BF16", [2, 1], b"\2" * 4),
                        "w.biases": ("BF16", [2, 1], b"\3" * 4)}, {"format": "mlx"}),
        "fp8": image({"w": ("F8_E4M3", [2, 2], b"\x38" * 4), "w_scale_inv": ("F32", [1, 1], b"\0\0\x80\x3f")}),
        "mixed": image({"b": ("BOOL", [3], b"\1\0\1"), "e": ("I64", [0, 4], b""), "s": ("F16", [], b"\0\x3c"),
                        "i8": ("I8", [1], b"\x7f"), "u8": ("U8", [1], b"\x01"), "f64": ("F64", [1], b"\0" * 8)}),
        "index": json.dumps({"metadata": {"total_size": 8},
                             "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors"}}).encode(),
    }
    for name, blob in seeds.items():
        (out / name).write_bytes(blob)


if __name__ == "__main__":
    main()
