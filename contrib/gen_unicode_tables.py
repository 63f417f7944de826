#!/usr/bin/env python3
"""Writes src/ops/unicode_tables.rs from this machine's glibc C.UTF-8 tables.

p2p-wc decides printability of non-ASCII characters exactly as glibc's
iswprint does in C.UTF-8, so its word counts match GNU wc. Run from the
repository root: python3 contrib/gen_unicode_tables.py
"""
import ctypes
import platform

libc = ctypes.CDLL("libc.so.6")
libc.setlocale.restype = ctypes.c_char_p
if libc.setlocale(6, b"C.UTF-8") is None:  # 6 is LC_ALL
    raise SystemExit("the C.UTF-8 locale is not available")


def ranges(pred):
    out, start = [], None
    for c in range(0x80, 0x110000):
        v = pred(c)
        if v and start is None:
            start = c
        if not v and start is not None:
            out.append((start, c - 1))
            start = None
    if start is not None:
        out.append((start, 0x10FFFF))
    return out


surrogate = range(0xD800, 0xE000)
nonprint = ranges(lambda c: not libc.iswprint(c) and c not in surrogate)
lines = [
    "//! glibc's C.UTF-8 `iswprint` table for code points above U+007F.",
    f"//! Generated from glibc {platform.libc_ver()[1]} by contrib/gen_unicode_tables.py; do not edit.",
    "",
    "/// Inclusive, sorted ranges of code points that are not printable: C1",
    "/// controls, unassigned code points, line and paragraph separators.",
    "pub const NON_PRINTABLE: &[(u32, u32)] = &[",
]
lines += [f"    (0x{a:X}, 0x{b:X})," for a, b in nonprint]
lines.append("];")
with open("src/ops/unicode_tables.rs", "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"{len(nonprint)} ranges")
