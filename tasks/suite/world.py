"""A small invented world whose facts the utility items ask about (so no real-world knowledge is needed)."""
from __future__ import annotations

import random
from dataclasses import dataclass

_SYLLABLES = ("ka", "vel", "mor", "tan", "ri", "zo", "len", "dar", "shi", "bo", "quel", "nor",
              "fa", "gri", "lu", "ter", "os", "ven", "thal", "mi", "sa", "ped", "ru", "kol")
_COUNTRY_ENDINGS = ("ia", "land", "ar", "ova", "esh", "or")
_CITY_ENDINGS = ("ton", "burg", "ville", "port", "holm", "mere")
LANGUAGES = ("Velish", "Tarnese", "Oskarin", "Mirrolic", "Zandari", "Quelth", "Brenic", "Halvish",
             "Dorune", "Kaspi", "Lurian", "Othic")


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    language: str


def _name(rng: random.Random, n_syllables: int, endings: tuple[str, ...]) -> str:
    return ("".join(rng.choice(_SYLLABLES) for _ in range(n_syllables)) + rng.choice(endings)).capitalize()


def make_world(seed: int, n_countries: int = 40) -> tuple[Country, ...]:
    """Invented countries with distinct names, capitals and one of a dozen invented languages."""
    rng = random.Random(f"world/{seed}")
    used: set[str] = set()
    countries = []
    while len(countries) < n_countries:
        name, capital = _name(rng, 2, _COUNTRY_ENDINGS), _name(rng, 2, _CITY_ENDINGS)
        if name in used or capital in used:
            continue
        used.update((name, capital))
        countries.append(Country(name, capital, rng.choice(LANGUAGES)))
    return tuple(countries)
