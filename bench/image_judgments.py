"""Every judgment of the image benchmark, recorded, and two recordings compared.

A change meant to keep the image wing's behaviour (a refactor, a faster equivalent) is
checked by recording what every query of ``bench.image_bench`` returned (works, scores,
signals, distances, evidence: every hit, in order) before and after, on the same cached
fingerprints, and comparing the two recordings line by line.

    .venv/bin/python -m bench.image_judgments record OUT.jsonl -- [image_bench options]
    .venv/bin/python -m bench.image_judgments replay CACHE.pkl OUT.jsonl [--per-transform N]
        [--distractors N] [--siblings N] [--index MODULE:CLASS]
    .venv/bin/python -m bench.image_judgments compare BEFORE.jsonl AFTER.jsonl

``record`` runs the benchmark itself (pass ``--million 0``: the scale test has synthetic
codes and no judgments worth keeping) with an index that writes each search's hits.
``replay`` judges a fixed subset of a benchmark's cached fingerprints (``--cache`` of
``bench.image_bench``): the first N queries of every transform, then N distractors and N
siblings, against all registered works; ``--index`` names the index class (another
version of it, on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pickle
import sys
from pathlib import Path

from bench import image_bench


def _line(hits: list) -> str:
    return json.dumps([h.model_dump() for h in hits], sort_keys=True, default=repr)


def record(out: Path, bench_args: list[str]) -> None:
    base = image_bench.ImageIndex

    with out.open("w") as f:

        class RecordingIndex(base):  # type: ignore[misc, valid-type]
            """The benchmark's index, writing every search's hits as one JSON line."""

            def search(self, fingerprint, limit: int = 10, **kw):  # type: ignore[override]
                hits = super().search(fingerprint, limit, **kw)
                f.write(_line(hits) + "\n")
                return hits

        image_bench.ImageIndex = RecordingIndex
        try:
            image_bench.main(bench_args)
        finally:
            image_bench.ImageIndex = base


def replay(
    cache: Path, out: Path, index: str, per_transform: int, distractors: int, siblings: int
) -> None:
    module, name = index.split(":")
    idx = getattr(importlib.import_module(module), name)()
    results = pickle.loads(cache.read_bytes())
    registered = [r for r in results if r["kind"] == "registered"]
    for i, r in enumerate(registered):
        idx.add(f"w{i}", r["fp"])
    queries = []
    for t in registered[0]["queries"]:  # the transforms as the cache holds them
        rs = [r for r in registered if t in r.get("queries", {})][:per_transform]
        queries += [r["queries"][t] for r in rs]
    for kind, n in (("distractor", distractors), ("sibling", siblings)):
        queries += [r["fp"] for r in results if r["kind"] == kind][:n]
    with out.open("w") as f:
        for q in queries:
            f.write(_line(idx.search(q)) + "\n")
            f.flush()


def compare(before: Path, after: Path) -> int:
    a, b = before.read_text().splitlines(), after.read_text().splitlines()
    differ = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    with_hits = sum(1 for x in a if x != "[]")
    print(
        f"{len(a)} judgments before ({with_hits} with hits), {len(b)} after: "
        f"{len(differ)} differ" + ("" if len(a) == len(b) else " (counts differ)")
    )
    for i in differ[:10]:
        print(f"  #{i}\n    before {a[i][:400]}\n    after  {b[i][:400]}")
    return 0 if not differ and len(a) == len(b) else 1


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("bench_args", nargs=argparse.REMAINDER)
    rep = sub.add_parser("replay")
    rep.add_argument("cache", type=Path)
    rep.add_argument("out", type=Path)
    rep.add_argument("--index", default="contentmatch_match.image:ImageIndex")
    rep.add_argument("--per-transform", type=int, default=20)
    rep.add_argument("--distractors", type=int, default=100)
    rep.add_argument("--siblings", type=int, default=40)
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("before", type=Path)
    cmp_.add_argument("after", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "record":
        rest = [a for a in args.bench_args if a != "--"]
        record(args.out, rest)
    elif args.cmd == "replay":
        replay(
            args.cache,
            args.out,
            args.index,
            args.per_transform,
            args.distractors,
            args.siblings,
        )
    else:
        sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
