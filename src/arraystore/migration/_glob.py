"""Rules and ``--include`` globs matched in linear time (no backtracking).

A glob is compiled into a list of tokens and matched by simulating the automaton they
form (Thompson's construction): the set of pattern positions alive after each character
of the path. Work is at most ``(len(tokens) + 1) * (len(path) + 1)`` state visits, whatever
the glob (``"**a" * 12 + "**b"`` backtracks for minutes in a regular-expression engine).

Semantics (the same as :func:`arraystore.migration.rules.glob_to_regex`, the documented
reference, compiled with ``re.DOTALL``), over the whole string:

* ``*`` any run of characters except ``/``; ``?`` one character except ``/``;
* ``**/`` zero or more whole folders; ``**`` elsewhere any run of characters, ``/`` included;
* ``[abc]``, ``[a-z]``, ``[!abc]`` one character of (not of) the class; a ``[`` without a
  closing ``]`` is literal; a negated class may match ``/``;
* every other character matches itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Glob", "class_regex", "to_regex"]

_LIT, _ANY, _CLASS, _STAR, _DSTAR, _EPS = range(6)

#: Cached DFA states per glob before the cache starts afresh (bounds memory on hostile input).
_MAX_DFA_STATES = 4096


def class_regex(body: str) -> str:
    """The regular-expression class for a glob class body (``!`` negates)."""
    neg = body.startswith("!")
    body = body[1:] if neg else body
    body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
    return "[" + ("^" if neg else "") + body + "]"


def to_regex(glob: str) -> re.Pattern[str]:
    """The reference meaning of a glob as a regular expression (``fullmatch``, ``re.DOTALL``)."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := glob.find("]", i + 2)) != -1:
            out.append(class_regex(glob[i + 1 : end]))
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


@dataclass(frozen=True)
class _Token:
    kind: int
    char: str = ""
    cls: re.Pattern[str] | None = None
    skip: tuple[int, ...] = ()  # epsilon moves of * and ** (relative: +1 skips the token)


class Glob:
    """A compiled glob.

    Parameters
    ----------
    glob
        The pattern (rules-file syntax, see the module docstring).

    Raises
    ------
    re.error
        A character class is invalid (e.g. a reversed range ``[z-a]``).
    """

    def __init__(self, glob: str) -> None:
        self.glob = glob
        tokens: list[_Token] = []
        i, n = 0, len(glob)
        while i < n:
            c = glob[i]
            if glob.startswith("**/", i):
                tokens.append(_Token(_EPS, skip=(1, 3)))  # ".*/" or nothing
                tokens.append(_Token(_DSTAR, skip=(1,)))
                tokens.append(_Token(_LIT, "/"))
                i += 3
                continue
            if glob.startswith("**", i):
                tokens.append(_Token(_DSTAR, skip=(1,)))
                i += 2
                continue
            if c == "*":
                tokens.append(_Token(_STAR, skip=(1,)))
            elif c == "?":
                tokens.append(_Token(_ANY))
            elif c == "[" and (end := glob.find("]", i + 2)) != -1:
                tokens.append(_Token(_CLASS, cls=re.compile(class_regex(glob[i + 1 : end]))))
                i = end
            else:
                tokens.append(_Token(_LIT, c))
            i += 1
        self._tokens = tuple(tokens)
        # A lazily built DFA over the automaton's state sets: each set gets an id, and each id
        # remembers where every character seen so far leads, so a long run of names costs one
        # dictionary lookup per character once the common transitions are known.
        self._ids: dict[frozenset[int], int] = {}
        self._sets: list[frozenset[int]] = []
        self._next: list[dict[str, int]] = []
        self._start = self._intern(self._closure({0}))
        # With at most one unbounded repeat a regular expression cannot backtrack more than
        # (path length x pattern length) steps either, and runs in C: use it (same meaning).
        stars = sum(t.kind in (_STAR, _DSTAR) for t in tokens)
        self._regex = to_regex(glob) if stars <= 1 else None
        #: State visits made by the last automaton match (for tests of the linear bound).
        self.steps = 0

    def _intern(self, states: set[int]) -> int:
        key = frozenset(states)
        sid = self._ids.get(key)
        if sid is None:
            sid = len(self._sets)
            self._ids[key] = sid
            self._sets.append(key)
            self._next.append({})
        return sid

    def __repr__(self) -> str:
        return f"Glob({self.glob!r})"

    def _closure(self, states: set[int]) -> set[int]:
        todo = list(states)
        while todo:
            i = todo.pop()
            if i < len(self._tokens):
                for d in self._tokens[i].skip:
                    if i + d not in states:
                        states.add(i + d)
                        todo.append(i + d)
        return states

    def fullmatch(self, text: str) -> bool:
        """Whether the glob matches all of ``text``."""
        if self._regex is not None:
            return self._regex.fullmatch(text) is not None
        return self.automaton_match(text)

    def automaton_match(self, text: str) -> bool:
        """:meth:`fullmatch` by the automaton alone (counts :attr:`steps`)."""
        if len(self._sets) > _MAX_DFA_STATES:  # bounded memory on hostile input: start afresh
            self._ids.clear()
            self._sets.clear()
            self._next.clear()
            self._start = self._intern(self._closure({0}))
        sid, steps = self._start, 1
        for ch in text:
            nxt = self._next[sid].get(ch)
            if nxt is None:
                states = self._step(self._sets[sid], ch)
                steps += len(self._sets[sid]) + len(states)
                nxt = self._next[sid][ch] = self._intern(states)
            steps += 1
            sid = nxt
            if not self._sets[sid]:
                break
        self.steps = steps
        return len(self._tokens) in self._sets[sid]

    def _step(self, states: frozenset[int], ch: str) -> set[int]:
        tokens, end = self._tokens, len(self._tokens)
        nxt: set[int] = set()
        for i in states:
            if i == end:
                continue
            t = tokens[i]
            if t.kind == _LIT:
                if ch == t.char:
                    nxt.add(i + 1)
            elif t.kind == _ANY:
                if ch != "/":
                    nxt.add(i + 1)
            elif t.kind == _CLASS:
                assert t.cls is not None
                if t.cls.fullmatch(ch) is not None:
                    nxt.add(i + 1)
            elif t.kind == _STAR:
                if ch != "/":
                    nxt.add(i)
            elif t.kind == _DSTAR:
                nxt.add(i)
        return self._closure(nxt)
