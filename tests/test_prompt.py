"""Prompt → query plan (webapp.prompt): terms, phrases, OR groups, exclusions, and matching."""

from __future__ import annotations

import time

import pytest

from webapp.prompt import QueryPlan, parse_prompt


def plan_of(prompt: str) -> tuple[list[list[str]], list[str]]:
    plan = parse_prompt(prompt)
    return plan.groups, plan.exclusions


# --- terms, phrases, OR, exclusions ----------------------------------------------------------


def test_terms_are_lowercased_and_all_required():
    assert plan_of("Acme Rocket") == ([["acme", "rocket"]], [])
    plan = parse_prompt("Acme Rocket")
    assert plan.matches("ACME launches a rocket")
    assert not plan.matches("Acme launches a satellite")


def test_quoted_phrases_stay_together_and_keep_their_order():
    assert plan_of('"Acme Corp" launch') == ([["acme corp", "launch"]], [])
    plan = parse_prompt('"acme corp"')
    assert plan.matches("acme corp raises money")
    assert plan.matches("News: ACME   Corp. raises money")
    assert plan.matches("News: Acme\nCorp")
    assert not plan.matches("corp acme raises money")
    assert not plan.matches("acme corporation raises money")


def test_inner_whitespace_of_a_phrase_is_collapsed():
    assert plan_of('"acme    corp"') == ([["acme corp"]], [])


def test_or_splits_the_prompt_into_alternative_groups():
    assert plan_of('"acme corp" OR acmecorp -jobs') == ([["acme corp"], ["acmecorp"]], ["jobs"])
    assert plan_of("acme rocket OR acme satellite") == (
        [["acme", "rocket"], ["acme", "satellite"]],
        [],
    )
    plan = parse_prompt("acme rocket OR acme satellite")
    assert plan.matches("Acme satellite in orbit")
    assert plan.matches("Acme rocket lands")
    assert not plan.matches("rocket and satellite, no brand")


def test_dangling_and_repeated_or_make_no_empty_group():
    assert plan_of("OR acme OR") == ([["acme"]], [])
    assert plan_of("acme OR OR rocket") == ([["acme"], ["rocket"]], [])
    assert plan_of("OR OR") == ([], [])


def test_exclusions_of_words_and_phrases():
    assert plan_of('acme -jobs -"hiring now"') == ([["acme"]], ["jobs", "hiring now"])
    plan = parse_prompt('acme -jobs -"hiring now"')
    assert plan.matches("Acme ships the product")
    assert not plan.matches("Acme jobs fair")
    assert not plan.matches("Acme is hiring now")
    assert plan.matches("Acme is hiring engineers now")  # the phrase, not its words apart


def test_an_exclusion_wins_over_a_match():
    plan = parse_prompt("acme -acme")
    assert plan.groups == [["acme"]] and plan.exclusions == ["acme"]
    assert not plan.matches("acme")


def test_repeated_terms_are_kept_once():
    assert plan_of("acme ACME Acme") == ([["acme"]], [])


def test_edge_punctuation_is_dropped_but_symbols_that_carry_meaning_stay():
    assert plan_of("acme, rocket!") == ([["acme", "rocket"]], [])
    assert plan_of("C++ and C#") == ([["c++", "c#"]], [])
    assert plan_of("@acme #launch $ACME") == ([["@acme", "#launch", "$acme"]], [])
    plan = parse_prompt("c++")
    assert plan.matches("Why I still write C++.")
    assert not plan.matches("Why I still write C.")


# --- words around what is looked for ---------------------------------------------------------


def test_filler_words_are_dropped():
    assert plan_of("Mentions of Acme today") == ([["acme"]], [])
    assert plan_of("show me what people say about the acme launch this week") == (
        [["acme", "launch"]],
        [],
    )


def test_a_source_after_on_from_or_via_says_where_not_what():
    assert plan_of("Mentions of Acme on Reddit today") == ([["acme"]], [])
    assert plan_of("acme from hn") == ([["acme"]], [])
    assert plan_of("acme via Mastodon, on github") == ([["acme"]], [])
    assert plan_of("on reddit") == ([], [])


def test_a_source_name_on_its_own_or_quoted_is_a_term():
    assert plan_of("reddit outage") == ([["reddit", "outage"]], [])
    assert plan_of('"on reddit"') == ([["on reddit"]], [])


@pytest.mark.parametrize(
    "prompt",
    [
        "Acme news in the last 24 hours",
        "acme, past 2 weeks.",
        "acme last 7d",
        "acme in the past 3 days",
    ],
)
def test_a_relative_time_window_is_not_a_term(prompt):
    plan = parse_prompt(prompt)
    assert plan.groups == [["acme"]]
    assert plan.matches("Acme ships")  # no record has to contain "24" or "weeks"


def test_a_number_that_is_not_a_time_window_stays_a_term():
    assert plan_of("last 3 acme releases") == ([["3", "acme", "releases"]], [])
    assert plan_of('"last 24 hours"') == ([["last 24 hours"]], [])


# --- odd input -------------------------------------------------------------------------------


def test_an_unclosed_quote_runs_to_the_end_of_the_prompt():
    assert plan_of('"acme corp') == ([["acme corp"]], [])
    assert plan_of('acme "unclosed -jobs') == ([["acme", "unclosed -jobs"]], [])
    assert plan_of('acme -"') == ([["acme"]], [])


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t", '""', '-""', "-", "OR", "of the on", "🚀"])
def test_an_empty_plan_matches_everything(prompt):
    plan = parse_prompt(prompt)
    assert plan.is_empty and plan.exclusions == []
    assert plan.matches("anything at all") and plan.matches(None)
    assert plan.query_string() == ""
    assert plan.describe() == "Searching for: everything the sources return"


def test_none_prompt_is_an_empty_plan():
    assert parse_prompt(None).is_empty  # type: ignore[arg-type]


def test_only_exclusions_match_everything_else():
    plan = parse_prompt("-jobs -hiring")
    assert plan.groups == [] and plan.exclusions == ["jobs", "hiring"]
    assert plan.matches("Acme ships a rocket")
    assert not plan.matches("Acme jobs")
    assert not plan.matches(None, "we are HIRING")
    assert plan.describe() == "Searching for: everything, excluding jobs, hiring"
    assert plan.query_string() == "-jobs -hiring"


def test_unicode_is_normalised_and_case_folded():
    assert plan_of("Ärger über Straße") == ([["ärger", "über", "strasse"]], [])
    assert plan_of("ｆｕｌｌｗｉｄｔｈ ＡＣＭＥ") == ([["fullwidth", "acme"]], [])
    assert plan_of("señor niño l'oréal") == ([["señor", "niño", "l'oréal"]], [])
    plan = parse_prompt("Straße")
    assert plan.matches("STRASSE gesperrt")
    assert plan.matches("Die Straße ist gesperrt")
    assert parse_prompt("ACME").matches("ｎｅｗｓ ａｂｏｕｔ ａｃｍｅ")


def test_a_prompt_of_the_full_2000_characters_parses_quickly():
    words = " ".join(f"word{i}" for i in range(400))
    words = words[: words.rindex(" ", 0, 2001)]  # whole words, at most 2000 characters
    started = time.perf_counter()
    plan = parse_prompt(words)
    assert time.perf_counter() - started < 0.5
    assert len(plan.groups) == 1 and plan.groups[0][0] == "word0"
    assert len(plan.groups[0]) == len(words.split())
    assert plan.matches(words)
    assert not plan.matches(words.replace("word0 ", ""))


@pytest.mark.parametrize(
    "prompt",
    ['"' * 2000, "-" * 2000, "OR " * 666, "!" * 1999 + "a", '-"' * 1000, "a" * 2000, "é" * 2000],
)
def test_pathological_2000_character_prompts_do_not_hang(prompt):
    started = time.perf_counter()
    plan = parse_prompt(prompt)
    plan.matches("some text " * 100)
    plan.query_string()
    plan.describe()
    assert time.perf_counter() - started < 1.0


# --- matching --------------------------------------------------------------------------------


def test_terms_match_whole_words_only():
    plan = parse_prompt("acme")
    assert plan.matches("Acme ships")
    assert plan.matches("(acme)")
    assert plan.matches("news about acme.")
    assert not plan.matches("acmecorp ships")
    assert not plan.matches("the acmeish look")
    assert not plan.matches("ship@acme2")


def test_match_looks_at_every_text_given_and_skips_missing_ones():
    plan = parse_prompt("acme rocket")
    assert plan.matches("Acme news", "a rocket lifted off")  # title and text together
    assert plan.matches(None, "acme rocket")
    assert not plan.matches("Acme news", None)
    assert not plan.matches()


def test_a_plan_built_by_hand_follows_the_same_rules():
    plan = QueryPlan(groups=[["acme", "launch"], ["acmecorp"]], exclusions=["rumour"])
    assert plan.matches("acmecorp news")
    assert plan.matches("acme launch day")
    assert not plan.matches("acme news")
    assert not plan.matches("acme launch rumour")


def test_query_string_quotes_phrases_and_prefixes_exclusions():
    plan = parse_prompt('"Acme Corp" OR acmecorp -jobs -"hiring now"')
    assert plan.query_string() == '"acme corp" OR acmecorp -jobs -"hiring now"'
    assert plan.describe() == 'Searching for: "acme corp" OR acmecorp, excluding jobs, hiring now'


def test_the_plan_of_its_own_query_string_is_the_same_plan():
    for prompt in ('"acme corp" OR acmecorp -jobs', "Mentions of Acme on Reddit today", "-x y"):
        plan = parse_prompt(prompt)
        again = parse_prompt(plan.query_string())
        assert (again.groups, again.exclusions) == (plan.groups, plan.exclusions)


# Date hints and named sources


@pytest.mark.parametrize(
    ("prompt", "window", "words"),
    [
        ("acme last 24 hours", {"last": "24h"}, [["acme"]]),
        ("acme past 7 days", {"last": "7d"}, [["acme"]]),
        ("acme last 2w", {"last": "2w"}, [["acme"]]),
        ("last week acme", {"last": "1w"}, [["acme"]]),
        ("acme in the past month", {"last": "30d"}, [["acme"]]),
        ("acme today", {"calendar": "today"}, [["acme"]]),
        ("acme yesterday", {"calendar": "yesterday"}, [["acme"]]),
        ("acme this week", {"calendar": "this_week"}, [["acme"]]),
        ("acme -today", None, [["acme"]]),
    ],
)
def test_date_hints_set_the_window_and_are_not_search_words(prompt, window, words):
    plan = parse_prompt(prompt)
    assert plan.window == window
    assert plan.groups == words


def test_the_plan_reads_as_the_form_shows_it():
    plan = parse_prompt('acme OR "acme corp" -jobs last 24 hours')
    assert plan.describe() == 'Searching for: acme OR "acme corp", excluding jobs, in the last 24 hours'


def test_question_words_and_named_sources_are_recognised():
    plan = parse_prompt("How many people mentioned Acme on Reddit or on HN today?")
    assert plan.groups == [["acme"]]
    assert plan.sources == ["reddit", "hackernews"]
    assert plan.window == {"calendar": "today"}


def test_calendar_windows_follow_the_timezone():
    from datetime import UTC, datetime

    from webapp.prompt import resolve_window

    moment = datetime(2026, 11, 29, 6, 30, tzinfo=UTC)  # a Sunday; already Sunday in Tokyo
    since, until = resolve_window({"calendar": "yesterday"}, moment, "Asia/Tokyo")
    assert since == datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # Saturday 00:00 in Tokyo
    assert until == datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    week_start, _ = resolve_window({"calendar": "this_week"}, moment, "UTC")
    assert week_start == datetime(2026, 11, 23, tzinfo=UTC)  # Monday
    last, none = resolve_window({"last": "24h"}, moment)
    assert (moment - last).total_seconds() == 86400 and none is None
