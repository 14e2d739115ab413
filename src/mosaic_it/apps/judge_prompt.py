"""The judge prompt of ``mosaic-it judge``: a JSON file (:data:`DEFAULT_PROMPT`; ``--judge-prompt``
another) holding the system message, the user message of a single-turn and of a multi-turn
comparison, the layout of one turn, and the verdict marks, which are read strictly (a reply with
none of them or with more than one kind is unreadable, never guessed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from mosaic_it.apps.prompt_sets import PromptItem
from mosaic_it.errors import InputError

__all__ = ["DEFAULT_PROMPT", "VERDICT_LABELS", "JudgePrompt"]

DEFAULT_PROMPT = Path(__file__).resolve().parent.parent / "data" / "judge_prompt.json"
VERDICT_LABELS = ("A", "B", "tie")


@dataclass(frozen=True)
class JudgePrompt:
    """A judge prompt file: the system message, the user message of a single-turn and of a
    multi-turn comparison, the layout of one turn, and the verdict marks."""

    name: str
    system: str
    pairwise: str
    pairwise_multi_turn: str
    turn: str
    verdicts: dict[str, str]
    digest: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> JudgePrompt:
        where = Path(path) if path else DEFAULT_PROMPT
        try:
            raw = where.read_bytes()
            data = json.loads(raw)
        except OSError as exc:
            raise InputError(f"--judge-prompt {where}: cannot read it ({exc.strerror})") from None
        except ValueError as exc:
            raise InputError(f"--judge-prompt {where}: not JSON ({exc})") from None
        need = {
            "system": (),
            "pairwise": ("{question}", "{answer_a}", "{answer_b}"),
            "pairwise_multi_turn": ("{conversation_a}", "{conversation_b}"),
            "turn": ("{user}", "{assistant}"),
        }
        if not isinstance(data, dict):
            raise InputError(f"--judge-prompt {where}: expected an object")
        for key, holes in need.items():
            text = data.get(key)
            if not isinstance(text, str):
                raise InputError(f"--judge-prompt {where}: field {key!r}: expected a text")
            missing = [h for h in holes if h not in text]
            if missing:
                raise InputError(
                    f"--judge-prompt {where}: field {key!r} lacks {', '.join(missing)}"
                )
        verdicts = data.get("verdicts")
        if (
            not isinstance(verdicts, dict)
            or set(verdicts) != set(VERDICT_LABELS)
            or not all(isinstance(v, str) and v.strip() for v in verdicts.values())
            or len(set(verdicts.values())) != 3
            or any(a in b for a in verdicts.values() for b in verdicts.values() if a != b)
        ):
            raise InputError(
                f"--judge-prompt {where}: field 'verdicts': expected three distinct marks "
                'under "A", "B" and "tie", none inside another'
            )
        return cls(
            name=str(data.get("name", where.stem)),
            system=data["system"],
            pairwise=data["pairwise"],
            pairwise_multi_turn=data["pairwise_multi_turn"],
            turn=data["turn"],
            verdicts=dict(verdicts),
            digest=hashlib.sha256(raw).hexdigest(),
        )

    def parse(self, reply: str) -> str | None:
        """``A``, ``B`` or ``tie`` when the reply holds the marks of exactly one verdict; else
        None (unreadable: no mark, or marks of different verdicts)."""
        found = {label for label, mark in self.verdicts.items() if mark in reply}
        return found.pop() if len(found) == 1 else None

    def render(self, item: PromptItem, turn: int, first: list[str], second: list[str]) -> str:
        """The judge's user message for ``turn`` of ``item``; ``first``/``second``: the answers
        to turns 1..turn shown as A and B."""
        if turn == 1:
            return _fill(
                self.pairwise,
                question=item.turns[0],
                answer_a=first[0],
                answer_b=second[0],
            )
        return _fill(
            self.pairwise_multi_turn,
            conversation_a=self._conversation(item, turn, first, "A"),
            conversation_b=self._conversation(item, turn, second, "B"),
        )

    def _conversation(self, item: PromptItem, turn: int, answers: list[str], side: str) -> str:
        return "\n\n".join(
            _fill(self.turn, user=item.turns[t], assistant=answers[t], side=side)
            for t in range(turn)
        )


def _fill(template: str, **values: str) -> str:
    """Placeholders replaced in one pass (an answer holding ``{answer_b}`` stays as it is)."""
    out, i = [], 0
    holes = {"{" + k + "}": v for k, v in values.items()}
    while i < len(template):
        for hole, value in holes.items():
            if template.startswith(hole, i):
                out.append(value)
                i += len(hole)
                break
        else:
            out.append(template[i])
            i += 1
    return "".join(out)
