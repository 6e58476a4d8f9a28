"""Execute Rust notebooks headless with the evcxr kernel and fail on any error.

evcxr reports a Rust panic inside a cell only as text on the cell's stderr, with a successful
execution; so besides execution errors this treats "panicked at" in any stderr output as a
failure. Exit status: 0 when every notebook ran cleanly, 1 otherwise. With --expect-failure the
meaning is inverted (used by the test that proves a panicking notebook is caught).

usage: python3 notebooks/run_notebooks.py [--expect-failure] [--timeout S] NOTEBOOK...
"""
import argparse
import os
import sys
import time

import nbclient
import nbformat
from nbclient.exceptions import CellExecutionError


def problems_of(path, timeout):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="rust",
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    found = []
    try:
        client.execute()
    except CellExecutionError as e:
        found.append(f"execution error: {str(e).splitlines()[0] if str(e) else e!r}")
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr" and "panicked at" in out.get("text", ""):
                line = next(l for l in out["text"].splitlines() if "panicked at" in l)
                found.append(f"cell {i}: {line.strip()}")
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--expect-failure", action="store_true")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    a = ap.parse_args()
    failed = 0
    for path in a.notebooks:
        t = time.time()
        found = problems_of(path, a.timeout)
        status = "FAILED" if found else "ok"
        print(f"{path}: {status} ({time.time() - t:.0f}s)")
        for f in found:
            print(f"  {f}")
        failed += bool(found)
    if a.expect_failure:
        if failed == len(a.notebooks):
            print("every notebook failed, as expected")
            return 0
        print("error: a notebook expected to fail ran cleanly")
        return 1
    print(f"{len(a.notebooks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
