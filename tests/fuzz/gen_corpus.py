#!/usr/bin/env python3
"""Writes seed inputs for fuzz_proto into corpus/proto (run once; the files
are committed). Hand-packed msgpack so it needs no library."""
import os, struct

def u(n):
    if n < 0x80: return bytes([n])
    if n < 0x100: return b'\xcc' + bytes([n])
    if n < 0x10000: return b'\xcd' + struct.pack('>H', n)
    return b'\xcf' + struct.pack('>Q', n)

def s(t):
    b = t.encode()
    return bytes([0xa0 | len(b)]) + b if len(b) < 32 else b'\xd9' + bytes([len(b)]) + b

def arr(*xs):
    return bytes([0x90 | len(xs)]) + b''.join(xs)

T, F, NIL = b'\xc3', b'\xc2', b'\xc0'
seeds = {
    'ping': arr(u(1), u(17), u(1), arr(u(5))),
    'kv_get': arr(u(1), u(2), u(9), arr(NIL, s('a/b'), T, F, s('/'), u(0), u(0), u(10), u(5000))),
    'kv_put': arr(u(1), u(4), u(3), arr(NIL, s('k'), b'\xc4\x03abc', u(7), T, u(0))),
    'error': arr(u(1), u(1), u(2), arr(b'\xd3' + struct.pack('>q', -1003), s('No cluster leader'))),
    'member_event': arr(u(1), u(16), u(0), arr(u(1), u(1), arr(arr(s('n1'), s('127.0.0.1'), u(8301), b'\x81' + s('role') + s('consul'), u(1))))),
    'bad_version': arr(u(2), u(17), u(1), arr(u(5))),
    'huge_count': arr(u(1), u(3), u(1), b'\xdd\xff\xff\xff\xff'),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'proto')
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)
