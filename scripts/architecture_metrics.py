#!/usr/bin/env python3
"""Architecture figures of the stab tree (issue #33's before/after table).

Prints lines per crate (src, tests), the longest files, the longest functions (brace
matching from each `fn` line; good enough for rustfmt'd code), the source files that name a
model family (`ModelFamily::`), `Result<_, String>` signatures, import circles between the
files of one crate (`use crate::a::…` edges, strongly connected components), and README lines.

Usage: scripts/architecture_metrics.py [ROOT]
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
crates = sorted(p.parent for p in root.glob("stab-*/Cargo.toml"))


def rs_files(d):
    return sorted(p for p in d.rglob("*.rs") if "target" not in p.parts)


def lines(p):
    return p.read_text().count("\n")


print("## Lines per crate (src / tests+benches)")
for c in crates:
    src = sum(lines(p) for p in rs_files(c / "src")) if (c / "src").exists() else 0
    rest = sum(lines(p) for p in rs_files(c) if "src" not in p.relative_to(c).parts[:1])
    print(f"{c.name:16} {src:6} {rest:6}")

allsrc = [p for c in crates for p in rs_files(c / "src")]
print("\n## Longest source files")
for p in sorted(allsrc, key=lines, reverse=True)[:5]:
    print(f"{lines(p):6} {p.relative_to(root)}")

fn_re = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")
funcs = []
for p in allsrc:
    text = p.read_text().split("\n")
    i = 0
    while i < len(text):
        m = fn_re.match(text[i])
        if m:
            depth, started, j = 0, False, i
            while j < len(text):
                code = re.sub(r'"(\\.|[^"\\])*"', '""', text[j].split("//")[0])
                code = re.sub(r"'(\\.|[^'\\])'", "''", code)
                depth += code.count("{") - code.count("}")
                if "{" in code:
                    started = True
                if started and depth <= 0:
                    break
                if not started and code.rstrip().endswith(";"):
                    break
                j += 1
            if started:
                funcs.append((j - i + 1, f"{p.relative_to(root)}::{m.group(6)}"))
        i += 1
print("\n## Longest functions")
for n, name in sorted(funcs, reverse=True)[:10]:
    print(f"{n:6} {name}")

def non_test(p):
    return p.read_text().split("#[cfg(test)]")[0]


print("\n## Source files that name a model family (ModelFamily::, test modules aside)")
fam = [p for p in allsrc if "ModelFamily::" in non_test(p)]
for p in fam:
    print(f"   {p.relative_to(root)} ({non_test(p).count('ModelFamily::')})")
print(f"   {len(fam)} files")

pat = re.compile(r"Result<[^<>]*(<[^<>]*>)?[^<>]*,\s*String>")
n = sum(len(pat.findall(p.read_text())) for p in allsrc)
print(f"\n## Result<_, String> in src: {n}")

print("\n## Import circles (files of one crate)")
circles = 0
for c in crates:
    src = c / "src"
    if not src.exists():
        continue
    mods = {}
    for p in rs_files(src):
        rel = p.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        mods["::".join(parts)] = p
    edges = {m: set() for m in mods}
    for m, p in mods.items():
        text = "\n".join(
            l
            for l in p.read_text().split("#[cfg(test)]")[0].split("\n")
            if not l.lstrip().startswith("//")
        )
        parent = m.rsplit("::", 1)[0] if "::" in m else ""
        found = re.findall(r"crate::((?:\w+::)*\w+)", text)
        # `super::x` inside a non-test file names a sibling module (tests' `super::*` aside).
        for rel in re.findall(r"(?<![\w:])super::((?:\w+::)*\w+)", text):
            found.append(f"{parent}::{rel}" if parent else rel)
        for path in found:
            segs = path.split("::")
            for k in range(len(segs), 0, -1):
                cand = "::".join(segs[:k])
                related = m.startswith(cand + "::") or cand.startswith(m + "::") or not m
                if cand in mods and cand != m and not related:
                    edges[m].add(cand)
                    break
    # Tarjan
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in edges:
        if v not in index:
            strong(v)
    for s in sccs:
        circles += 1
        print(f"   {c.name}: {' ↔ '.join(s)}")
print(f"   {circles} circles")

readme = root / "README.md"
print(f"\n## README lines: {lines(readme)}")
