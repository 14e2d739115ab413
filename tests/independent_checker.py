"""An independent checker of mosaic samples: is every meta-instruction true, unambiguous and
safe to train on?

It shares no code with mosaic-it's composing or verifying: it reads the rule from the
meta-instruction *text* (matching the phrasings of the rule pack file, which is data), finds the
label style in the prompt text, splits and re-derives the answers with its own definitions of a
word, a character and a first letter, and rebuilds the response the rule asks for. It takes the
source records (by the ids a sample's provenance names) as the texts a reader sees.

Findings, per sample (a sample can have several):

* ``false``: the response is not what the stated rule asks for (or the rule cannot be read);
* ``near_tie``: a sort or a cut hangs on keys too close for a reader to tell apart;
* ``input_unsaid``: a length rule over instructions with inputs does not say the input counts;
* ``unsplittable``: an unnumbered block whose instructions hold blank lines;
* ``label_collision``: a line of an instruction, input or answer begins like a label;
* ``tag_collision``: a tag occurs inside an instruction, input or answer;
* ``control_string``: a tag, label or meta-instruction holds a chat-control string;
* ``identity``: a Permute sample asks for the order the instructions are given in;
* ``reading_flip``: a word rule decides differently under another common reading of a word (a
  URL, e-mail address or path as one word; whitespace-separated words; Thai dictionary words
  where ``pythainlp`` is installed);
* ``meta_like``: a source instruction that reads as a meta-instruction (about answering, order,
  skipping, labels or tags) in a sample with a rule or tags, or with unnumbered instructions;
* ``order_nested``: a FIX order written with brackets or separators that read as labels or as
  comparisons (``<2>1>``, ``[[1 > 2]]``);
* ``number``: a phrasing that disagrees in number with the sample (several instructions named
  in a one-instruction sample, "the others" when one is left, one skipped named as several);
* ``meta_glued``: the meta-instruction joined to the instruction block by a single newline, so
  it reads as a line of the last input;
* ``markup_tag``: a tag that Markdown or LaTeX renders, or that looks like a control token.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

# well-known chat-control strings (this checker's own list)
CONTROL_STRINGS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|end|>",
    "<|eot_id|>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<|eom_id|>",
)
# how far apart keys must be for this checker to call an order readable (half of what the
# generator promises, so small differences between the two definitions do not matter)
MIN_WORD_GAP, MIN_CHAR_GAP, MIN_RELATIVE_GAP = 1, 5, 0.05

_EACH_NAMES = (
    "CJK UNIFIED IDEOGRAPH",
    "CJK COMPATIBILITY IDEOGRAPH",
    "HIRAGANA",
    "KATAKANA",
    "THAI",
    "LAO",
    "KHMER",
    "MYANMAR",
)


# ------------------------------------------------------------------ the checker's definitions


def words(text: str) -> int:
    """Each letter of a script written without spaces is a word; elsewhere, a run of letters
    and digits (with marks, and apostrophes or dots inside it) is one."""
    count = 0
    in_word = False
    previous = ""
    for ch in text:
        cat = unicodedata.category(ch)
        name = unicodedata.name(ch, "")
        if (
            cat.startswith("L")
            and name.startswith(_EACH_NAMES)
            or (
                ch == "\u30fc"  # the katakana long-vowel sign, a letter of its word
            )
        ):
            count += 1
            in_word = False
        elif cat[0] in "LN" or (cat[0] == "M" and in_word):
            if not in_word:
                count += 1
            in_word = True
        elif ch in "'\u2019." and in_word and previous:
            pass  # inside a word ("don't", "3.14") if a letter follows; else ends it below
        else:
            in_word = False
        previous = ch
    return count


def characters(text: str) -> int:
    """Characters a reader sees: code points less combining marks and format characters."""
    return sum(
        1
        for ch in unicodedata.normalize("NFC", text)
        if unicodedata.category(ch) not in ("Mn", "Me", "Cf")
    )


def initial(text: str) -> str | None:
    """The first letter, as a-z (accents dropped); None when there is none in a-z."""
    for ch in text:
        if ch.isalpha():
            base = unicodedata.normalize("NFD", ch)[0].lower()
            return base if "a" <= base <= "z" else None
    return None


# other common readings of a word: spans a reader may count as one word
_ONE_WORD_SPANS = re.compile(
    r"(?:https?://|www\.)\S+"  # URLs
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|(?:~|\.{1,2})?(?:/[\w.-]+){2,}/?"  # paths
    r"|[A-Za-z]:\\\S+"  # Windows paths
)


def words_spans_as_one(text: str) -> int:
    """Words, with every URL, e-mail address and path counted as one word."""
    return words(_ONE_WORD_SPANS.sub(" x ", text))


def words_by_spaces(text: str) -> int:
    """Words as ``text.split()`` gives them, less stretches without a letter or a digit; a
    letter of a script written without spaces is a word of its own, and parts a stretch on
    either side of it ("B小调" is two words)."""
    spaced = "".join(
        f" {ch} "
        if unicodedata.category(ch).startswith("L")
        and unicodedata.name(ch, "").startswith(_EACH_NAMES)
        else ch
        for ch in text
    )
    return sum(1 for part in spaced.split() if any(ch.isalnum() for ch in part))


def _thai_words():
    try:
        from pythainlp.tokenize import word_tokenize
    except ImportError:
        return None

    def count(text: str) -> int:
        pieces = re.split(r"([\u0e00-\u0e7f]+)", text)
        total = 0
        for piece in pieces:
            if re.fullmatch(r"[\u0e00-\u0e7f]+", piece):
                total += sum(1 for w in word_tokenize(piece) if w.strip())
            else:
                total += words(piece)
        return total

    return count


# the readings of a word besides this checker's own
READINGS = [words_spans_as_one, words_by_spaces] + [r for r in (_thai_words(),) if r]

# instructions that read as meta-instructions (this checker's own list: English and Chinese)
META_LIKE = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\b(skip|ignore|omit|disregard)\b.{0,30}\b(instruction|question|task)s?\b",
        r"\b(do not|don't|never) (answer|respond to|reply to)\b",
        r"\b(instruction|question|task)s? #?[0-9]+\b",
        r"\b(odd|even)-numbered\b",
        r"\b(answer|respond to|reply to)\b.{0,30}\b(instructions|questions)\b.{0,30}\border\b",
        r"\bin (reverse|alphabetical) order\b.{0,20}\b(answer|respond|reply)",
        r"\b(wrap|enclose|surround)\b.{0,30}\b(answer|response|reply)s?\b",
        r"\b(put|place)\b.{0,30}\b(answer|response|reply)s?\b.{0,10}\b(between|inside)\b",
        r"\b(this|the|these|following|above|each|every|given) instructions?\b",
        r"\b(the|these|following|above|each|every) questions\b",
        r"\banswer the following\b.{0,20}\bquestion\b",
        r"(跳过|忽略|不要回答).{0,10}(指令|问题)",
        r"第\s*[0-9一二三四五六七八九十]+\s*(条|个|道)?(指令|问题)",
        r"(以下|下面|上述|这些)的?(指令|问题)",
        r"(倒序|逆序).{0,6}(回答|回复)",
    )
]
# tags a chat window renders, or that look like control tokens
MARKUP = ("$", "**", "__", "~~", "<|", "|>", "*", "%", "`")


def meta_like(text: str) -> bool:
    return any(p.search(text) for p in META_LIKE)


# ------------------------------------------------------------------ the rule pack's phrasings


@dataclass
class Phrase:
    kind: str  # "tags", "generic", "tie", "input", or "permute.RULE" / "maskout.RULE"
    pattern: re.Pattern
    template: str = ""

    def matches(self, text: str, p: int):
        """Every (end, groups) of this phrasing read at ``p``. A tag phrasing can read several
        ways when the tags hold its own words ("{begin}answer{end}" with the tag
        "[[start of answer]]"): each is tried."""
        if self.kind != "tags":
            m = self.pattern.match(text, p)
            if m:
                yield m.end(), m.groupdict()
            return
        pieces = re.split(r"(\{begin\}|\{end\})", self.template)
        yield from _tag_readings(text, p, pieces, {})


def _tag_readings(text: str, p: int, pieces: list[str], got: dict):
    if not pieces:
        yield p, dict(got)
        return
    piece, rest = pieces[0], pieces[1:]
    if piece in ("{begin}", "{end}"):
        literal = rest[0] if rest else ""
        at = text.find(literal, p + 1) if literal else -1
        while at != -1:
            yield from _tag_readings(text, at, rest, {**got, piece[1:-1]: text[p:at]})
            at = text.find(literal, at + 1)
        return
    if text.startswith(piece, p):
        yield from _tag_readings(text, p + len(piece), rest, got)


def _pattern(template: str) -> re.Pattern:
    out = re.escape(template)
    for name, group in (
        ("order", r"(?P<order>.+?)"),
        ("positions", r"(?P<positions>[0-9][0-9, and]*)"),
        ("n", r"(?P<n>[0-9]+)"),
    ):
        out = out.replace(re.escape("{" + name + "}"), group)
    return re.compile(out)


def load_phrases(rules_json: Path) -> list[Phrase]:
    pack = json.loads(Path(rules_json).read_text(encoding="utf-8"))
    phrases = [Phrase("tags", _pattern(t), t) for t in pack["format"]["tag_phrasings"]]
    phrases += [Phrase("generic", _pattern(t)) for t in pack["format"]["generic_phrasings"]]
    for rule, texts in pack["permute"]["rules"].items():
        phrases += [Phrase(f"permute.{rule}", _pattern(t)) for t in texts]
    for rule, forms in pack["maskout"]["rules"].items():
        for texts in forms.values():
            phrases += [Phrase(f"maskout.{rule}", _pattern(t)) for t in texts]
    phrases += [Phrase("tie", _pattern(t)) for t in pack["permute"]["tie_break"]]
    phrases += [Phrase("input", _pattern(t)) for t in pack.get("input_counts", [])]
    return phrases


def _tag_like(groups: dict) -> bool:
    """Whether a reading's two tags look like one bracket pair around two words."""
    b, e = groups["begin"], groups["end"]
    return bool(b and e) and b != e and b[0] == e[0] and b[-1] == e[-1] and "\n" not in b + e


def read_meta(text: str, phrases: list[Phrase]) -> list[tuple[str, dict]] | None:
    """The phrasings ``text`` is made of, in order (sentences joined by one space); None when
    it cannot be read as such. Of several readings, one whose tags look like a bracket pair."""
    if not text:
        return []

    def walk(p: int):
        if p == len(text):
            yield []
            return
        for ph in phrases:
            for end, groups in ph.matches(text, p):
                if end == len(text) or text[end] == " ":
                    for rest in walk(end + 1 if end < len(text) else end):
                        yield [(ph.kind, {**groups, "_text": text[p:end]})] + rest

    first = None
    for n, reading in enumerate(walk(0)):
        first = first or reading
        if all(_tag_like(g) for kind, g in reading if kind == "tags") or n > 50:
            return reading
    return first


# ------------------------------------------------------------------ reading a sample


@dataclass
class Verdict:
    findings: list[str] = field(default_factory=list)
    rule: str = "format"

    def add(self, what: str) -> None:
        if what not in self.findings:
            self.findings.append(what)


def _label_pattern(label: str) -> re.Pattern:
    """Lines that begin the way the label ``label`` (the one of instruction 1) would."""
    head, _, tail = label.rstrip(" \n").partition("1")
    return re.compile("^" + re.escape(head) + r"[0-9]+" + re.escape(tail) + r"(\s|$)", re.MULTILINE)


def check_sample(record: dict, sources: dict, phrases: list[Phrase]) -> Verdict:
    """Check one output record (Alpaca, with its ``mosaic`` provenance) against the source
    records ``sources`` (id -> (prompt text, answer text))."""
    v = Verdict()
    prompt, response = record["instruction"], record["output"]
    group = [sources[i] for i in record["mosaic"]["sources"]]
    texts = [t for t, _ in group]
    answers = [a for _, a in group]
    k = len(group)

    # the instruction block: [head sep] label1 text1 sep label2 text2 ... [sep tail]
    first = prompt.find(texts[0])
    if first < 0:
        v.add("false")
        return v
    before = prompt[:first]
    m = re.search(r"(^|\n)([^\n]*\n?)$", before)
    label1 = m.group(2) if m else ""
    if not re.fullmatch(r"[^0-9\n]{0,8}1[^0-9\n]{0,8}\n?", label1):
        label1 = ""  # that line was the meta-instruction (or nothing), not a label
    head = before[: len(before) - len(label1)].rstrip("\n")
    labels = [label1.replace("1", str(n), 1) if label1 else "" for n in range(1, k + 1)]
    pos = first + len(texts[0])
    for n in range(2, k + 1):
        at = prompt.find(labels[n - 1] + texts[n - 1], pos)
        if at < 0 or prompt[pos:at].strip("\n"):
            v.add("false")
            return v
        pos = at + len(labels[n - 1]) + len(texts[n - 1])
    tail = prompt[pos:].lstrip("\n")
    numbered = bool(label1)
    if (head and not before[len(head) :].startswith("\n\n")) or (
        tail and not prompt[pos:].startswith("\n\n")
    ):
        v.add("meta_glued")

    meta = (read_meta(head, phrases) or []) + (read_meta(tail, phrases) or [])
    if (head and read_meta(head, phrases) is None) or (tail and read_meta(tail, phrases) is None):
        v.add("false")  # a meta-instruction this checker cannot read
        return v
    kinds = [kind for kind, _ in meta]
    rules = [(kind, g) for kind, g in meta if "." in kind]
    tags = next(((g["begin"], g["end"]) for kind, g in meta if kind == "tags"), None)
    if len(rules) > 1:
        v.add("false")
        return v

    # safety and readability of the layout, whatever the rule
    for s in [*(tags or ()), label1, head, tail]:
        if any(c in s for c in CONTROL_STRINGS):
            v.add("control_string")
    if tags and any(m in t for m in MARKUP for t in tags):
        v.add("markup_tag")
    if any(meta_like(t) for t in texts) and (rules or tags or not numbered):
        v.add("meta_like")
    every_text = texts + answers
    if numbered:
        pattern = _label_pattern(label1)
        if any(pattern.search(t) for t in every_text):
            v.add("label_collision")
    elif k > 1 and any(re.search(r"\n[ \t]*\n", t) for t in texts):
        v.add("unsplittable")
    if tags and any(tags[0] in t or tags[1] in t for t in every_text):
        v.add("tag_collision")

    # what the rule asks for, by this checker's definitions
    order = list(range(1, k + 1))
    skipped: list[int] = []
    if rules:
        kind, g = rules[0]
        v.rule = kind
        strategy, rule = kind.split(".")
        if rule in ("FIX", "ODD_EVEN", "EVEN_ODD", "ODD", "EVEN") and not numbered:
            v.add("false")
            return v
        if rule == "FIX":
            written = g.get("order") or g.get("positions") or ""
            arrows = re.sub(r"->|=>", " ", written)  # an arrow reads as "then"
            if re.search(r"[<>\[\]{}|]", arrows):
                v.add("order_nested")
        if strategy == "permute":
            order = _permute(v, rule, g, texts, k, "tie" in kinds)
            if order == list(range(1, k + 1)):
                v.add("identity")
        else:
            skipped = _maskout(v, rule, g, texts, k)
            order = [n for n in order if n not in skipped]
        if (
            rule
            in (
                "LENGTH_WORD",
                "REVERSE_LENGTH_WORD",
                "LENGTH_CHAR",
                "REVERSE_LENGTH_CHAR",
                "WORD_LONG",
                "WORD_SHORT",
            )
            and any("\n" in t for t in texts)
            and ("input" not in kinds)
        ):
            v.add("input_unsaid")
    if order is None:
        v.add("false")
        return v
    _number(v, meta, k, len(order), len(skipped))

    # the response the rule asks for
    begin, end = tags or ("", "")
    expected = "\n\n".join(labels[n - 1] + begin + answers[n - 1] + end for n in order)
    if expected != response:
        v.add("false")
    return v


# words that name several instructions or answers, or several left to answer
_PLURAL = re.compile(r"\b(instructions|answers|responses|them|they)\b", re.IGNORECASE)
_REST_PLURAL = re.compile(
    r"\b(the others|all the others|other ones|remaining instructions|(even|odd)-numbered ones"
    r"|those with (even|odd) numbers)\b(?! get no)",
    re.IGNORECASE,
)


def _number(v: Verdict, meta: list, k: int, answered: int, skipped: int) -> None:
    """Whether each sentence agrees in number with the sample."""
    for kind, g in meta:
        text = g.get("_text", "")
        if k == 1 and kind in ("tags", "generic") and _PLURAL.search(text):
            v.add("number")
        if kind.startswith("maskout."):
            if answered == 1 and _REST_PLURAL.search(text):
                v.add("number")
            if skipped == 1 and re.search(r"\b(instructions|numbers) [0-9]", text):
                v.add("number")
            if skipped > 1 and re.search(r"\b(instruction|number) [0-9]+(?![0-9]| and|,)", text):
                v.add("number")
            if skipped > 1 and re.search(r"\bthe (odd|even)-numbered instruction\b", text):
                v.add("number")


def _near(a: int, b: int, unit: str) -> bool:
    gap = abs(a - b)
    least = MIN_WORD_GAP if unit == "words" else MIN_CHAR_GAP
    return gap < least or gap < MIN_RELATIVE_GAP * max(a, b)


def _permute(v: Verdict, rule: str, g: dict, texts: list[str], k: int, tie_said: bool):
    numbers = list(range(1, k + 1))
    if rule == "FIX":
        order = [int(x) for x in re.findall(r"[0-9]+", g["order"])]
        return order if sorted(order) == numbers else None
    if rule == "REVERSE":
        return numbers[::-1]
    if rule in ("ODD_EVEN", "EVEN_ODD"):
        odd, even = numbers[0::2], numbers[1::2]
        return odd + even if rule == "ODD_EVEN" else even + odd
    base = rule.replace("REVERSE_", "")
    key, unit = {
        "ALPHA": (initial, None),
        "LENGTH_WORD": (words, "words"),
        "LENGTH_CHAR": (characters, "chars"),
    }[base]
    keys = [key(t) for t in texts]
    if any(x is None for x in keys):
        return None  # "alphabetical" over a letter with no a-z order
    ranked = sorted(numbers, key=lambda n: keys[n - 1], reverse=rule.startswith("REVERSE_"))
    if unit == "words":
        for read in READINGS:
            other = [read(t) for t in texts]
            again = sorted(numbers, key=lambda n: other[n - 1], reverse=rule.startswith("REVERSE_"))
            if again != ranked or len(set(other)) < k:
                v.add("reading_flip")
    for a, b in pairwise(ranked):
        ka, kb = keys[a - 1], keys[b - 1]
        if ka == kb and not (unit is None and tie_said):
            v.add("near_tie")  # a tie the meta-instruction does not settle
        elif unit is not None and _near(ka, kb, unit):
            v.add("near_tie")
    return ranked


def _maskout(v: Verdict, rule: str, g: dict, texts: list[str], k: int) -> list[int]:
    numbers = list(range(1, k + 1))
    if rule == "FIX":
        return sorted(int(x) for x in re.findall(r"[0-9]+", g["positions"]))
    if rule == "ODD":
        return numbers[0::2]
    if rule == "EVEN":
        return numbers[1::2]
    n = int(g.get("n") or 1)
    counts = [words(t) for t in texts]
    ranked = sorted(numbers, key=lambda i: counts[i - 1], reverse=rule == "WORD_LONG")
    if n >= k:
        v.add("false")
        return []
    if _near(counts[ranked[n - 1] - 1], counts[ranked[n] - 1], "words"):
        v.add("near_tie")
    for read in READINGS:
        other = [read(t) for t in texts]
        again = sorted(numbers, key=lambda i: other[i - 1], reverse=rule == "WORD_LONG")
        if (
            sorted(again[:n]) != sorted(ranked[:n])
            or other[again[n - 1] - 1] == other[again[n] - 1]
        ):
            v.add("reading_flip")
    return sorted(ranked[:n])


# ------------------------------------------------------------------ whole runs


def sources_from_alpaca(rows: list[dict]) -> dict:
    """id -> (prompt text, answer): the instruction with its input on the next line."""
    out = {}
    for i, r in enumerate(rows):
        text = r["instruction"] + ("\n" + r["input"] if r.get("input") else "")
        out[r.get("id", i)] = (text, r["output"])
    return out


def sources_from_sharegpt(rows: list[dict]) -> dict:
    out = {}
    for i, r in enumerate(rows):
        turns = [t for t in r["conversations"] if t["from"] != "system"]
        if len(turns) == 2:
            out[r.get("id", i)] = (turns[0]["value"], turns[1]["value"])
    return out


def sources_from_messages(rows: list[dict]) -> dict:
    """Messages rows (string contents, or parts with "text" or "value"): single pairs only."""

    def text(content) -> str:
        if isinstance(content, str):
            return content
        return "".join(
            p if isinstance(p, str) else p.get("text", p.get("value", "")) for p in content
        )

    out = {}
    for i, r in enumerate(rows):
        turns = [m for m in r["messages"] if m["role"] != "system"]
        if len(turns) == 2:
            out[r.get("id", i)] = (text(turns[0]["content"]), text(turns[1]["content"]))
    return out


def check_run(samples: list[dict], sources: dict, rules_json: Path) -> tuple[Counter, Counter]:
    """Findings over a run (samples with at least one finding, by finding) and rules seen."""
    phrases = load_phrases(rules_json)
    findings: Counter = Counter()
    rules: Counter = Counter()
    for s in samples:
        v = check_sample(s, sources, phrases)
        rules[v.rule] += 1
        findings.update(v.findings)
    return findings, rules
