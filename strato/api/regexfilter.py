"""Regular-expression filters (``GET /servers?name=``): a bounded, portable subset.

Nova matches ``name`` as a regular expression in the database (MySQL's ``REGEXP``);
strato does too, with Python's ``re`` on SQLite and PostgreSQL's ``~``. A backtracking
engine given any pattern is a denial of service (``(a+)+b`` is exponential on a name of
a's, ``.*.*.*.*x`` a fifth power), and the two engines disagree on syntax (``(?P<n>)``,
``\\b``, ``{1,1000}``), which would surface as a database error. So a filter is parsed
here, before any query, and must be of this subset:

- at most 255 characters (the longest name), printable;
- literals, ``.``, ``^``, ``$``, ``\\d \\w \\s \\D \\W \\S``, any punctuation escaped
  with ``\\``; bracket classes ``[a-z0-9_]``, ``[^-]`` (``\\d \\w \\s`` inside);
- groups ``(...)`` and ``(?:...)``, alternation ``|``;
- repeats ``* + ? {n} {n,} {n,m}`` (lazy ``?`` allowed), with ``n, m <= 255``.

and, so that matching one name is cheap (a few tens of milliseconds at worst, on a
255-character name): a repeated group (one that may match more than once) holds no
alternation and no repeat other than an exact ``{n}`` (no nested or alternated repeats,
which backtrack exponentially); and the product of the weights of the choices the pattern
leaves stays within :data:`MAX_CHOICES`. An open-ended repeat (``*``, ``+``, ``{n,}``,
or up to 255) weighs 256; a bounded one the square of its choices (``?`` 4, ``{2,5}``
16), as Python's engine backtracks through those more slowly; an alternation of k
branches k times their sum. So two open-ended repeats pass, three do not; one with four
``?``, or eight ``?`` alone. Backreferences, look-arounds, flags and named groups are
refused. Everything else is a 400.

As nothing refers to a group, the filter's groups are made non-capturing (``(a)*`` is
ten times slower than ``(?:a)*`` in Python's engine); what it matches is unchanged.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from strato.domain.errors import Invalid

__all__ = ["MAX_CHOICES", "MAX_LENGTH", "check_regex_filter"]

MAX_LENGTH = 255  # Nova's name column; also the longest name a filter is matched against
MAX_REPEAT = 255  # PostgreSQL's RE_DUP_MAX
MAX_CHOICES = 2 ** 16  # two open-ended repeats
MAX_DEPTH = 16  # nested groups
_BOUNDS = re.compile(r"\{([0-9]{1,3})(,([0-9]{0,3}))?\}")
_META = frozenset("()[]{}*+?|\\.^$")
_CLASS_ESCAPES = frozenset("dws")
_ESCAPES = frozenset("dwsDWS")


class _Refused(Exception):  # noqa: N818 - internal: becomes the Invalid below
    pass


@dataclass(frozen=True, slots=True)
class _Piece:
    """What a parsed part of a pattern may cost: ``choices`` (the product of what its
    repeats leave open), whether it holds an alternation, whether it may be repeated
    (an anchor may not)."""

    choices: int = 1
    alternates: bool = False
    repeatable: bool = True

    @property
    def choice_free(self) -> bool:
        return self.choices == 1 and not self.alternates


def check_regex_filter(field: str, raw: str) -> str:
    """The pattern to match ``raw`` with (its groups non-capturing) if it is a filter
    of the safe subset (module docstring); else ``Invalid`` in the words of Nova's
    query-parameter validation."""
    try:
        return _check(raw)
    except _Refused as exc:
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        raise Invalid(f"Invalid input for query parameters {field}. Value: {shown}. "
                      f"Not a regular expression of the supported subset: {exc}") from None


def _check(raw: str) -> str:
    if len(raw) > MAX_LENGTH:
        raise _Refused(f"A filter has at most {MAX_LENGTH} characters.")
    if not raw.isprintable():
        raise _Refused("A filter has only printable characters.")
    parser = _Parser(raw)
    if parser.parse().choices > MAX_CHOICES:
        raise _Refused("The filter leaves too many ways to match (at most two open-ended "
                       "repeats, or a few bounded ones).")
    pattern = parser.non_capturing()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            re.compile(pattern)
        except (re.error, Warning) as exc:  # the subset should never get here
            raise _Refused(f"Not a regular expression: {exc}.") from None
    return pattern


class _Parser:
    """A recursive-descent parser of the subset: ``alternation := sequence ('|'
    sequence)*``, ``sequence := (atom repeat?)*``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0
        self.captures: list[int] = []  # where each capturing "(" is

    def parse(self) -> _Piece:
        piece = self._alternation()
        if self.pos < len(self.text):  # only a ")" stops an alternation early
            raise _Refused(f"Unbalanced ')' at position {self.pos}.")
        return piece

    def non_capturing(self) -> str:
        """The parsed text with every group made non-capturing."""
        parts, start = [], 0
        for at in self.captures:
            parts += [self.text[start:at], "(?:"]
            start = at + 1
        return "".join([*parts, self.text[start:]])

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _take(self) -> str:
        char = self._peek()
        if not char:
            raise _Refused("The filter ends too early.")
        self.pos += 1
        return char

    def _alternation(self) -> _Piece:
        branches = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._sequence())
        if len(branches) == 1:
            return branches[0]
        return _Piece(choices=min(len(branches) * sum(b.choices for b in branches),
                                  MAX_CHOICES + 1), alternates=True)

    def _sequence(self) -> _Piece:
        choices, alternates = 1, False
        while self._peek() not in ("", "|", ")"):
            piece = self._repeated(self._atom())
            choices = min(choices * piece.choices, MAX_CHOICES + 1)
            alternates = alternates or piece.alternates
        return _Piece(choices=choices, alternates=alternates)

    def _atom(self) -> _Piece:
        char = self._take()
        if char == "(":
            return self._group()
        if char == "[":
            self._class()
            return _Piece()
        if char == "\\":
            self._escape(_ESCAPES)
            return _Piece()
        if char in "^$":
            return _Piece(repeatable=False)
        if char == ".":
            return _Piece()
        if char in "*+?{":
            raise _Refused(f"Nothing to repeat at position {self.pos - 1}.")
        if char in _META:
            raise _Refused(f"Escape {char!r} (position {self.pos - 1}) with a backslash.")
        return _Piece()

    def _group(self) -> _Piece:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Refused(f"At most {MAX_DEPTH} nested groups.")
        if self._peek() == "?":
            self.pos += 1
            if self._take() != ":":
                raise _Refused("Only (...) and (?:...) groups: no look-arounds, flags or "
                               "named groups.")
        else:
            self.captures.append(self.pos - 1)
        piece = self._alternation()
        if self._take() != ")":
            raise _Refused("Missing ')'.")
        self.depth -= 1
        return piece

    def _escape(self, letters: frozenset[str]) -> str:
        char = self._take()
        if char in letters:
            return char
        if char.isascii() and not char.isalnum():
            return char
        raise _Refused(f"Unsupported escape '\\{char}' (no backreferences, word "
                       "boundaries or character codes).")

    def _class(self) -> None:
        if self._peek() == "^":
            self.pos += 1
        count = 0
        while self._peek() != "]":
            low = self._class_char()
            count += 1
            if self._peek() == "-" and self.text[self.pos + 1:self.pos + 2] not in ("]", ""):
                self.pos += 1
                high = self._class_char()
                if len(low) != 1 or len(high) != 1 or low > high:
                    raise _Refused(f"Bad range {low}-{high} in a [...] class.")
        self.pos += 1
        if count == 0:
            raise _Refused("An empty [] class.")

    def _class_char(self) -> str:
        char = self._take()
        if char == "\\":
            escaped = self._escape(_CLASS_ESCAPES)
            return "\\" + escaped if escaped in _CLASS_ESCAPES else escaped
        if char == "[":
            raise _Refused("Escape '[' inside a [...] class.")
        return char

    def _repeated(self, atom: _Piece) -> _Piece:
        bounds = self._repeat()
        if bounds is None:
            return atom
        low, high = bounds
        if not atom.repeatable:
            raise _Refused("An anchor (^ or $) cannot be repeated.")
        if self._peek() == "?":  # lazy
            self.pos += 1
        if self._peek() in ("*", "+", "?", "{"):
            raise _Refused(f"A repeat of a repeat at position {self.pos}.")
        if high > 1 and not atom.choice_free:
            raise _Refused("A repeated group may hold no alternation and no repeat other "
                           "than {n} (nested repeats backtrack exponentially).")
        return _Piece(choices=atom.choices * _weight(low, high), alternates=atom.alternates)

    def _repeat(self) -> tuple[int, int] | None:
        """The repeat at the cursor as (least, most) times; "any number" is
        ``MAX_LENGTH + 1``."""
        char = self._peek()
        simple = {"*": (0, MAX_LENGTH + 1), "+": (1, MAX_LENGTH + 1), "?": (0, 1)}
        if char in simple:
            self.pos += 1
            return simple[char]
        if char != "{":
            return None
        match = _BOUNDS.match(self.text, self.pos)
        if match is None:
            raise _Refused("A {...} repeat is {n}, {n,} or {n,m}; escape a literal '{'.")
        self.pos = match.end()
        low = int(match[1])
        high = low if match[2] is None else int(match[3]) if match[3] else MAX_LENGTH + 1
        if low > MAX_REPEAT or (match[3] and high > MAX_REPEAT) or low > high:
            raise _Refused(f"A {{n,m}} repeat needs n <= m <= {MAX_REPEAT}.")
        return low, high


def _weight(low: int, high: int) -> int:
    """What a repeat of ``low`` to ``high`` times weighs (module docstring)."""
    if high >= MAX_LENGTH:
        return MAX_LENGTH + 1
    return (high - low + 1) ** 2
