"""How a region moves, read from the words of its prompt - no model, deterministic.

``parse_motion("clouds drifting slowly to the left")`` gives flow, direction 180 (west),
1.0 deg/s, and says which words decided each part. The rules, in order (first match wins
within each part; words are lower-cased, punctuation dropped, simple suffixes -ing/-s/-ed/
-ly folded so "drifting", "drifts" and "drifted" all read as "drift"):

- **kind**: a sway word (sway, swing, rustle, flutter, wave, bob, shimmer, flicker, tremble,
  shake, quiver, nod) gives ``sway`` (oscillates in place: foliage, flags, reflections);
  otherwise ``flow`` (drifts along the direction: clouds, water, mist). A flow word (drift,
  flow, stream, move, roll, pour, ripple, run, rush, glide, float, pan, spin) is noted.
- **direction** (0 = right / east, 90 = up, 180 = left / west, 270 = down): left, leftward,
  west, westward -> 180; right, rightward, east, eastward -> 0; up, upward, rise, rising,
  ascend, north -> 90; down, downward, fall, falling, descend, sink, south -> 270. Not said:
  0 for flow.
- **speed** (deg/s on the horizon): "very slow(ly)" 0.5; slow(ly), gentle, gently, lazy,
  lazily, calm(ly), soft(ly) 1.0; fast, quick(ly), rapid(ly), swift(ly), strong(ly) 5.0;
  "very fast / very quickly" 8.0; not said: 2.0 (the default of a painted region).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SWAY = {"sway", "swing", "rustle", "flutter", "wave", "bob", "shimmer", "flicker", "tremble",
        "shake", "quiver", "nod"}  # fmt: skip
FLOW = {"drift", "flow", "stream", "move", "roll", "pour", "ripple", "run", "rush", "glide",
        "float", "pan", "spin"}  # fmt: skip
DIRECTIONS = {
    180.0: {"left", "leftward", "west", "westward"},
    0.0: {"right", "rightward", "east", "eastward"},
    90.0: {"up", "upward", "rise", "ascend", "north", "skyward"},
    270.0: {"down", "downward", "fall", "descend", "sink", "south"},
}
SLOW = {"slow", "gentle", "gent", "lazy", "lazi", "calm", "soft"}
FAST = {"fast", "quick", "rapid", "swift", "strong"}
DEFAULT_SPEED = 2.0


@dataclass(frozen=True)
class Motion:
    motion: str  # "flow" or "sway"
    direction_deg: float
    speed_deg_s: float
    understood: tuple[str, ...] = field(default=())  # what decided each part, for the user
    said: frozenset[str] = frozenset()  # the parts the words decided: motion, direction, speed

    def decided(self) -> dict[str, float | str]:
        """Region fields the words decided (``motion``, ``direction_deg``, ``speed_deg_s``);
        what they did not say is left out."""
        fields = {"motion": self.motion, "direction": self.direction_deg,
                  "speed": self.speed_deg_s}  # fmt: skip
        names = {"motion": "motion", "direction": "direction_deg", "speed": "speed_deg_s"}
        return {names[k]: v for k, v in fields.items() if k in self.said}

    def summary(self) -> str:
        how = f"{self.motion}, direction {self.direction_deg:g}°, {self.speed_deg_s:g}°/s"
        return f"{how} ({'; '.join(self.understood)})" if self.understood else how


def _forms(word: str) -> set[str]:
    """The word and its folded forms: "drifting" -> drift, "rising" -> rise, "running" -> run,
    "falling" -> fall, "slowly" -> slow, "leftward" -> left."""
    out = {word}
    for suffix in ("ingly", "ing", "ward", "ly", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            base = word[: -len(suffix)]
            out |= {base, base + "e"}
            if len(base) > 2 and base[-1] == base[-2]:
                out.add(base[:-1])
            break
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def parse_motion(prompt: str) -> Motion:
    """The motion a prompt describes (module docstring)."""
    words = _words(prompt)
    forms = [(w, _forms(w)) for w in words]
    understood, said = [], set()
    kind = "flow"
    for w, f in forms:
        if f & SWAY:
            kind = "sway"
            understood.append(f"'{w}': sway")
            said.add("motion")
            break
    else:
        for w, f in forms:
            if f & FLOW:
                understood.append(f"'{w}': flow")
                said.add("motion")
                break
    direction = 0.0
    for w, f in forms:
        hit = next((d for d, names in DIRECTIONS.items() if f & names), None)
        if hit is not None:
            direction = hit
            understood.append(f"'{w}': direction {hit:g}°")
            said.add("direction")
            break
    speed = DEFAULT_SPEED
    for i, (w, f) in enumerate(forms):
        very = i > 0 and words[i - 1] == "very"
        if f & SLOW:
            speed = 0.5 if very else 1.0
        elif f & FAST:
            speed = 8.0 if very else 5.0
        else:
            continue
        understood.append(f"'{'very ' if very else ''}{w}': {speed:g}°/s")
        said.add("speed")
        break
    return Motion(kind, direction, speed, tuple(understood), frozenset(said))


def parse_region_arg(text: str) -> tuple[str, str]:
    """``"sky: clouds drift left"`` -> ("sky", "clouds drift left"). The name is also what
    the segmentation model looks for."""
    name, sep, prompt = text.partition(":")
    name, prompt = name.strip(), prompt.strip()
    if not sep or not name:
        raise ValueError(
            f"--region {text!r}: write it as 'NAME: how it moves', e.g. 'sky: clouds drift left'"
        )
    return name, prompt
