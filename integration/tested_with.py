#!/usr/bin/env python3
"""Put the table of the last matrix run (results/tested-with.md) into the README,
between the markers <!-- tested-with:begin --> and <!-- tested-with:end -->."""
import sys

readme, table = sys.argv[1], sys.argv[2]
begin, end = "<!-- tested-with:begin -->", "<!-- tested-with:end -->"
text = open(readme, encoding="utf-8").read()
body = open(table, encoding="utf-8").read().strip()
if begin not in text or end not in text:
    sys.exit(f"tested_with.py: {readme} has no {begin} ... {end} markers")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(readme, "w", encoding="utf-8").write(f"{head}{begin}\n{body}\n{end}{tail}")
print(f"tested_with.py: {readme} updated from {table}")
