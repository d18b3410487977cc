#!/usr/bin/env python3
"""Package a built `stab` binary as a Python wheel that puts `stab` on PATH.

    build_wheel.py --binary target/dist/stab --out target/wheels

The layout is the one maturin's `bin` bindings write (PEP 427): the binary under
`stab-VERSION.data/scripts/`, which pip installs into the environment's `bin/`, beside
`stab-VERSION.dist-info/` (METADATA, WHEEL, RECORD with sha256 digests). The version is
the workspace's; the platform tag is manylinux for the newest glibc symbol version the
binary needs. Standard library only. scripts/build_wheel.sh builds the binary (the `dist`
profile: release without debug info) and calls this; CI packs its test binary the same way
and installs the wheel into a fresh venv (scripts/wheel_e2e.sh).
"""

import argparse
import base64
import hashlib
import os
import platform
import re
import sys
import zipfile


def workspace_version(cargo_toml):
    text = open(cargo_toml).read()
    section = text.split("[workspace.package]", 1)[1]
    return re.search(r'^version\s*=\s*"([^"]+)"', section, re.M).group(1)


def platform_tag(binary):
    """manylinux_2_N for the newest GLIBC_2.N the binary refers to (its symbol versions)."""
    data = open(binary, "rb").read()
    versions = [tuple(map(int, v.split(b"."))) for v in re.findall(rb"GLIBC_(2\.\d+(?:\.\d+)?)\x00", data)]
    if not versions:
        sys.exit(f"{binary}: no GLIBC symbol versions found; is it a dynamically linked Linux binary?")
    major, minor = max(versions)[:2]
    arch = platform.machine()
    return f"manylinux_{major}_{minor}_{arch}"


def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the built stab executable")
    ap.add_argument("--out", required=True, help="directory for the .whl")
    ap.add_argument("--cargo-toml", default=os.path.join(os.path.dirname(__file__), "..", "Cargo.toml"))
    a = ap.parse_args()

    version = workspace_version(a.cargo_toml)
    tag = f"py3-none-{platform_tag(a.binary)}"
    name = f"stab-{version}-{tag}.whl"
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, name)
    if os.path.exists(path):
        os.remove(path)  # ours to rebuild: the name says version and platform

    dist_info = f"stab-{version}.dist-info"
    files = [
        (f"stab-{version}.data/scripts/stab", open(a.binary, "rb").read(), 0o755),
        (f"{dist_info}/METADATA", (
            "Metadata-Version: 2.1\n"
            f"Name: stab\nVersion: {version}\n"
            "Summary: Measure and improve the stability of fine-tuning pre-trained transformers\n"
            "License: MIT OR Apache-2.0\n"
            "Requires-Python: >=3.8\n"
        ).encode(), 0o644),
        (f"{dist_info}/WHEEL", (
            "Wheel-Version: 1.0\nGenerator: stab scripts/build_wheel.py\n"
            f"Root-Is-Purelib: false\nTag: {tag}\n"
        ).encode(), 0o644),
    ]
    record = "".join(f"{n},{digest(d)},{len(d)}\n" for n, d, _ in files) + f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode(), 0o644))

    tmp = path + ".partial"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for n, d, mode in files:
            info = zipfile.ZipInfo(n, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, d)
    os.replace(tmp, path)
    print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB (binary {len(files[0][1]) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
