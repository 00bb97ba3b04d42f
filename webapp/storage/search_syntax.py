"""Web-search syntax → a small query tree, and each engine's query text built from it.

Pure: no Flask, no database. `acme "big launch" OR acmecorp -jobs` reads as
(acme AND "big launch") OR acmecorp, leaving out every record with "jobs": words and
"phrases" must all match, OR separates alternatives (as the job prompt and PostgreSQL's
websearch_to_tsquery read it), and -word or -"phrase" excludes whichever alternative matched.

A word is split where the search index splits text, at anything but letters, digits and
marks, so `e-mail` is the phrase "e mail" and `example.com` the phrase "example com"; a
word with no letter or digit is ignored. Each word reaches the engine quoted, as a value and
never as syntax, so no input can change the shape of the query.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# A quoted phrase (its closing quote may be missing: the phrase runs to the end), or a run
# of anything else up to a space or a quote.
_PIECE = re.compile(r'(-?)"([^"]*)"?|([^\s"]+)')
# Weights the index gives title, text and author (webapp.storage.search_schema): a phrase
# must lie within one of them, as it must in SQLite's per-column index.
COLUMN_WEIGHTS = "ABC"


class SearchSyntaxError(ValueError):
    """A search that cannot be run, with the sentence to show next to the search box."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Term:
    """One word, or a phrase: its words in order, each as the person typed it (the engines
    fold case and diacritics themselves)."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class SearchQuery:
    """OR of alternatives, each an AND of terms, minus every record with an exclusion."""

    alternatives: tuple[tuple[Term, ...], ...]
    exclusions: tuple[Term, ...] = ()

    def fts5(self) -> str:
        """An SQLite FTS5 MATCH expression: every term a double-quoted string."""
        wanted = " OR ".join(
            "(" + " AND ".join(_fts5_string(term) for term in terms) + ")"
            for terms in self.alternatives
        )
        if not self.exclusions:
            return wanted
        unwanted = " OR ".join(_fts5_string(term) for term in self.exclusions)
        return f"({wanted}) NOT ({unwanted})"

    def tsquery(self, exclusions: bool = True) -> str:
        """PostgreSQL to_tsquery text: every word a quoted lexeme. Without `exclusions` it
        is what ts_headline gets, since it would mark the excluded words too."""
        wanted = " | ".join(
            "(" + " & ".join(_tsquery_term(term) for term in terms) + ")"
            for terms in self.alternatives
        )
        if not exclusions or not self.exclusions:
            return wanted
        return f"({wanted})" + "".join(f" & !{_tsquery_term(term)}" for term in self.exclusions)


def _fts5_string(term: Term) -> str:
    # FTS5 reads a double-quoted string as a phrase of the tokens in it; "" is a literal quote.
    return '"' + " ".join(term.words).replace('"', '""') + '"'


def _lexeme(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def _tsquery_term(term: Term) -> str:
    if len(term.words) == 1:
        return _lexeme(term.words[0])
    phrases = (
        " <-> ".join(f"{_lexeme(word)}:{weight}" for word in term.words)
        for weight in COLUMN_WEIGHTS
    )
    # The words on their own as well, which the phrase implies: PostgreSQL estimates a phrase
    # as if its words only had to occur together (three times over, one per weight), so a
    # rare phrase of common words looked common and was looked for by walking every record
    # newest first (0.8 s at a million); with them it uses the GIN index.
    words = " & ".join(_lexeme(word) for word in term.words)
    return f"({words} & (" + " | ".join(phrases) + "))"


def _is_word_char(char: str) -> bool:
    # Letters, digits and marks: SQLite's unicode61 tokenizer (with remove_diacritics) keeps
    # marks inside a token, so "e\u0301x" is one word there as in PostgreSQL.
    category = unicodedata.category(char)
    return category[0] in "LNM" or category == "Co"


def split_words(text: str) -> tuple[str, ...]:
    """The words of `text` as the search index splits it; pieces without a letter or a digit
    are left out (an engine indexes nothing for a lone accent)."""
    words, current = [], []
    for char in text + " ":
        if _is_word_char(char):
            current.append(char)
            continue
        if any(unicodedata.category(c)[0] in "LN" for c in current):
            words.append("".join(current))
        current = []
    return tuple(words)


def parse_search(text: str, max_words: int) -> SearchQuery | None:
    """The query `text` asks for; None when it is blank. SearchSyntaxError when it names
    nothing to find, or more than `max_words` words."""
    if not text.strip():
        return None
    alternatives: list[list[Term]] = [[]]
    exclusions: list[Term] = []
    for match in _PIECE.finditer(text):
        negated, phrase, bare = match.groups()
        if bare is not None:
            if bare == "OR":
                if alternatives[-1]:
                    alternatives.append([])
                continue
            if bare == "AND":  # what a space already means
                continue
            negated = "-" if bare.startswith("-") and len(bare) > 1 else ""
            phrase = bare[1:] if negated else bare
        words = split_words(phrase)
        if words:
            (exclusions if negated else alternatives[-1]).append(Term(words))
    wanted = tuple(tuple(terms) for terms in alternatives if terms)
    count = sum(len(term.words) for terms in wanted for term in terms)
    count += sum(len(term.words) for term in exclusions)
    if count > max_words:
        raise SearchSyntaxError(
            f"A search can have at most {max_words} words; this one has {count}."
        )
    if not wanted and exclusions:
        raise SearchSyntaxError(
            f"Add a word to find: “-{' '.join(exclusions[0].words)}” only leaves records out."
        )
    if not wanted:
        raise SearchSyntaxError("Nothing to search for: use letters or digits.")
    return SearchQuery(alternatives=wanted, exclusions=tuple(exclusions))
