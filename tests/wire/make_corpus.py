#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_wire (tests/fuzz/corpus/wire/): valid buffers of format 2
(with and without extras and metadata) and of format 1 for several dtypes and ranks, and a few
near-misses. An independent encoder of the byte layout in docs/wire.md."""
import os
import struct
import sys

SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 2, 8: 4, 9: 8, 10: 2, 11: 4, 12: 8, 13: 8, 14: 16}


def nbytes(dtype, shape):
    n = SIZES[dtype]
    for s in shape:
        n *= s
    return n


def payload_for(n, version):
    return bytes((i * 31 + version) & 0xFF for i in range(n))


def encode(dtype, shape, version=1, flags=1, payload=None, extras=(0, 0, 0, 0), meta=b""):
    """Format 2: 128-byte fixed header, shape, metadata, zero padding to 64, payload."""
    ndim = len(shape)
    hlen = 128 + 8 * ndim
    off = (hlen + len(meta) + 63) // 64 * 64
    n = nbytes(dtype, shape)
    if payload is None:
        payload = payload_for(n, version)
    hdr = struct.pack("<IHHHBBIQQQQQQ", 0x5753444E, 2, hlen, flags, dtype, ndim, off, version,
                      123456789, 1700000000123456789, n, version, 0xC0FFEE)
    hdr += struct.pack("<QQQQIIQ", *extras, len(meta), 0, 1800000000123456789) + bytes(16)
    hdr += b"".join(struct.pack("<Q", s) for s in shape) + meta
    return hdr + bytes(off - len(hdr)) + payload


def encode_v1(dtype, shape, version=1, flags=1):
    """Format 1 (the previous release): 64-byte fixed header, no extras."""
    ndim = len(shape)
    hlen = 64 + 8 * ndim
    off = (hlen + 63) // 64 * 64
    n = nbytes(dtype, shape)
    hdr = struct.pack("<IHHHBBIQQQQQQ", 0x5753444E, 1, hlen, flags, dtype, ndim, off, version,
                      123456789, 1700000000123456789, n, version, 0xC0FFEE)
    hdr += b"".join(struct.pack("<Q", s) for s in shape)
    return hdr + bytes(off - hlen) + payload_for(n, version)


def main(out):
    os.makedirs(out, exist_ok=True)
    for old in os.listdir(out):
        os.remove(os.path.join(out, old))
    seeds = {
        "u8_rgb": encode(6, [4, 5, 3]),
        "f32_scalar": encode(11, []),
        "c128_32dims": encode(14, [1] * 31 + [2]),
        "f64_zero_size": encode(12, [3, 0, 2]),
        "i16_vector": encode(3, [17], version=99, flags=0),
        "bool_matrix": encode(1, [3, 3]),
        "extras_meta": encode(6, [2, 3], version=7, flags=3, extras=(11, 12, 13, 14),
                              meta=b"video/x-raw,format=RGB,width=3,height=2"),
        "meta_64": encode(9, [2], meta=bytes(range(64))),
        "v1_u8_rgb": encode_v1(6, [4, 5, 3]),
        "v1_f32_scalar": encode_v1(11, []),
    }
    good = seeds["extras_meta"]
    seeds["truncated"] = good[:-1]
    seeds["trailing"] = good + b"\0"
    seeds["bad_magic"] = b"NDSX" + good[4:]
    seeds["format3"] = good[:4] + b"\x03" + good[5:]
    seeds["header_only"] = good[:192]
    seeds["meta_cut"] = good[:150]
    seeds["v1_resent"] = encode_v1(6, [4, 5, 3], flags=3)
    seeds["v1_as_format2"] = seeds["v1_u8_rgb"][:4] + b"\x02" + seeds["v1_u8_rgb"][5:]
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus", "wire"))
