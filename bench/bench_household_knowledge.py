"""Benchmark: what the model knows about households, measured on real ones (SEMCOG).

    python bench/bench_household_knowledge.py [--households 60] [--seed 0] [--model M] [--base-url URL]

The household bench (bench/bench_households.py) scores the records llmsynthor writes; this one asks
why they break the rules they break, by putting the model's knowledge to the test where the truth
is known. ``--households`` real households of the example's truth (the activitysim==1.6.0 wheel,
sha256 checked; a seeded sample) are shown to the model, and it is asked, from its token
probabilities (no text is sampled):

  * household type given the members — the example's ``household_type`` of each household, its
    members listed with all their values (``llmsynthor.shapes.households.compose.value_question``, the
    question ``household_values: scored`` asks);
  * a member's school given the rest of the household — the member's own school left out;
  * a member's relationship to the householder given the rest (members other than the householder);
  * real or broken — each real household and a copy with one value changed so that it breaks one
    of the example's rules (the household type, or a member's school), asked "consistent and
    realistic?"; AUC = the chance that the model finds a real household likelier than a broken one
    (.5: it cannot tell them apart).

Columns: accuracy = share of answers whose likeliest option is the truth (beside the margin's, the
likeliest value of the target table); P(truth) = mean probability given to the true value; bits =
mean log2 P_model(truth) − log2 P_margin(truth), the information the model adds over what the target
tables already say (above 0: it knows something the margins do not).

With ``--suggest`` it also makes every suggestion ``llmsynthor suggest-constraints`` makes for the
example (the same levels and scorings, with the model already loaded) and checks each on the truth: how many of the real households or
persons meeting its condition break it (0: a structural zero the model found; a user confirming
the list should keep only those).

``--model`` / ``--base-url`` point the same questions at another model (an OpenAI-compatible
endpoint when ``--base-url`` is given), so a user can see whether a stronger model would know more.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import semcog_households  # noqa: E402

from llmsynthor.api import make_backend  # noqa: E402
from llmsynthor.cli.households import overridden, suggestion_levels  # noqa: E402
from llmsynthor.core.rules import parse_rule  # noqa: E402
from llmsynthor.llm.base import continues_answers, score_options  # noqa: E402
from llmsynthor.prior.suggest import score_and_suggest  # noqa: E402
from llmsynthor.prior.tempering import ZERO_LIFT  # noqa: E402
from llmsynthor.shapes.households.candidates import derive  # noqa: E402
from llmsynthor.shapes.households.compose import Composition, household_text, option_request, value_question  # noqa: E402
from llmsynthor.shapes.households.controls import HOUSEHOLD, load_controls  # noqa: E402
from llmsynthor.shapes.households.evaluation import link  # noqa: E402
from llmsynthor.shapes.households.spec import HouseholdSpec, load_household_spec  # noqa: E402

EXAMPLE = semcog_households.EXAMPLE / "spec.yaml"


def compositions(spec: HouseholdSpec, households: pd.DataFrame, persons: pd.DataFrame) -> list[Composition]:
    """The real households as compositions (the reference person first, every value as recorded)."""
    grouped = persons.sort_values(["household_id", "member"]).groupby("household_id")
    out = []
    for _, row in households.iterrows():
        members = grouped.get_group(row["household_id"])
        out.append(Composition({n: row[n] for n in spec.household.variables},
                               tuple({n: m[n] for n in spec.person.variables} for _, m in members.iterrows())))
    return out


def member_question(spec: HouseholdSpec, composition: Composition, member: int, name: str, letters: bool = False):
    """Which value of person variable ``name`` member ``member`` has, the rest of the household listed."""
    var = spec.person.variables[name]
    question = (f"what is the {name}{f' ({var.description})' if var.description else ''} of {spec.person.entity} "
                f"{member + 1} of this {spec.household.entity}?")
    return option_request(spec, question, name, list(var.values), household_text(spec, composition, hide=(member, name)), letters)


def judge_question(spec: HouseholdSpec, composition: Composition, letters: bool = False):
    return option_request(spec, f"is this {spec.household.entity} record consistent and realistic?", "consistent",
                          ["yes", "no"], household_text(spec, composition), letters)


@dataclass
class Question:
    """One kind of question: what was asked, the true option of each, and the margin's probabilities."""

    name: str
    requests: list
    truth: list[int]
    margin: np.ndarray


def broken_copy(spec: HouseholdSpec, composition: Composition, rules, rng: np.random.Generator) -> Composition | None:
    """A copy with one value changed (the household type, or a member's school) so that it breaks at
    least one of ``rules`` (household rules, person rules over the joined levels); None if no change tried does."""
    tries = [("household", None, v) for v in spec.household.variables["household_type"].values
             if v != composition.household["household_type"]]
    tries += [("person", i, v) for i in range(len(composition.members))
              for v in spec.person.variables["school"].values if v != composition.members[i]["school"]]
    for k in rng.permutation(len(tries)):
        level, member, value = tries[k]
        household = dict(composition.household)
        members = [dict(m) for m in composition.members]
        if level == "household":
            household["household_type"] = value
        else:
            members[member]["school"] = value
        copy = Composition(household, tuple(members))
        if breaks(spec, copy, rules):
            return copy
    return None


def breaks(spec: HouseholdSpec, composition: Composition, rules) -> bool:
    """Whether the household breaks one of ``rules`` (household rules, then person rules over the joined levels)."""
    household_rules, person_rules = rules
    people = pd.DataFrame(list(composition.members)).assign(**{HOUSEHOLD: 0})
    household = derive(spec, pd.DataFrame([composition.household]), people)  # the derived counts of its members
    if any(r.violations(household).any() for r in household_rules):
        return True
    return any(r.violations(people.assign(**household.iloc[0].to_dict())).any() for r in person_rules)


def margin(targets, level: str, name: str, values: list[str], leave_out: str | None = None) -> np.ndarray:
    """The shares of ``values`` in the one-variable target table of ``name`` (half a count added to
    each, so no value has none), ``leave_out`` set to none (the householder, when others are asked about)."""
    table = next(t for t in targets if t.level == level and list(t.variables) == [name])
    labels = list(table.axes[0].labels)
    p = np.array([0.0 if v == leave_out else float(table.region[labels.index(v)]) + 0.5 for v in values])
    return p / p.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=60, help="real households asked about (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="which households (default 0)")
    parser.add_argument("--model", default=None, help="another model (embedded name or .gguf; with --base-url the served name)")
    parser.add_argument("--base-url", default=None, help="an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    parser.add_argument("--suggest", action="store_true", help="also check suggest-constraints' suggestions on the truth")
    args = parser.parse_args()
    spec = load_household_spec(EXAMPLE)
    if args.base_url:
        spec = overridden(spec, {"llm": {**spec.llm.model_dump(), "backend": "openai", "base_url": args.base_url,
                                         "model": args.model}})
    elif args.model:
        spec = overridden(spec, {"llm.model": args.model})
    targets = load_controls(spec)
    households, persons = semcog_households.read_households(semcog_households.wheel_path())
    rng = np.random.default_rng(args.seed)
    picked = households.iloc[np.sort(rng.choice(len(households), size=args.households, replace=False))]
    real = compositions(spec, picked, persons[persons["household_id"].isin(picked["household_id"])])
    rules = ([parse_rule(r, spec.household_schema) for r in spec.rules.households],
             [parse_rule(r, spec.joined_schema) for r in spec.rules.persons])

    backend = make_backend(spec.llm)
    letters = not continues_answers(backend)  # an OpenAI-compatible server: the options by letter
    types = list(spec.household.variables["household_type"].values)
    schools = list(spec.person.variables["school"].values)
    relations = list(spec.person.variables["relationship"].values)
    questions = [
        Question("household type | members", [value_question(spec, c, "household_type", letters) for c in real],
                 [types.index(c.household["household_type"]) for c in real], margin(targets, "households", "household_type", types)),
        Question("school | rest of household", [], [], margin(targets, "persons", "school", schools)),
        Question("relationship | rest (not the householder)", [], [], margin(targets, "persons", "relationship", relations, leave_out="householder")),
    ]
    for c in real:
        i = int(rng.integers(len(c.members)))
        questions[1].requests.append(member_question(spec, c, i, "school", letters))
        questions[1].truth.append(schools.index(c.members[i]["school"]))
        if len(c.members) > 1:
            j = int(rng.integers(1, len(c.members)))
            questions[2].requests.append(member_question(spec, c, j, "relationship", letters))
            questions[2].truth.append(relations.index(c.members[j]["relationship"]))
    pairs = [(c, broken_copy(spec, c, rules, rng)) for c in real if not breaks(spec, c, rules)]
    pairs = [(c, b) for c, b in pairs if b is not None]

    started = time.perf_counter()
    calls = 0
    print(f"model {spec.llm.model or 'default'} ({spec.llm.backend}); {len(real)} real SEMCOG households (seed {args.seed})\n")
    print(f"{'question':44s} {'n':>4s} {'accuracy':>9s} {'margin':>7s} {'P(truth)':>9s} {'margin':>7s} {'bits':>7s}")
    for q in questions:
        choices = score_options(backend, q.requests)
        calls += len(choices)
        p = np.array([c.probabilities for c in choices], dtype=float)
        p = p / p.sum(axis=1, keepdims=True)
        truth = np.array(q.truth)
        at = p[np.arange(len(truth)), truth]
        bits = float(np.mean(np.log2(np.maximum(at, 1e-6)) - np.log2(q.margin[truth])))
        print(f"{q.name:44s} {len(truth):4d} {np.mean(p.argmax(axis=1) == truth):9.0%} "
              f"{np.mean(q.margin.argmax() == truth):7.0%} {at.mean():9.2f} {q.margin[truth].mean():7.2f} {bits:+7.2f}")
    if pairs:
        choices = score_options(backend, [judge_question(spec, c, letters) for pair in pairs for c in pair])
        calls += len(choices)
        yes = np.array([c.probabilities[0] / max(sum(c.probabilities), 1e-12) for c in choices]).reshape(-1, 2)
        auc = float(np.mean((yes[:, 0][:, None] > yes[:, 1][None, :]) + 0.5 * (yes[:, 0][:, None] == yes[:, 1][None, :])))
        paired = float(np.mean(yes[:, 0] > yes[:, 1]))
        print(f"\nreal or broken: {len(pairs)} real households without a rule broken, each with a broken copy; "
              f"P(consistent) real {yes[:, 0].mean():.2f}, broken {yes[:, 1].mean():.2f}; "
              f"AUC {auc:.2f}; the real one likelier than its own copy {paired:.0%} (chance: .50 and 50 %)")
    print(f"\n{calls} option scorings, {time.perf_counter() - started:.0f} s")
    if args.suggest:
        check_suggestions(spec, targets, households, persons, backend, letters)


def check_suggestions(spec: HouseholdSpec, targets, households: pd.DataFrame, persons: pd.DataFrame, backend, letters: bool) -> None:
    """What ``llmsynthor suggest-constraints`` suggests for the example (same levels, same scorings, the
    model already loaded), each suggestion checked on the truth."""
    levels, _, known, keep = suggestion_levels(spec)
    linked = link(spec, targets, households, persons)
    print("\nsuggest-constraints, each suggestion on the truth (broken by / meeting its condition):")
    held = total = 0
    for level, level_targets in levels.items():
        found = score_and_suggest(level_targets, backend, ZERO_LIFT, known[level], keep[level], letters=letters)
        frame = linked.households if level == "households" else linked.people
        for s in found.suggestions:
            rule = parse_rule(s.constraint, level_targets.schema)
            broken, meets = int(rule.violations(frame).sum()), int(rule.meets(frame).sum())
            held, total = held + (broken == 0), total + 1
            print(f"  {level:10s} {broken:6,d} / {meets:6,d} ({broken / max(meets, 1):6.1%})  {s.constraint}")
    print(f"{held} of {total} suggestions hold on every real {spec.household.entity} or {spec.person.entity}")


if __name__ == "__main__":
    main()
