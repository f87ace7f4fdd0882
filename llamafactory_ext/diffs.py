"""What changed between two records, one readable line per change: the settings a resume compares
(``io.check_settings``), a provenance record (``provenance.diff``), any two JSON-like values.

:func:`changes` walks two values and names each leaf that differs with a dotted key
(``engine.device: 'cpu' -> 'cuda'``, ``train[3]: 'lr=1' -> 'lr=2'``); a content identity (a mapping
with ``kind`` and ``digest``, made by ``provenance.identify``) is compared by its digest alone and
shown as ``content changed (sha 3f2a9c… -> 9b41e0…; config.json size 832 -> 833)``, never as two
dict reprs.
"""

from __future__ import annotations

from typing import Any


def is_identity(value: Any) -> bool:
    """A content identity (``provenance.identify``): a mapping with ``kind`` and ``digest``."""
    return isinstance(value, dict) and "digest" in value and "kind" in value


def short_sha(digest: Any) -> str:
    return f"{digest[:6]}…" if isinstance(digest, str) and digest else "none"


def identity_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """``content changed (sha 3f2a9c… -> 9b41e0…; config.json sha … -> …)``, or None when the
    contents are the same (the path may differ: a moved file is the same input)."""
    if old.get("digest") == new.get("digest"):
        return None
    if old.get("kind") == new.get("kind") == "hub" and None in (old.get("commit"), new.get("commit")) and \
            (old.get("id"), old.get("revision")) == (new.get("id"), new.get("revision")):
        return None  # one side did not have the snapshot in its cache: id and revision are all there is to compare
    if old.get("digest") is None or new.get("digest") is None:
        return "was missing, now present" if old.get("digest") is None else "now missing"
    details = []
    if old.get("commit") != new.get("commit") and old.get("commit") and new.get("commit"):
        details.append(f"commit {short_sha(old['commit'])} -> {short_sha(new['commit'])}")
    a, b = old.get("files") or {}, new.get("files") or {}
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            details.append(f"{name} {'added' if name not in a else 'removed'}")
        elif a[name].get("digest") != b[name].get("digest"):
            what = "header changed" if a[name].get("header") != b[name].get("header") else \
                f"size {a[name].get('size')} -> {b[name].get('size')}" if a[name].get("size") != b[name].get("size") else "content changed"
            details.append(f"{name} {what}")
    shown = details[:4] + ([f"and {len(details) - 4} more"] if len(details) > 4 else [])
    return f"content changed (sha {short_sha(old['digest'])} -> {short_sha(new['digest'])}" + "".join(f"; {d}" for d in shown) + ")"


def _show(value: Any, width: int = 100) -> str:
    """``repr(value)``, its middle cut when long (paths differ at their end)."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width // 3]}…{text[-(width - width // 3 - 1):]}"


def changes(old: Any, new: Any, key: str = "") -> list[tuple[str, str]]:
    """``(dotted key, "old -> new")`` for every leaf that differs: mappings by key (a missing key
    equals None), lists of one length by index (``train[3]``), other lists as items removed /
    added, content identities (and ``*sha256`` strings) as ``content changed (sha a… -> b…)``."""
    if old == new:
        return []
    if is_identity(old) and is_identity(new):
        change = identity_change(old, new)
        return [(key, change)] if change else []
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            sub = f"{key}.{k}" if key else str(k)
            if (k in old and k in new) or old.get(k) is None and new.get(k) is None:
                out += changes(old.get(k), new.get(k), sub)
            else:
                out.append((sub, f"{_show(old[k]) if k in old else '(unset)'} -> {_show(new[k]) if k in new else '(unset)'}"))
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) == len(new):
            return [c for i, (x, y) in enumerate(zip(old, new)) for c in changes(x, y, f"{key}[{i}]")]
        gone, added = [x for x in old if x not in new], [x for x in new if x not in old]
        return [(key, ", ".join([*(f"removed {_show(x)}" for x in gone), *(f"added {_show(x)}" for x in added)])
                 or f"{len(old)} -> {len(new)} items")]
    if key.endswith("sha256") and isinstance(old, str) and isinstance(new, str):
        return [(key, f"content changed (sha {short_sha(old)} -> {short_sha(new)})")]
    return [(key, f"{_show(old)} -> {_show(new)}")]


def settings_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every setting that differs, nested keys dotted (``engine.device``)."""
    return [f"{key}: {change}" for key, change in changes(old, new)]
