#!/usr/bin/env python3
"""Writes src/ops/unicode_tables.rs from this machine's glibc C.UTF-8 tables.

`p2p-wc -L` gives each non-ASCII character the display width that glibc's
wcwidth gives it in C.UTF-8, as GNU wc does, so the maximum line lengths
match; names in messages are quoted where glibc's iswprint says a
character is unprintable, as GNU's quotef does. Run from the repository
root: python3 contrib/gen_unicode_tables.py
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
# wc adds nothing for a width of 0 or -1 (not printable).
zero = ranges(lambda c: c not in surrogate and libc.wcwidth(c) <= 0)
double = ranges(lambda c: c not in surrogate and libc.wcwidth(c) == 2)
nonprint = ranges(lambda c: not libc.iswprint(c) and c not in surrogate)
lines = [
    "//! glibc's C.UTF-8 `wcwidth` and `iswprint` for code points above U+007F, as ranges.",
    f"//! Generated from glibc {platform.libc_ver()[1]} by contrib/gen_unicode_tables.py; do not edit.",
    "",
    "/// Inclusive, sorted ranges of code points that are not printable: C1",
    "/// controls, unassigned code points, line and paragraph separators.",
    "pub const NON_PRINTABLE: &[(u32, u32)] = &[",
]
lines += [f"    (0x{a:X}, 0x{b:X})," for a, b in nonprint]
lines += [
    "];",
    "",
    "/// Inclusive, sorted ranges of code points that add no width: combining",
    "/// and zero-width characters, and those glibc calls unprintable (C1",
    "/// controls, unassigned code points, line and paragraph separators).",
    "pub const ZERO_WIDTH: &[(u32, u32)] = &[",
]
lines += [f"    (0x{a:X}, 0x{b:X})," for a, b in zero]
lines += [
    "];",
    "",
    "/// Inclusive, sorted ranges of code points two columns wide (East Asian",
    "/// wide and fullwidth characters, most emoji).",
    "pub const DOUBLE_WIDTH: &[(u32, u32)] = &[",
]
lines += [f"    (0x{a:X}, 0x{b:X})," for a, b in double]
lines.append("];")
with open("src/ops/unicode_tables.rs", "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"{len(zero)} zero-width ranges, {len(double)} double-width ranges")
