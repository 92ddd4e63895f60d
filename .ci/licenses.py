#!/usr/bin/env python3
"""Checks every crate in the dependency graph against deny.toml's licence
allow-list (what `cargo deny check licenses` does, without installing it).

A crate passes when its SPDX expression can be satisfied by allowed
licences: for `A OR B` one side must be allowed, for `A AND B` both.
"""
import json
import re
import subprocess
import sys
import tomllib

with open("deny.toml", "rb") as f:
    allowed = set(tomllib.load(f)["licenses"]["allow"])

meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--locked"]))
workspace = set(meta["workspace_members"])


def satisfiable(expr: str) -> bool:
    expr = expr.replace("/", " OR ")
    tokens = re.findall(r"\(|\)|[A-Za-z0-9.\-+]+(?: WITH [A-Za-z0-9.\-+]+)?", expr)
    pos = 0

    def parse_or():
        nonlocal pos
        ok = parse_and()
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            ok = parse_and() or ok
        return ok

    def parse_and():
        nonlocal pos
        ok = parse_atom()
        while pos < len(tokens) and tokens[pos] == "AND":
            pos += 1
            ok = parse_atom() and ok
        return ok

    def parse_atom():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            ok = parse_or()
            pos += 1  # ")"
            return ok
        return tok in allowed

    return parse_or()


bad = []
for pkg in meta["packages"]:
    if pkg["id"] in workspace:
        continue
    lic = pkg.get("license")
    if not lic or not satisfiable(lic):
        bad.append(f"{pkg['name']} {pkg['version']}: {lic or 'no licence field'}")

if bad:
    print("licences not in deny.toml's allow-list:", *bad, sep="\n  ")
    sys.exit(1)
print(f"licences ok: {len(meta['packages']) - len(workspace)} crates")
