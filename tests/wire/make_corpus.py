#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_wire (tests/fuzz/corpus/wire/): valid buffers for several
dtypes and ranks, and a few near-misses. Byte layout: docs/wire.md."""
import os
import struct
import sys

SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 2, 8: 4, 9: 8, 10: 2, 11: 4, 12: 8, 13: 8, 14: 16}


def encode(dtype, shape, version=1, flags=1, payload=None):
    ndim = len(shape)
    hlen = 64 + 8 * ndim
    off = (hlen + 63) // 64 * 64
    n = SIZES[dtype]
    for s in shape:
        n *= s
    if payload is None:
        payload = bytes((i * 31 + version) & 0xFF for i in range(n))
    hdr = struct.pack("<IHHHBBIQQQQQQ", 0x5753444E, 1, hlen, flags, dtype, ndim, off, version,
                      123456789, 1700000000123456789, n, version, 0xC0FFEE)
    hdr += b"".join(struct.pack("<Q", s) for s in shape)
    return hdr + bytes(off - hlen) + payload


def main(out):
    os.makedirs(out, exist_ok=True)
    seeds = {
        "u8_rgb": encode(6, [4, 5, 3]),
        "f32_scalar": encode(11, []),
        "c128_32dims": encode(14, [1] * 31 + [2]),
        "f64_zero_size": encode(12, [3, 0, 2]),
        "i16_vector": encode(3, [17], version=99, flags=0),
        "bool_matrix": encode(1, [3, 3]),
    }
    good = seeds["u8_rgb"]
    seeds["truncated"] = good[:-1]
    seeds["trailing"] = good + b"\0"
    seeds["bad_magic"] = b"NDSX" + good[4:]
    seeds["format2"] = good[:4] + b"\x02" + good[5:]
    seeds["header_only"] = good[:128]
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus", "wire"))
