"""`python -m device taught` lists (and edits) taught sounds; `python -m device forget LABEL` removes one.

    python -m device taught [--taught DIR]
    python -m device taught "sound 1" --rename moo --picture cow.png --colour "#8844ff" --note 60
    python -m device forget moo [--taught DIR]

Editing is how a sound taught with the button (named "sound 1", "sound 2"...)
gets a real name and picture later. Only class.json (and picture.png) are
rewritten, atomically; the takes and the prototype stay as they are.
"""

from __future__ import annotations

import argparse

from device.sound.taught import TaughtStore


def _store(args: argparse.Namespace) -> TaughtStore:
    from device.sound.teach import load_config

    return TaughtStore(args.taught or load_config(args.config).teach.dir)


def main(argv: list[str] | None = None) -> int:
    from device.sound.teach import _colour, _note

    ap = argparse.ArgumentParser(prog="python -m device taught", description=__doc__.split("\n")[0])
    ap.add_argument("label", nargs="?", help="a taught sound to change (omit to list them all)")
    ap.add_argument("--rename", metavar="NEW", help="give it a new name")
    ap.add_argument("--picture", help="PNG shown when it is heard (copied into its folder)")
    ap.add_argument("--colour", type=_colour, help="LED and screen colour, e.g. \"#ff8800\"")
    ap.add_argument("--note", type=_note, help="MIDI note the synth plays")
    ap.add_argument("--taught", help="taught-sounds folder (default: config [teach] dir)")
    ap.add_argument("--config", help="config file (default /etc/saysee/config.toml if present)")
    args = ap.parse_args(argv)
    store = _store(args)
    edits = args.rename or args.picture or args.colour or args.note is not None
    if args.label is None:
        if edits:
            ap.error("name the taught sound to change")
        return _list(store)
    c = store.get(args.label)
    changes = {k: v for k, v in (("colour", args.colour), ("note", args.note)) if v is not None}
    if changes or args.picture:
        c = store.update(c.label, mapping=changes, picture=args.picture)
    if args.rename:
        from device.sound.teach import check_label_text

        check_label_text(args.rename)
        c = store.rename(c.label, args.rename)
    print(f"{c.label}: {_describe(c)}")
    return 0


def _describe(c) -> str:
    m = c.mapping
    parts = [f"{len(c.takes)} takes", f"colour {m.get('colour') or 'default'}"]
    if m.get("picture"):
        parts.append(f"picture {c.folder / m['picture']}")
    if m.get("note") is not None:
        parts.append(f"note {m['note']}")
    parts.append(f"embedding {c.embedding_version}")
    return ", ".join(parts)


def _list(store: TaughtStore) -> int:
    problems: list[str] = []
    classes = store.load(on_error=problems.append)
    if not classes and not problems:
        print(f"no taught sounds in {store.root}")
    for c in classes:
        print(f"{c.label}: {_describe(c)}")
    for p in problems:
        print(f"damaged: {p}")
    if problems:
        print("a damaged sound can be taught again, or removed with: python -m device forget LABEL")
    return 1 if problems else 0


def forget_main(argv: list[str] | None = None) -> int:
    """`python -m device forget LABEL`."""
    ap = argparse.ArgumentParser(prog="python -m device forget", description="Remove a taught sound.")
    ap.add_argument("label")
    ap.add_argument("--taught", help="taught-sounds folder (default: config [teach] dir)")
    ap.add_argument("--config", help="config file (default /etc/saysee/config.toml if present)")
    args = ap.parse_args(argv)
    store = _store(args)
    store.forget(args.label)
    print(f"forgot {args.label!r} ({store.root})")
    return 0
