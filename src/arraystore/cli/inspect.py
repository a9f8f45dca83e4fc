"""``arraystore inspect FILE``: every piece of evidence about one raw file, and the layouts its size allows."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: Candidates shown in the text output (``--json`` has them all).
SHOWN = 12


def register(sub: Any) -> None:
    """Add the ``inspect`` sub-command."""
    p = sub.add_parser(
        "inspect",
        help="explain what is known about a raw file's layout, and what its size allows",
        description="Read every source of evidence about FILE (sidecars, headers, legacy JSON, folder manifests, "
        "rules, the file name) and print what each states, the resolved layout or why there is none, and the "
        "(dtype, shape) candidates consistent with its size. Nothing is written.",
    )
    p.add_argument("file", help="the raw data file")
    p.add_argument(
        "--root",
        help="archive root: folder manifests are searched up to it, rule globs are relative "
        "to it (default: the file's folder)",
    )
    p.add_argument("--rules", action="append", metavar="RULES.toml", help="rules file (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def explain(path: str, root: str | None = None, rules: list[str] | None = None) -> dict[str, Any]:
    """The facts ``inspect`` prints: the resolution record plus size and candidates for the whole size."""
    from ..migration import candidates, combine_rules, resolve

    res = resolve(path, root=root, rules=combine_rules(rules))
    size = Path(path).stat().st_size
    d = res.to_dict()
    d["size"] = size
    if "candidates" not in d:
        data_bytes = size - res.offset
        d["candidates"] = [c.to_dict() for c in candidates(max(data_bytes, 0))]
    if rules and d["status"] == "undetermined" and not any(e["source"].startswith("rules") for e in d["evidence"]):
        base = Path(root) if root else Path(path).parent
        d["notes"] = [*d.get("notes", []), (
            f"no rule of {', '.join(rules)} matched {d['name']!r}: rule globs are matched against the path "
            f"relative to the root {str(base)!r} (--root, default: the file's folder); pass --root ARCHIVE "
            "to match them as migrate does")]
    return d


def _text(d: dict[str, Any]) -> str:
    lines = [f"{d['name']}: {d['size']:,} bytes", ""]
    status = d["status"]
    if status == "resolved":
        lines.append(f"status: resolved (dtype stated by {d['source']})")
        lines.append(
            f"  dtype {d['dtype']}  shape {tuple(d['shape'])}  order {d['order']}  offset {d['offset']}"
        )
    elif status == "undetermined" and d.get("error"):  # the data contradict weak evidence
        lines.append(f"status: undetermined: {d['error']['type']}: {d['error']['message']}")
    elif status == "undetermined":
        lines.append("status: undetermined: no source states the dtype; nothing is guessed")
    else:
        lines.append(f"status: {status}: {d['error']['type']}: {d['error']['message']}")
    lines += ["", "evidence:"]
    width = max((len(e["source"]) for e in d["evidence"]), default=0)
    lines += [f"  {e['source']:<{width}}  {e['detail']}" for e in d["evidence"]] or ["  none found"]
    if d.get("notes"):
        lines += ["", "notes:"] + [f"  {n}" for n in d["notes"]]
    cands = d.get("candidates", [])
    heading = (
        "other layouts the size allows" if status == "resolved" else "candidates consistent with the size"
    )
    lines += ["", f"{heading} (dtype, shape):"]
    lines += [f"  {c['dtype']:<6} {tuple(c['shape'])}" for c in cands[:SHOWN]] or ["  none"]
    if len(cands) > SHOWN:
        lines.append(f"  ... {len(cands) - SHOWN} more (--json lists them all)")
    # A rule contradicting a source (the file name included) is a conflict unless it overrides it.
    stated = any(e["source"] not in ("default", "inference", "data") for e in d["evidence"])
    sized = status == "invalid" and d.get("error", {}).get("type") == "SizeMismatchError" and stated
    named = status == "undetermined" and bool(d.get("error")) and any(e["source"] == "filename" for e in d["evidence"])
    if status == "undetermined" or sized:
        lines += [
            "",
            "if the file is whole and a source above is wrong, state its layout in a rules file "
            "(originals are never edited):" if sized else "to migrate it, state its layout in a rules file:",
            "  [[rule]]",
            f"  glob = {json.dumps(d['name'])}",
            '  dtype = "..."',
            "  shape = [...]",
        ]
        if sized or named:
            lines.append("  override = true  # its facts win over the sources above")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the explanation; 0 when the file resolves, 3 when undetermined, 4 when conflict/invalid."""
    d = explain(args.file, args.root, args.rules)
    print(json.dumps(d, indent=2, default=str) if args.json else _text(d))
    return {"resolved": 0, "undetermined": 3}.get(d["status"], 4)
