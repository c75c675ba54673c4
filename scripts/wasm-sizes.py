#!/usr/bin/env python3
"""Where the bytes of a wasm module go: code size per crate and the largest functions.

Reads the module's `name` section (cargo's output before wasm-bindgen and wasm-opt still has
it), attributes each function body to the crate of its (demangled) path, and prints, per crate,
the raw code bytes and, as an estimate of the wire, each crate's code compressed with brotli on
its own. Data segments are reported as one row. No dependencies beyond Python 3 (brotli is
used when the `brotli` module is present, else gzip -9 is shown).

    scripts/wasm-sizes.py target/front/wasm32-unknown-unknown/wasm-release/confab_app.wasm [--top 40]
"""
import re
import sys
import zlib
from collections import defaultdict

try:
    import brotli  # type: ignore

    def packed(b: bytes) -> int:
        return len(brotli.compress(b, quality=11))

    PACKER = "brotli"
except ImportError:  # pragma: no cover
    def packed(b: bytes) -> int:
        return len(zlib.compress(b, 9))

    PACKER = "zlib-9"


def leb(buf, pos):
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def demangle_path(name: str) -> str:
    """The path of a legacy-mangled Rust symbol (`_ZN4core3fmt5write17h..E` → core::fmt::write)."""
    m = re.match(r"_ZN(.*)E$", name)
    if not m:
        return name
    s, parts, i = m.group(1), [], 0
    while i < len(s) and s[i].isdigit():
        j = i
        while s[j].isdigit():
            j += 1
        n = int(s[i:j])
        parts.append(s[j : j + n])
        i = j + n
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    return "::".join(parts)


def crate_of(path: str) -> str:
    p = path.replace("$LT$", "<").replace("$GT$", ">").replace("$u20$", " ").replace("..", "::")
    p = p.lstrip("_<").strip()
    head = re.split(r"::|<| |\$", p, maxsplit=1)[0]
    return head or "?"


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 30
    buf = open(path, "rb").read()
    pos, imported, bodies, names, data = 8, 0, [], {}, 0
    while pos < len(buf):
        sid = buf[pos]
        size, pos = leb(buf, pos + 1)
        end = pos + size
        if sid == 2:  # imports: functions among them take the first indices
            count, p = leb(buf, pos)
            for _ in range(count):
                for _ in range(2):
                    n, p = leb(buf, p)
                    p += n
                kind = buf[p]
                p += 1
                if kind == 0:
                    _, p = leb(buf, p)
                    imported += 1
                elif kind == 1:
                    p += 1
                    flags = buf[p]
                    p += 1
                    _, p = leb(buf, p)
                    if flags & 1:
                        _, p = leb(buf, p)
                elif kind == 2:
                    flags = buf[p]
                    p += 1
                    _, p = leb(buf, p)
                    if flags & 1:
                        _, p = leb(buf, p)
                elif kind == 3:
                    p += 2
                else:
                    p += 1
                    _, p = leb(buf, p)
        elif sid == 10:
            count, p = leb(buf, pos)
            for _ in range(count):
                n, p = leb(buf, p)
                bodies.append(buf[p : p + n])
                p += n
        elif sid == 11:
            data = size
        elif sid == 0:
            n, p = leb(buf, pos)
            if buf[p : p + n] == b"name":
                p += n
                while p < end:
                    sub = buf[p]
                    sub_size, p = leb(buf, p + 1)
                    sub_end = p + sub_size
                    if sub == 1:
                        count, q = leb(buf, p)
                        for _ in range(count):
                            idx, q = leb(buf, q)
                            n, q = leb(buf, q)
                            names[idx] = buf[q : q + n].decode("utf-8", "replace")
                            q += n
                    p = sub_end
        pos = end
    per_crate, functions = defaultdict(list), []
    for i, body in enumerate(bodies):
        name = names.get(imported + i, f"func{imported + i}")
        path = demangle_path(name)
        per_crate[crate_of(path)].append(body)
        functions.append((len(body), path))
    code = sum(len(b) for b in bodies)
    print(f"{path}: {len(buf):,} bytes; code {code:,} in {len(bodies):,} functions; data {data:,}")
    print(f"{'crate':<28}{'functions':>10}{'code bytes':>12}{'share':>8}{PACKER + ' alone':>14}")
    rows = sorted(per_crate.items(), key=lambda kv: -sum(len(b) for b in kv[1]))
    for crate, bs in rows:
        total = sum(len(b) for b in bs)
        if total < code * 0.004:
            continue
        print(f"{crate:<28}{len(bs):>10}{total:>12,}{total / code:>8.1%}{packed(b''.join(bs)):>14,}")
    print(f"\nlargest {top} functions")
    for size, p in sorted(functions, reverse=True)[:top]:
        print(f"{size:>8,}  {p[:150]}")


if __name__ == "__main__":
    main()
