#!/usr/bin/env python3
"""Wraps the 990 trafilatura evaluation pages of ../shared/data into one WARC.

    make_warc.py DATA OUT.warc.gz

One `response` record per page (HTTP 200, Content-Type text/html, the page
bytes as stored upstream), each record its own gzip member as Common Crawl
writes them, preceded by a `warcinfo` record. WARC-Target-URI is the page's
URL from evaldata.json where it has one, else a made-up http://eval.invalid/
URL; ids are deterministic so reruns write the same file.
"""
import gzip, json, os, sys, uuid
from urllib.parse import quote

data, out = sys.argv[1], sys.argv[2]
root = os.path.join(data, "extraction", "trafilatura")
urls = {}
for key, v in json.load(open(os.path.join(root, "evaldata.json"), encoding="utf-8")).items():
    if key.startswith("http"):
        urls[v["file"]] = key


def record(kind, uri, rid, ctype, block):
    head = f"WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{rid}>\r\n"
    if uri:
        head += f"WARC-Target-URI: {uri}\r\n"
    head += f"Content-Type: {ctype}\r\nContent-Length: {len(block)}\r\n\r\n"
    return gzip.compress(head.encode() + block + b"\r\n\r\n", compresslevel=6, mtime=0)


pages = sorted(os.listdir(os.path.join(root, "html")))
tmp = out + ".tmp"
with open(tmp, "wb") as f:
    f.write(record("warcinfo", None, uuid.uuid5(uuid.NAMESPACE_URL, "warcinfo"), "application/warc-fields", b"software: kiln benches/make_warc.py\r\n"))
    for name in pages:
        with gzip.open(os.path.join(root, "html", name), "rb") as g:
            body = g.read()
        page = name[:-3] if name.endswith(".gz") else name
        uri = urls.get(page, "http://eval.invalid/" + quote(page))
        http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body)
        f.write(record("response", uri, uuid.uuid5(uuid.NAMESPACE_URL, uri + page), "application/http; msgtype=response", http + body))
os.replace(tmp, out)
print(f"{out}: {len(pages)} response records")
