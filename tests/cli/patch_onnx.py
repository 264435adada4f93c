#!/usr/bin/python3
"""Sets one float of an ONNX initializer, in place (same size), for the CLI tests' bad
models (tests/cli/cli_test.sh): a weight of 1e38, a weight that makes logits overflow.

  patch_onnx.py IN.onnx                       lists the float initializers
  patch_onnx.py IN.onnx OUT.onnx NAME INDEX VALUE

A minimal protobuf walk (ModelProto.graph = 7, GraphProto.initializer = 5,
TensorProto.name = 8, raw_data = 9, float_data = 4), no onnx package needed.
"""
import struct
import sys


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def fields(b, start, end):
    """(field number, wire type, value start, value end) of each field in b[start:end]."""
    i = start
    while i < end:
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            _, j = varint(b, i)
            yield num, wt, i, j
        elif wt == 1:
            yield num, wt, i, i + 8
            j = i + 8
        elif wt == 2:
            n, i = varint(b, i)
            yield num, wt, i, i + n
            j = i + n
        elif wt == 5:
            yield num, wt, i, i + 4
            j = i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        i = j


def initializers(b):
    """name -> (offset of the float32 data, count)."""
    out = {}
    for num, wt, s, e in fields(b, 0, len(b)):
        if num != 7 or wt != 2:
            continue
        for gnum, gwt, gs, ge in fields(b, s, e):
            if gnum != 5 or gwt != 2:
                continue
            name, data, dtype = "", None, 1
            for tnum, twt, ts, te in fields(b, gs, ge):
                if tnum == 8:
                    name = b[ts:te].decode()
                elif tnum == 2:
                    dtype, _ = varint(b, ts)
                elif tnum in (9, 4) and twt == 2:
                    data = (ts, (te - ts) // 4)
            if data and dtype == 1:
                out[name] = data
    return out


def main():
    b = bytearray(open(sys.argv[1], "rb").read())
    inits = initializers(b)
    if len(sys.argv) == 2:
        for name, (off, n) in inits.items():
            print(name, n)
        return
    out, name, index, value = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    off, n = inits[name]
    assert 0 <= index < n, "index out of range"
    b[off + 4 * index: off + 4 * index + 4] = struct.pack("<f", value)
    open(out, "wb").write(b)


main()
