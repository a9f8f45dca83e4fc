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

__all__ = ["Glob", "class_regex"]

_LIT, _ANY, _CLASS, _STAR, _DSTAR, _EPS = range(6)


def class_regex(body: str) -> str:
    """The regular-expression class for a glob class body (``!`` negates)."""
    neg = body.startswith("!")
    body = body[1:] if neg else body
    body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
    return "[" + ("^" if neg else "") + body + "]"


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
        #: State visits made by the last :meth:`fullmatch` (for tests of the linear bound).
        self.steps = 0

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
        tokens, end = self._tokens, len(self._tokens)
        states = self._closure({0})
        steps = len(states)
        for ch in text:
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
            states = self._closure(nxt)
            steps += len(states) + 1
            if not states:
                break
        self.steps = steps
        return end in states
