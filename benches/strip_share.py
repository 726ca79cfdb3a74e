#!/usr/bin/env python3
"""What share of the 990 trafilatura pages' bytes the `extract` strip
pre-pass (src/clean/extract/strip.rs) removes, approximated with regexes:
comments and script/style/noscript/svg/math elements, then the attributes
outside its kept list. Prints bytes in, bytes left after the elements, the
bytes of unread attributes among those, and their share.

    python3 benches/strip_share.py [../shared/data]
"""
import gzip
import os
import re
import sys

KEPT = {b"class", b"id", b"role", b"itemprop", b"hidden", b"style", b"property", b"name", b"content",
        b"type", b"color", b"face", b"size", b"encoding"}
ELEMENTS = re.compile(rb"<!--.*?-->|<(script|style|noscript|svg|math)\b.*?</\1\s*>", re.S | re.I)
TAG = re.compile(rb"<([a-zA-Z][^\s/>]*)((?:\s+[^\s=/>]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*/?>")
ATTR = re.compile(rb"\s+([^\s=/>]+)(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?")

data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
d = os.path.join(data, "extraction/trafilatura/html")
total = left = unread = 0
for f in sorted(os.listdir(d)):
    b = gzip.decompress(open(os.path.join(d, f), "rb").read())
    total += len(b)
    s = ELEMENTS.sub(b"", b)
    left += len(s)
    for m in TAG.finditer(s):
        unread += sum(len(a.group(0)) for a in ATTR.finditer(m.group(2)) if a.group(1).lower() not in KEPT)
print(f"bytes {total}, after elements {left} ({left / total:.0%}), unread attributes {unread} ({unread / left:.0%} of those)")
