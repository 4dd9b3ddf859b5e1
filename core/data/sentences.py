"""Phonetically varied English sentences, generated offline from a seeded grammar.

No text corpus ships with the machines we build on, so sentences come from a small hand-written
grammar: ~20 templates (statements, questions, exclamations, clauses with commas) filled from a
few hundred everyday words chosen to cover every English phoneme, including the rarer ones
(/ʒ/ measure, /ɔɪ/ noise, /θ/ thin, /ð/ though, /ʊ/ book, /tʃ/ /dʒ/, clusters like "strength").
Sentences are unique within a pool and the pool is partitioned into disjoint splits, so held-out
test sentences never appear in training.
"""
from __future__ import annotations

import re

import numpy as np

NOUNS = """
apple anchor arrow attic author badge bagel ball balloon banjo barrel basket beach beard
bench bicycle bird blanket boat bottle boy bread bridge brush bucket button cabbage cable
camera candle canoe canyon captain carpet castle cat cellar chain chair cheese cherry chest
chicken child chimney church circle clock cloud coat coffee coin collar comb cookie corner
cottage cousin cow crayon crowd crown cupboard curtain daisy desert diamond dinner doctor dog
dolphin donkey door dragon drawer dream drum eagle engine envelope farmer feather fence
fiddle finger fish flag flower forest fountain fox frog garage garden garlic giant giraffe
glove goat grape guitar hammer harbor hat helmet hill horse house island jacket jar jelly
jewel journey judge kettle key kitchen kitten knife ladder lamp lantern leather lemon letter
library lion lizard machine magnet map marble market meadow measure melon mirror monkey moon
mountain mouse museum mushroom nail needle nephew nest noise notebook nurse ocean onion
orange oven owl oyster paddle painter palace pancake paper parrot peach pebble pencil pepper
piano picture pigeon pillow pilot pirate pizza planet plate pocket pony potato puppet puzzle
queen rabbit radio rainbow river robot rocket roof rope rose saddle sailor salad sandwich
scarf school scissors shadow sheep shell shoe shovel singer sister skeleton soldier spider
spoon squirrel stairway star statue stone storm stranger sugar suitcase sweater table
teacher telephone tent thimble thread throne thumb ticket tiger toaster tomato tooth tower
toy tractor treasure tree trumpet tunnel turtle umbrella valley vase village violin voyage
wagon wallet window wizard wolf yacht zebra zipper
""".split()

IRREGULAR_PLURALS = {
    "child": "children", "mouse": "mice", "tooth": "teeth", "sheep": "sheep", "fish": "fish",
    "knife": "knives", "wolf": "wolves", "thief": "thieves", "scissors": "scissors",
}

ADJECTIVES = """
ancient angry bitter bold brave bright broken busy calm careful cheap cheerful clever cold
cozy crooked curious damp dark dazzling deep delicate dusty eager early empty enormous fancy
fierce foggy fragile fresh friendly frozen fuzzy gentle giant gloomy golden graceful green
grumpy happy heavy hollow honest huge humble icy jolly juicy kind large lazy little lonely
loud lucky majestic merry mighty modern muddy narrow nervous noisy odd old orange pale
peaceful pleasant plump polite precious proud purple quick quiet rapid rare rough round royal
rusty sandy scary shiny short shy silent silly silver sleepy slippery small smooth soft
sour sparkling splendid steady sticky strange strong sunny sweet tall tender thick thin
thirsty tidy tiny tough usual vague vivid warm wavy weary wet wide wild wise wooden yellow
young zealous
""".split()

# base / past / third person singular
VERBS = [tuple(v.split("/")) for v in """
bake/baked/bakes borrow/borrowed/borrows bring/brought/brings build/built/builds
buy/bought/buys carry/carried/carries catch/caught/catches chase/chased/chases
choose/chose/chooses clean/cleaned/cleans climb/climbed/climbs collect/collected/collects
cover/covered/covers draw/drew/draws drop/dropped/drops enjoy/enjoyed/enjoys
explore/explored/explores fetch/fetched/fetches find/found/finds fix/fixed/fixes
follow/followed/follows forget/forgot/forgets grab/grabbed/grabs guard/guarded/guards
hide/hid/hides hold/held/holds hug/hugged/hugs join/joined/joins judge/judged/judges
keep/kept/keeps kick/kicked/kicks lift/lifted/lifts love/loved/loves measure/measured/measures
mend/mended/mends move/moved/moves notice/noticed/notices open/opened/opens paint/painted/paints
pass/passed/passes pick/picked/picks play/played/plays polish/polished/polishes
pull/pulled/pulls push/pushed/pushes reach/reached/reaches read/read/reads
repair/repaired/repairs rescue/rescued/rescues ring/rang/rings rob/robbed/robs
sell/sold/sells send/sent/sends share/shared/shares shake/shook/shakes show/showed/shows
sketch/sketched/sketches spot/spotted/spots squeeze/squeezed/squeezes steal/stole/steals
stir/stirred/stirs study/studied/studies swap/swapped/swaps take/took/takes
teach/taught/teaches throw/threw/throws touch/touched/touches treasure/treasured/treasures
trust/trusted/trusts visit/visited/visits wash/washed/washes watch/watched/watches
weigh/weighed/weighs wrap/wrapped/wraps
""".split()]

INTRANSITIVE = [tuple(v.split("/")) for v in """
laugh/laughed/laughs sing/sang/sings shout/shouted/shouts whisper/whispered/whispers
wait/waited/waits jump/jumped/jumps sleep/slept/sleeps smile/smiled/smiles
travel/traveled/travels wander/wandered/wanders worry/worried/worries yawn/yawned/yawns
argue/argued/argues breathe/breathed/breathes dance/danced/dances listen/listened/listens
""".split()]

NAMES = """
Alice Arthur Beth Boris Charlotte Chloe Daniel Eva Felix George Hannah Hugo Isabel Jack
James Joanna Judith Kevin Laura Leo Lucy Martha Michael Nora Oliver Owen Paula Peter
Quentin Rachel Ruth Samuel Sophie Thomas Uma Victor William Yusuf Zoe
""".split()

PLACES = """
the airport|the bakery|the station|the harbor|the village square|the old mill|the museum|
the library|the garden shed|the north shore|the mountain pass|the treasure island|the zoo|
the city hall|the valley floor|the church yard|the fish market|the beach house|the jungle|
the boathouse|the theater|the garage|the royal palace|the pleasure garden|the cabin
""".replace("\n", "").split("|")

ADVERBS = """
quickly slowly quietly loudly gently carefully happily sadly eagerly bravely calmly boldly
suddenly proudly nervously politely rarely smoothly softly wisely lazily neatly badly
cheerfully clumsily patiently warmly roughly firmly honestly
""".split()

DEGREE = "very rather quite too so fairly truly really almost".split()

TIMES = """
yesterday|this morning|last night|on Monday|on Thursday|at noon|before dinner|after lunch|
every evening|at dawn|in the summer|in winter|on the weekend|next Tuesday|a week ago|
at midnight|during the storm|before the show|after the match|in the autumn
""".replace("\n", "").split("|")

PREPOSITIONS = """
in|on|under|behind|beside|near|above|below|across|inside|outside|through|toward|beneath|
along|around|over|against|beyond|into
""".replace("\n", "").split("|")

NUMBERS = """
two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fifteen|twenty|thirty|
forty|fifty|a hundred|a thousand
""".replace("\n", "").split("|")

INTERJECTIONS = "Oh|Well|Look|Wow|Hey|Honestly|Of course|Sure|Oh no|Yes".split("|")

TEMPLATES = (
    "The {adj} {noun} {past} {prep} the {noun2}.",
    "{Name} {past} the {adj} {noun} {time}.",
    "Please {base} the {noun} {prep} the {adj} {noun2}.",
    "Did {name} {base} the {noun} {time}?",
    "{Name} said that the {noun} was {degree} {adj}.",
    "We {past} {number} {adj} {nouns} {prep} {place}.",
    "A {adj} {noun} is {degree} {adj2}, but the {noun2} is {adj3}.",
    "Why would anyone {base} {a_adj} {noun} {prep} the {noun2}?",
    "{Time}, {name} and {name2} {ipast} {adv} at {place}.",
    "How {adj} the {noun} looks {prep} the {adj2} {noun2}!",
    "I think the {noun} {ipast} {adv} {time}.",
    "Never {base} the {noun} when the {noun2} is {adj}.",
    "{Name} {ipast} {adv}, then {past} the {noun}.",
    "There were {number} {nouns} {prep} the {adj} {noun2} {time}.",
    "Could you {base} the {adj} {noun}, please?",
    "The {noun} of the {adj} {noun2} {ipast} {adv} {prep} {place}.",
    "{Interjection}, the {noun} {third} the {adj} {noun2} every day!",
    "My {adj} {noun} {past} {number} {nouns} {time}.",
    "Who {past} the {noun} {prep} {place}?",
    "{Name} never {third} {a_adj} {noun} without {a_noun2}.",
    "If the {noun} is {adj}, {name} will {base} it {adv}.",
    "{Interjection}! {Name} {ipast} {adv} because the {noun} was {adj}.",
)


def plural(noun: str) -> str:
    if noun in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[noun]
    if re.search(r"(s|sh|ch|x|z)$", noun):
        return noun + "es"
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    return noun + "s"


def with_article(phrase: str) -> str:
    return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


class SentenceGenerator:
    """Draws sentences from the grammar with a seeded NumPy generator."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def _pick(self, words):
        return words[int(self.rng.integers(len(words)))]

    def sentence(self) -> str:
        template = self._pick(TEMPLATES)
        noun, noun2, noun3 = self.rng.choice(NOUNS, size=3, replace=False)
        adj, adj2, adj3 = self.rng.choice(ADJECTIVES, size=3, replace=False)
        name, name2 = self.rng.choice(NAMES, size=2, replace=False)
        verb, intransitive = self._pick(VERBS), self._pick(INTRANSITIVE)
        time = self._pick(TIMES)
        interjection = self._pick(INTERJECTIONS)
        fields = {
            "noun": noun, "noun2": noun2, "nouns": plural(str(noun3)),
            "adj": adj, "adj2": adj2, "adj3": adj3,
            "a_adj": with_article(adj), "a_noun2": with_article(noun2),
            "name": name, "Name": name, "name2": name2,
            "base": verb[0], "past": verb[1], "third": verb[2], "ipast": intransitive[1],
            "time": time, "Time": time[0].upper() + time[1:], "prep": self._pick(PREPOSITIONS),
            "place": self._pick(PLACES), "adv": self._pick(ADVERBS), "degree": self._pick(DEGREE),
            "number": self._pick(NUMBERS), "Interjection": interjection,
        }
        return template.format(**fields)


def sentence_pool(seed: int, count: int) -> list[str]:
    """``count`` distinct sentences, the same list for the same seed."""
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    gen = SentenceGenerator(seed)
    seen: dict[str, None] = {}
    for _ in range(count * 50):
        seen.setdefault(gen.sentence(), None)
        if len(seen) == count:
            return list(seen)
    raise ValueError(f"the grammar ran dry before {count} distinct sentences")


def split_pool(seed: int, sizes: dict[str, int]) -> dict[str, list[str]]:
    """Disjoint sentence lists per split (e.g. ``{"train": 4000, "test": 600}``)."""
    pool = sentence_pool(seed, sum(sizes.values()))
    out, start = {}, 0
    for split, size in sizes.items():
        out[split] = pool[start:start + size]
        start += size
    return out
