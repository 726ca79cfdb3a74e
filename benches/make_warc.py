#!/usr/bin/env python3
"""Wraps the 990 trafilatura evaluation pages of ../shared/data into WARC files.

    make_warc.py DATA OUT.warc.gz                  one file, every page once
    make_warc.py DATA OUTDIR --parts 2             the pages split into 2 files
    make_warc.py DATA OUTDIR --bytes 1e9 --parts 2 pages cycled until 1 GB of HTML

One `response` record per page (HTTP 200, Content-Type text/html, the page
bytes as stored upstream), each record its own gzip member as Common Crawl
writes them, preceded by a `warcinfo` record. Records carry
`WARC-Identified-Payload-Type: text/html` as Common Crawl's do (datatrove's
WarcReader otherwise sniffs every payload with libmagic). WARC-Target-URI is
the page's URL from evaldata.json where it has one, else a made-up
http://eval.invalid/ URL; ids are deterministic so reruns write the same
bytes.

With --bytes, pages repeat in order until that many bytes of HTML are
written; each repeat gets its own URL (`?copy=N`) and record id, so the
records differ even though the pages do not. With --parts N, OUTDIR gets
files part-00000.warc.gz ... holding consecutive runs of pages of about equal
HTML bytes (so N workers of a reader that shards by file get equal work).
"""
import argparse, gzip, json, os, uuid
from urllib.parse import quote

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("out")
ap.add_argument("--parts", type=int, default=0, help="write OUT as a directory of this many files")
ap.add_argument("--bytes", type=float, default=0, help="cycle the pages until this many HTML bytes")
args = ap.parse_args()

root = os.path.join(args.data, "extraction", "trafilatura")
urls = {}
for key, v in json.load(open(os.path.join(root, "evaldata.json"), encoding="utf-8")).items():
    if key.startswith("http"):
        urls[v["file"]] = key


def record(kind, uri, rid, ctype, block, extra=""):
    head = f"WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{rid}>\r\n"
    if uri:
        head += f"WARC-Target-URI: {uri}\r\n"
    head += extra
    head += f"Content-Type: {ctype}\r\nContent-Length: {len(block)}\r\n\r\n"
    return gzip.compress(head.encode() + block + b"\r\n\r\n", compresslevel=6, mtime=0)


pages = []
for name in sorted(os.listdir(os.path.join(root, "html"))):
    with gzip.open(os.path.join(root, "html", name), "rb") as g:
        body = g.read()
    page = name[:-3] if name.endswith(".gz") else name
    pages.append((page, urls.get(page, "http://eval.invalid/" + quote(page)), body))

# The (page, copy) sequence to write: every page once, or cycled to --bytes.
total = sum(len(b) for _, _, b in pages)
want = args.bytes or total
seq, written, copy = [], 0, 0
while written < want:
    for i, (_, _, body) in enumerate(pages):
        if written >= want:
            break
        seq.append((i, copy))
        written += len(body)
    copy += 1

parts = max(args.parts, 1)
if args.parts:
    os.makedirs(args.out, exist_ok=True)
    outs = [os.path.join(args.out, f"part-{k:05}.warc.gz") for k in range(parts)]
else:
    outs = [args.out]
# Cut the sequence where the running byte count crosses each 1/parts mark.
cuts, acc, k = [], 0, 1
for j, (i, _) in enumerate(seq):
    acc += len(pages[i][2])
    if k < parts and acc >= written * k / parts:
        cuts.append(j + 1)
        k += 1
bounds = [0] + cuts + [len(seq)] * (parts - len(cuts))
for k, path in enumerate(outs):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        info = b"software: kiln benches/make_warc.py\r\n"
        f.write(record("warcinfo", None, uuid.uuid5(uuid.NAMESPACE_URL, f"warcinfo{k}"), "application/warc-fields", info))
        for i, c in seq[bounds[k] : bounds[k + 1]]:
            page, uri, body = pages[i]
            if c:
                uri += ("&" if "?" in uri else "?") + f"copy={c}"
            http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body)
            rid = uuid.uuid5(uuid.NAMESPACE_URL, uri + page)
            f.write(record("response", uri, rid, "application/http; msgtype=response", http + body, "WARC-Identified-Payload-Type: text/html\r\n"))
    os.replace(tmp, path)
print(f"{args.out}: {len(seq)} response records, {written} bytes of HTML, {len(outs)} file(s)")
