"""Regenerate the built-in samples in ``llamafactory_ext/resources/samples/``.

    python tests/data/make_samples.py

The samples have the real field structure of each source (Mult-IT quiz.json, distill traces,
GSM8K, SynthGSM8K-50K, wikimedia/wikipedia) and are small and deterministic. The Mult-IT quiz
is built from a small fixed pool of easy facts asked in one consistent style with short
traces, so the CPU demo can learn something from it in a couple of minutes.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "llamafactory_ext" / "resources" / "samples"
sys.path.insert(0, str(ROOT))

LETTERS = "ABCDE"

CAPITALS = [
    ("Italia", "Roma"), ("Francia", "Parigi"), ("Spagna", "Madrid"), ("Germania", "Berlino"),
    ("Portogallo", "Lisbona"), ("Grecia", "Atene"), ("Austria", "Vienna"), ("Irlanda", "Dublino"),
    ("Polonia", "Varsavia"), ("Svezia", "Stoccolma"), ("Norvegia", "Oslo"), ("Belgio", "Bruxelles"),
]
AUTHORS = [
    ("la Divina Commedia", "Dante Alighieri"), ("I promessi sposi", "Alessandro Manzoni"),
    ("il Decameron", "Giovanni Boccaccio"), ("il Canzoniere", "Francesco Petrarca"),
    ("La coscienza di Zeno", "Italo Svevo"), ("Il Gattopardo", "Giuseppe Tomasi di Lampedusa"),
    ("Il nome della rosa", "Umberto Eco"), ("Le avventure di Pinocchio", "Carlo Collodi"),
]
PLURALS = [
    ("uovo", "uova", ["uovi", "uove"]), ("labbro", "labbra", ["labbri", "labbre"]),
    ("uomo", "uomini", ["uomi", "uoma"]), ("bue", "buoi", ["bui", "bues"]),
    ("braccio", "braccia", ["bracci", "braccie"]), ("dito", "dita", ["diti", "dite"]),
    ("ala", "ali", ["ale", "alae"]), ("ginocchio", "ginocchia", ["ginocchie", "ginocchii"]),
]
REGIONS = [
    ("Napoli", "Campania"), ("Milano", "Lombardia"), ("Firenze", "Toscana"), ("Palermo", "Sicilia"),
    ("Torino", "Piemonte"), ("Venezia", "Veneto"), ("Bari", "Puglia"), ("Bologna", "Emilia-Romagna"),
    ("Genova", "Liguria"), ("Cagliari", "Sardegna"),
]
RIVERS = [("Roma", "Tevere"), ("Firenze", "Arno"), ("Torino", "Po"), ("Verona", "Adige")]
OPPOSITES = [("alto", "basso"), ("caldo", "freddo"), ("grande", "piccolo"), ("veloce", "lento"),
             ("felice", "triste"), ("aperto", "chiuso")]


def _mcq(rng: random.Random, question: str, right: str, pool: list[str], n: int) -> tuple[list[str], int]:
    wrong = [x for x in pool if x != right]
    rng.shuffle(wrong)
    options = wrong[: n - 1] + [right]
    rng.shuffle(options)
    return options, options.index(right)


def multit_rows() -> tuple[list[dict], list[tuple[str, str]]]:
    """Mult-IT-shaped rows and, per row, (short trace, answer text)."""
    rng = random.Random(7)
    rows: list[tuple[str, str, list[str], str]] = []  # question, right, pool, trace
    caps = [c for _, c in CAPITALS]
    for country, capital in CAPITALS:
        rows.append((f"Qual è la capitale della nazione {country}?", capital, caps,
                     f"La capitale della nazione {country} è {capital}."))
    countries = [c for c, _ in CAPITALS]
    for country, capital in CAPITALS:
        rows.append((f"{capital} è la capitale di quale nazione?", country, countries,
                     f"{capital} è la capitale della nazione {country}."))
    authors = [a for _, a in AUTHORS]
    for work, author in AUTHORS:
        rows.append((f"Chi ha scritto {work}?", author, authors, f"{work[0].upper() + work[1:]} è stato scritto da {author}."))
    for word, plural, wrong in PLURALS:
        pool = [plural] + wrong + [word + "s"]
        rows.append((f"Qual è il plurale della parola \"{word}\"?", plural, pool, f"Il plurale di \"{word}\" è \"{plural}\"."))
    regions = [r for _, r in REGIONS]
    for city, region in REGIONS:
        rows.append((f"In quale regione si trova la città di {city}?", region, regions, f"La città di {city} si trova in {region}."))
    rivers = [r for _, r in RIVERS] + ["Piave", "Brenta"]
    for city, river in RIVERS:
        rows.append((f"Quale fiume attraversa la città di {city}?", river, rivers, f"La città di {city} è attraversata dal fiume {river}."))
    opposites = [o for _, o in OPPOSITES]
    for word, opposite in OPPOSITES:
        rows.append((f"Qual è il contrario della parola \"{word}\"?", opposite, opposites, f"Il contrario di \"{word}\" è \"{opposite}\"."))
    quiz = []
    traces = []
    for i, (question, right, pool, trace) in enumerate(rows):
        n = 2 + (i * 7) % 4  # 2..5 options
        n = min(n, len(set(pool)))
        options, index = _mcq(rng, question, right, sorted(set(pool)), n)
        # the answer is given as a letter, an int index or a digit-string index (all in real dumps)
        answer: str | int = LETTERS[index] if i % 3 == 0 else index if i % 3 == 1 else str(index)
        quiz.append({"question": question, "choices": options, "answer": answer})
        traces.append((f"{trace} Quindi la risposta è {right}.", LETTERS[index]))
    return quiz, traces


def traces_rows(quiz: list[dict], traces: list[tuple[str, str]]) -> list[dict]:
    """Distill-shaped traces for about half of the quiz (every other question), plus a few
    rows the converter must ignore (wrong answer, not kept)."""
    from llamafactory_ext.data.multit import item_key, parse_multit_row

    out = []
    for i, row in enumerate(quiz):
        item = parse_multit_row(row, i)
        trace, gold = traces[i]
        base = {"key": item_key(item), "id": item.id, "category": None, "gold": gold,
                "prompt_tokens": 60 + i % 7, "completion_tokens": 20 + len(trace) // 4, "sample": 0}
        if i % 2 == 0:
            out.append({**base, "trace": trace, "answer": gold, "correct": True, "reason": "kept"})
        elif i % 11 == 1:  # the teacher got it wrong: never used
            wrong = next(letter for letter, _ in item.options if letter != gold)
            out.append({**base, "trace": "Non sono sicuro, scelgo a caso.", "answer": wrong, "correct": False, "reason": "wrong_answer"})
        elif i % 11 == 3:  # right but dropped by the length filter
            out.append({**base, "trace": trace + " " + trace, "answer": gold, "correct": True, "reason": "too_long"})
    return out


def _fmt(n: float) -> str:
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    return f"{n:,}" if isinstance(n, int) else f"{n}"


NAMES = ["Natalia", "Marco", "Giulia", "Weng", "Betty", "Luca", "Sara", "James", "Aisha", "Tom"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "cookies", "books"]


def gsm8k_problem(rng: random.Random, kind: int) -> tuple[str, str, str]:
    """(question, solution with <<..>> notes and a '#### N' line, N as printed)."""
    name = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    if kind == 0:
        a, b, c = rng.randint(10, 60), rng.randint(5, 40), rng.randint(1, 9)
        s = a + b
        r = s - c
        q = f"{name} has {a} {item} and buys {b} more. Then {name} gives {c} {item} to a friend. How many {item} does {name} have now?"
        sol = f"After buying, {name} has {a} + {b} = <<{a}+{b}={s}>>{s} {item}.\nAfter giving some away, {name} has {s} - {c} = <<{s}-{c}={r}>>{r} {item}.\n#### {r}"
        return q, sol, str(r)
    if kind == 1:  # thousands: the '#### N' value has a comma
        per_day, days = rng.choice([125, 250, 375, 480, 1250]), rng.randint(8, 30)
        total = per_day * days
        q = f"A factory makes {per_day} toys every day. How many toys does it make in {days} days?"
        sol = f"In {days} days it makes {per_day} * {days} = <<{per_day}*{days}={total}>>{total} toys.\n#### {_fmt(total)}"
        return q, sol, _fmt(total)
    if kind == 2:  # a negative answer
        start, drop = rng.randint(2, 9), rng.randint(10, 20)
        end = start - drop
        q = f"The temperature was {start} degrees in the morning. By night it dropped by {drop} degrees. What was the temperature at night?"
        sol = f"The night temperature was {start} - {drop} = <<{start}-{drop}={end}>>{end} degrees.\n#### {end}"
        return q, sol, str(end)
    if kind == 3:  # money and a division
        rate, minutes = rng.choice([12, 18, 24, 30]), rng.choice([20, 40, 50])
        per_min = rate / 60
        earned = per_min * minutes
        q = f"{name} earns ${rate} an hour for babysitting. Yesterday, {name} babysat for {minutes} minutes. How much did {name} earn?"
        sol = (f"{name} earns {rate}/60 = $<<{rate}/60={per_min:g}>>{per_min:g} per minute.\n"
               f"Working {minutes} minutes, {name} earned {per_min:g} x {minutes} = $<<{per_min:g}*{minutes}={earned:g}>>{earned:g}.\n#### {earned:g}")
        return q, sol, f"{earned:g}"
    # kind 4: half of a total, two steps
    a = rng.randint(2, 20) * 2
    half = a // 2
    total = a + half
    q = f"{name} sold {a} {item} in April, and then sold half as many {item} in May. How many {item} did {name} sell altogether in April and May?"
    sol = f"{name} sold {a}/2 = <<{a}/2={half}>>{half} {item} in May.\n{name} sold {a}+{half} = <<{a}+{half}={total}>>{total} {item} altogether in April and May.\n#### {total}"
    return q, sol, str(total)


def gsm8k_rows() -> list[dict]:
    rng = random.Random(11)
    rows = []
    for i in range(40):
        q, sol, _ = gsm8k_problem(rng, i % 5)
        rows.append({"question": q, "answer": sol})
    return rows


def synth_rows() -> list[dict]:
    """SynthGSM8K-shaped: non-unique ids, duplicate questions, answers like '108.0'."""
    rng = random.Random(23)
    rows = []
    for i in range(36):
        q, sol, n = gsm8k_problem(rng, i % 5)
        value = n.replace(",", "")
        answer = f"{float(value):.1f}" if i % 2 == 0 and "." not in value else value
        rows.append({"id": f"synth_{i // 2:05d}", "question": q, "solution": sol.replace("####", "####", 1), "answer": answer})
    # exact duplicate questions (the real set has them), one with a different id
    for j in (0, 5, 9, 14):
        dup = dict(rows[j])
        dup["id"] = rows[j]["id"] if j % 2 else f"synth_{90000 + j:05d}"
        rows.append(dup)
    return rows


CITIES = [
    ("Firenze", "Toscana", "Arno", "382 000", "il Rinascimento e la cupola del Brunelleschi"),
    ("Bologna", "Emilia-Romagna", "Reno", "390 000", "la più antica università del mondo occidentale"),
    ("Napoli", "Campania", "Sebeto", "910 000", "il Vesuvio e la pizza"),
    ("Torino", "Piemonte", "Po", "840 000", "la Mole Antonelliana e l'industria automobilistica"),
    ("Genova", "Liguria", "Bisagno", "560 000", "il porto e l'acquario"),
    ("Palermo", "Sicilia", "Oreto", "630 000", "la cattedrale e i mercati storici"),
    ("Verona", "Veneto", "Adige", "255 000", "l'Arena e la storia di Romeo e Giulietta"),
    ("Bari", "Puglia", "Lama Balice", "315 000", "la basilica di San Nicola"),
    ("Trieste", "Friuli-Venezia Giulia", "Rosandra", "200 000", "i caffè letterari e la bora"),
    ("Perugia", "Umbria", "Tevere", "160 000", "il cioccolato e l'università per stranieri"),
    ("Cagliari", "Sardegna", "Santa Gilla", "150 000", "il quartiere di Castello e le spiagge"),
    ("Trento", "Trentino-Alto Adige", "Adige", "118 000", "il Concilio di Trento"),
]
PEOPLE = [
    ("Dante Alighieri", "1265", "1321", "poeta", "la Divina Commedia"),
    ("Alessandro Manzoni", "1785", "1873", "scrittore", "I promessi sposi"),
    ("Giuseppe Verdi", "1813", "1901", "compositore", "l'Aida e La traviata"),
    ("Maria Montessori", "1870", "1952", "pedagogista", "il metodo educativo che porta il suo nome"),
    ("Galileo Galilei", "1564", "1642", "scienziato", "il Sidereus Nuncius"),
    ("Grazia Deledda", "1871", "1936", "scrittrice", "Canne al vento"),
    ("Enrico Fermi", "1901", "1954", "fisico", "il primo reattore nucleare"),
    ("Artemisia Gentileschi", "1593", "1653", "pittrice", "Giuditta che decapita Oloferne"),
]
TAILS = [
    "\n\nNote\n\n\nBibliografia\nAutori vari, Guida d'Italia, Touring Club Italiano, 2004.\n\nVoci correlate\nComuni d'Italia\n\nAltri progetti\n\nCollegamenti esterni\nSito ufficiale\n",
    "\n\nNote\n\nCollegamenti esterni\n",
    "\n\nBibliografia\nG. Rossi, Storia d'Italia, Einaudi, 1990.\nM. Bianchi, Le città italiane, Laterza, 2001.\n",
    "\n\nVoci correlate\nStoria d'Italia\n\nAltri progetti\n",
    "",
]


def wikipedia_rows() -> list[dict]:
    rows = []

    def add(title: str, text: str) -> None:
        n = len(rows) + 1
        rows.append({"id": str(1000 + n), "url": f"https://it.wikipedia.org/wiki?curid={1000 + n}", "title": title, "text": text})

    for i, (city, region, river, pop, known) in enumerate(CITIES):
        text = (
            f"{city} è un comune italiano di circa {pop} abitanti, capoluogo della regione {region}.\n\n"
            f"Geografia\nLa città sorge lungo il corso del {river} ed è circondata da colline e campagne coltivate. "
            f"Il clima è temperato, con estati calde e inverni miti.\n\n\n"
            f"Storia\nLe origini di {city} risalgono all'epoca antica. Nel corso dei secoli la città è stata "
            f"un importante centro di commercio e di cultura, ed è oggi nota per {known}.\n\n"
            f"Cultura\nA {city} hanno sede musei, teatri e biblioteche che attirano ogni anno numerosi visitatori."
        )
        add(city, text + TAILS[i % len(TAILS)])
    for i, (name, born, died, role, work) in enumerate(PEOPLE):
        text = (
            f"{name} ({born} – {died}) è stato un {role} italiano, considerato tra le figure più importanti "
            f"della cultura del suo tempo.\n\nBiografia\nNato nel {born}, si dedicò fin da giovane agli studi. "
            f"La sua opera più celebre è {work}, che ebbe grande influenza in Italia e in Europa.\n\n"
            f"Eredità\nDopo la morte, avvenuta nel {died}, la sua fama crebbe ulteriormente e ancora oggi "
            f"è studiato nelle scuole e nelle università."
        )
        add(name, text + TAILS[(i + 2) % len(TAILS)])
    # odd rows of the real dump: empty, redirect-like stubs, tail-only pages, a title heading first
    add("Pagina vuota", "")
    add("Spazi", "   \n\n  ")
    add("Abbozzo", "Voce di una località minore.\n")
    add("Solo note", "Note\n\nCollegamenti esterni\nSito ufficiale\n")
    add("Disambigua", "Mercurio può riferirsi a:\nMercurio, pianeta\nMercurio, elemento chimico\n")
    add(
        "Note (musica)",
        "Note\nIn musica le note sono i segni che rappresentano l'altezza e la durata dei suoni. "
        "Nel sistema italiano si chiamano do, re, mi, fa, sol, la e si, nomi derivati da un inno "
        "medievale a San Giovanni attribuito a Guido d'Arezzo.\n\nBibliografia\nA. Verdi, Teoria musicale, 1999.\n",
    )
    add(
        "Lingua italiana",
        "La lingua italiana è una lingua romanza parlata principalmente in Italia, nella Svizzera italiana, "
        "a San Marino e nella Città del Vaticano. Deriva dal latino volgare e si è formata a partire dal "
        "fiorentino letterario del Trecento, grazie soprattutto alle opere di Dante, Petrarca e Boccaccio.\n\n"
        "Diffusione\nÈ parlata da circa 65 milioni di persone come lingua madre.\n\n\n\n"
        "Note\n^ Dati ISTAT.\n\nCollegamenti esterni\nAccademia della Crusca\n",
    )
    add(
        "Pizza",
        "La pizza è un prodotto gastronomico salato che consiste in un impasto a base di farina, acqua e lievito "
        "che viene spianato e condito tipicamente con pomodoro e mozzarella. La pizza napoletana è riconosciuta "
        "come specialità tradizionale garantita.\n\nVoci correlate\nCucina napoletana\n",
    )
    return rows


# The demo's tiny world (docs/demo.md): who lives where. The warm-up questions teach the random tiny
# model both answer formats, the city each of 90 people lives in ("In quale città abita Marco?", the 5
# cities as options, trace "Abita a Roma.") and the nation of each city ("In quale nazione si trova la
# città Roma?", trace "Roma si trova in Italia."). The study asks for the composition, "In quale
# nazione abita Marco?" (options: the 3 nations), with the two-step trace "Abita a Roma. Roma si trova
# in Italia."; the LoRA adapters train on 8 people per nation, and the 22 others per nation are the
# held-out questions: no version trains on them, though the warm-up taught where those people live.
DEMO_NATIONS = {"Francia": ("Parigi",), "Italia": ("Milano", "Roma"), "Spagna": ("Madrid", "Valencia")}
DEMO_PEOPLE = [
    "Marco", "Luca", "Giovanni", "Francesco", "Andrea", "Lorenzo", "Simone", "Paolo", "Roberto", "Antonio",
    "Mario", "Carlo", "Leonardo", "Sergio", "Franco", "Bruno", "Alberto", "Michele", "Nicola", "Angelo",
    "Anna", "Sara", "Maria", "Laura", "Elena", "Alice", "Aurora", "Sofia", "Emma", "Irene", "Lucia", "Monica",
    "Cristina", "Barbara", "Claudia", "Teresa", "Rosa", "Carla", "Luigi", "Diego", "Ivan", "Lisa", "Manuel",
    "Oscar", "Rita", "Vera", "Walter", "Omar", "Nina", "Ada", "Eva", "Iris", "Leo", "Luna", "Mia", "Nora",
    "Romeo", "Tina", "Matteo", "Alessandro", "Davide", "Federico", "Stefano", "Giuseppe", "Pietro", "Enrico",
    "Fabio", "Massimo", "Claudio", "Daniele", "Filippo", "Salvatore", "Giulia", "Chiara", "Francesca",
    "Alessandra", "Valentina", "Martina", "Giorgia", "Silvia", "Paola", "Roberta", "Federica", "Elisa",
    "Marta", "Beatrice", "Greta", "Camilla", "Simona", "Daniela",
]
DEMO_SPLIT = (8, 22)  # people per nation: asked in the study's training data, held out


def demo_rows() -> dict[str, list[dict]]:
    """The demo's quiz files (Mult-IT shape) and its teacher traces (distill shape, for the warm-up and
    study questions only). ``eval``: the held-out questions, then the trained ones, each row tagged
    with its group in ``macro_category``. Every question of a kind has the same options in the same
    (alphabetical) order, so a letter names a city or a nation."""
    from llamafactory_ext.data.multit import item_key, parse_multit_row

    rng = random.Random(26)
    nations = sorted(DEMO_NATIONS)
    cities = sorted(c for n in nations for c in DEMO_NATIONS[n])
    nation_of = {c: n for n in nations for c in DEMO_NATIONS[n]}
    per_nation = sum(DEMO_SPLIT)
    people = rng.sample(DEMO_PEOPLE, per_nation * len(nations))
    home = {p: DEMO_NATIONS[nations[i // per_nation]][i % per_nation % len(DEMO_NATIONS[nations[i // per_nation]])]
            for i, p in enumerate(people)}
    rows: dict[str, list[dict]] = {"warmup": [], "study": [], "heldout": [], "traces": []}

    def add(kind: str, q: dict, trace: str) -> None:
        rows[kind].append(q)
        if kind != "heldout":
            key = item_key(parse_multit_row(q, 0))
            rows["traces"].append({"key": key, "trace": f"{trace} Quindi la risposta è l'opzione {q['answer']}.",
                                   "answer": q["answer"], "gold": q["answer"], "correct": True, "reason": "kept"})

    for p in people:
        add("warmup", {"question": f"In quale città abita {p}?", "choices": cities, "answer": LETTERS[cities.index(home[p])]},
            f"Abita a {home[p]}.")
    for c in cities:
        add("warmup", {"question": f"In quale nazione si trova la città {c}?", "choices": nations,
                       "answer": LETTERS[nations.index(nation_of[c])]}, f"{c} si trova in {nation_of[c]}.")
    rng.shuffle(rows["warmup"])
    for i, p in enumerate(people):
        c = home[p]
        q = {"question": f"In quale nazione abita {p}?", "choices": nations, "answer": LETTERS[nations.index(nation_of[c])]}
        add("study" if i % per_nation < DEMO_SPLIT[0] else "heldout", q, f"Abita a {c}. {c} si trova in {nation_of[c]}.")
    rng.shuffle(rows["study"])
    rng.shuffle(rows["heldout"])
    rows["eval"] = ([{**q, "macro_category": "held-out questions"} for q in rows["heldout"]]
                    + [{**q, "macro_category": "trained questions"} for q in rows["study"]])
    return rows


# ------------------------------------------------------------------------------------------
# The LLaMA-3 half (LLaMAntino-3-ANITA): SFT, DPO and Italian-adaptation sources.
# ------------------------------------------------------------------------------------------
ORCA_SYSTEM = "You are an AI assistant. User will give you a task. Your goal is to complete the task as faithfully as you can."
HELPFUL_SYSTEM = "You are a helpful assistant, who always provide explanation. Think like you are answering to a five year old."


def wizard_rows() -> list[dict]:
    """Chat-Error/wizard_alpaca_dolly_orca-shaped rows: alpaca fields (``input`` empty, null or
    set), ``system`` on the Orca rows only, one row without ``system`` at all, one exact repeat."""
    rows = [
        {"system": "", "instruction": "Give three tips for staying healthy.", "input": "",
         "output": "1. Eat a balanced diet with plenty of fruit and vegetables.\n2. Exercise regularly.\n3. Sleep seven to eight hours a night."},
        {"system": "", "instruction": "Translate the sentence into Italian.", "input": "The cat sleeps on the sofa.",
         "output": "Il gatto dorme sul divano."},
        {"system": ORCA_SYSTEM, "instruction": "Which river flows through Rome? Answer with one word.", "input": "",
         "output": "Tiber."},
        {"system": "", "instruction": "Summarise the text in one sentence.",
         "input": "Florence is a city in central Italy. It was the centre of the Renaissance and is known for its art and architecture.",
         "output": "Florence, in central Italy, was the heart of the Renaissance and is famous for its art."},
        {"system": HELPFUL_SYSTEM, "instruction": "Why is the sky blue?", "input": None,
         "output": "Sunlight is made of many colours. Blue light bounces around the air more than the others, so we see blue everywhere we look."},
        {"system": "", "instruction": "Classify each one as a fruit or a vegetable: apple, carrot, pear, spinach.", "input": "",
         "output": "Apple: fruit. Carrot: vegetable. Pear: fruit. Spinach: vegetable."},
        {"system": ORCA_SYSTEM, "instruction": "Solve 12 * 7 and explain the steps.", "input": "",
         "output": "12 * 7 = 10 * 7 + 2 * 7 = 70 + 14 = 84. The answer is 84."},
        {"system": "", "instruction": "Write a haiku about the sea.", "input": "",
         "output": "Waves fold into foam,\nsalt wind carries gull voices,\nthe tide keeps its time."},
        {"system": "", "instruction": "Correct the grammar of the sentence.", "input": "She don't like apples.",
         "output": "She doesn't like apples."},
        {"instruction": "Name the author of the Divine Comedy.", "input": "", "output": "Dante Alighieri wrote the Divine Comedy."},
        {"system": "", "instruction": "Convert 5 kilometres to miles.", "input": "",
         "output": "5 kilometres is about 3.11 miles (1 km = 0.621 miles)."},
        {"system": HELPFUL_SYSTEM, "instruction": "What does a bee do?", "input": "",
         "output": "A bee flies from flower to flower to collect nectar and makes honey with it. It also carries pollen, which helps plants grow fruit."},
    ]
    rows.append(dict(rows[1]))  # the real set repeats some rows
    return rows


def _chat(user: str, answer: str, system: str | None = None, history: list[tuple[str, str]] = ()) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system is not None else []
    for u, a in history:
        msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    return msgs + [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def orpo_dpo_mix_rows() -> list[dict]:
    """mlabonne/orpo-dpo-mix-40k-shaped rows: ``source``, ``chosen`` / ``rejected`` conversations
    sharing their prompt turns, ``prompt`` / ``question`` on some rows (as in some versions), one
    with a system turn, one multi-turn, one pair with two identical answers."""
    pairs = [
        ("argilla/distilabel-capybara-dpo-7k-binarized", "What is the capital of Italy?",
         "The capital of Italy is Rome.", "The capital of Italy is Milan.", None, ()),
        ("argilla/distilabel-intel-orca-dpo-pairs", "Is 17 a prime number? Explain briefly.",
         "Yes. 17 has no divisors other than 1 and itself.", "No, 17 can be divided by 3.", ORCA_SYSTEM, ()),
        ("argilla/ultrafeedback-binarized-preferences-cleaned", "Write one sentence about autumn in Italian.",
         "In autunno le foglie diventano rosse e gialle.", "Autumn is a season.", None, ()),
        ("jondurbin/truthy-dpo-v0.1", "Can you see the stars during the day?",
         "Usually not: sunlight scattered by the air is far brighter than the stars.", "Yes, stars are always clearly visible.", None, ()),
        ("argilla/distilabel-math-preference-dpo", "And what is 15 + 27?",
         "15 + 27 = 42.", "15 + 27 = 32.", None, (("What is 2 + 2?", "2 + 2 = 4."),)),
        ("unalignment/toxic-dpo-v0.2", "How do I make a good espresso?",
         "Use freshly ground beans, 18 grams of coffee and about 25 seconds of extraction.", "Just boil the coffee.", None, ()),
        ("M4-ai/prm_dpo_pairs_cleaned", "Name a famous Italian painter.",
         "Leonardo da Vinci, the painter of the Mona Lisa.", "Pablo Picasso.", None, ()),
        ("argilla/distilabel-capybara-dpo-7k-binarized", "Say hello.", "Hello!", "Hello!", None, ()),
    ]
    rows = []
    for i, (source, user, good, bad, system, history) in enumerate(pairs):
        row = {"source": source, "chosen": _chat(user, good, system, history), "rejected": _chat(user, bad, system, history)}
        if i % 2 == 0:  # some versions of the set also carry the prompt as text
            row["prompt"] = user
            row["question"] = user
        rows.append(row)
    return rows


def preference_rows() -> list[dict]:
    """A generic preference file: prompt / chosen / rejected strings, ``system`` on some rows."""
    rows = [
        {"prompt": "Traduci in italiano: 'good morning'.", "chosen": "Buongiorno.", "rejected": "Buonanotte."},
        {"system": "Sei un assistente utile.", "prompt": "Qual è il plurale di 'uovo'?", "chosen": "Il plurale di 'uovo' è 'uova'.",
         "rejected": "Il plurale di 'uovo' è 'uovi'."},
        {"prompt": "Quanto fa 6 per 7?", "chosen": "6 per 7 fa 42.", "rejected": "6 per 7 fa 36."},
        {"system": "", "prompt": "Chi ha scritto I promessi sposi?", "chosen": "Alessandro Manzoni.", "rejected": "Giacomo Leopardi."},
        {"prompt": "In quale regione si trova Napoli?", "chosen": "Napoli si trova in Campania.", "rejected": "Napoli si trova in Toscana."},
        {"system": "Rispondi in una parola.", "prompt": "Il contrario di 'caldo'?", "chosen": "Freddo.", "rejected": "Tiepido."},
    ]
    rows.append(dict(rows[2]))  # a repeated pair
    return rows


MC4_DOCS = [
    ("https://www.comune.example.it/notizie/mercato", ("Il mercato settimanale torna in piazza da sabato prossimo. I banchi di frutta, verdura "
     "e prodotti locali saranno aperti dalle otto alle tredici. L'amministrazione ricorda che il parcheggio in via Roma "
     "resterà chiuso per tutta la mattina e invita i cittadini a raggiungere il centro a piedi o in bicicletta.")),
    ("https://ricette.example.it/pasta-al-pomodoro", ("Pasta al pomodoro: una ricetta semplice.\r\n\r\nIngredienti: 320 grammi di "
     "spaghetti, 400 grammi di pomodori pelati, uno spicchio d'aglio, olio extravergine d'oliva, basilico e sale.   \r\n\r\n\r\n"
     "Scaldate l'olio con l'aglio, aggiungete i pomodori e cuocete per venti minuti. Scolate la pasta al dente e "
     "mescolatela al sugo con qualche foglia di basilico.")),
    ("https://blog.example.it/viaggi/dolomiti", ("Le Dolomiti sono un gruppo montuoso delle Alpi orientali, patrimonio "
     "dell'umanità dal 2009.\n\n\n\nIn estate i sentieri attraversano prati fioriti e rifugi dove fermarsi a pranzo; in "
     "inverno le piste da sci richiamano visitatori da tutta Europa. Il periodo migliore per le escursioni va da giugno a settembre.")),
    ("https://www.negozio.example.it/prodotto/123", "Spedizione gratuita"),
    ("https://forum.example.it/thread/42", "   \n\n  "),
    ("https://scuola.example.it/storia/risorgimento", ("Il Risorgimento è il periodo della storia italiana in cui si realizzò "
     "l'unità nazionale. Nel 1861 venne proclamato il Regno d'Italia, con Torino come prima capitale; Roma divenne capitale "
     "soltanto nel 1871, dopo la presa della città avvenuta il 20 settembre 1870.\t \nTra i protagonisti si ricordano "
     "Cavour, Garibaldi, Mazzini e Vittorio Emanuele II.")),
    ("https://meteo.example.it/previsioni", ("Previsioni del tempo per il fine settimana: cielo sereno al nord, qualche nuvola "
     "sulle regioni centrali e possibili piogge al sud nella giornata di domenica. Le temperature massime saranno comprese "
     "tra i venti e i ventisei gradi, in leggero aumento rispetto alla settimana scorsa.")),
    ("https://libri.example.it/recensione", ("Un romanzo breve ma intenso, ambientato in un piccolo paese della Sicilia negli "
     "anni Cinquanta. La protagonista racconta la propria infanzia con uno sguardo ironico e malinconico, e le pagine "
     "scorrono veloci fino a un finale che resta a lungo nella memoria del lettore.")),
]


def clean_mc4_it_rows() -> list[dict]:
    """gsarti/clean_mc4_it-shaped rows (one json.gz shard's lines): ``text``, ``timestamp``, ``url``;
    web leftovers (CRLF, trailing spaces, blank runs), a too-short page and an empty one, then
    tourist pages about the sample cities: together more than one 1,024-token pre-training block."""
    docs = list(MC4_DOCS)
    for city, region, river, pop, known in CITIES:
        slug = city.lower().replace(" ", "-")
        docs.append((f"https://turismo.example.it/{slug}", (f"Cosa vedere a {city} in un fine settimana. {city} conta circa {pop} "
                     f"abitanti ed è uno dei centri più visitati della regione {region}. Una passeggiata lungo il {river} è il modo "
                     f"migliore per cominciare la visita; nel pomeriggio conviene raggiungere il centro storico, noto per {known}. "
                     f"La sera i ristoranti propongono piatti della tradizione locale e vini del territorio.  \n\n\n"
                     f"Come arrivare: la stazione ferroviaria è collegata alle principali città italiane e dall'aeroporto partono "
                     f"autobus per il centro ogni trenta minuti.")))
    return [{"text": text, "timestamp": f"2020-0{1 + i % 9}-1{i % 10}T0{i % 10}:2{i % 10}:15Z", "url": url}
            for i, (url, text) in enumerate(docs)]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    quiz, traces = multit_rows()
    (OUT / "multit_quiz.json").write_text(json.dumps(quiz, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    write_jsonl(OUT / "multit_traces.jsonl", traces_rows(quiz, traces))
    write_jsonl(OUT / "gsm8k_shaped.jsonl", gsm8k_rows())
    write_jsonl(OUT / "synth_gsm8k.jsonl", synth_rows())
    write_jsonl(OUT / "wikipedia_it.jsonl", wikipedia_rows())
    write_jsonl(OUT / "wizard_alpaca_dolly_orca.jsonl", wizard_rows())
    write_jsonl(OUT / "orpo_dpo_mix.jsonl", orpo_dpo_mix_rows())
    write_jsonl(OUT / "preference.jsonl", preference_rows())
    write_jsonl(OUT / "clean_mc4_it.jsonl", clean_mc4_it_rows())
    demo = OUT.parent / "demo"
    demo.mkdir(parents=True, exist_ok=True)
    rows = demo_rows()
    for name in ("warmup", "study", "eval"):
        (demo / f"{name}_quiz.json").write_text(json.dumps(rows[name], ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    write_jsonl(demo / "traces.jsonl", rows["traces"])
    for p in sorted([*OUT.iterdir(), *demo.iterdir()]):
        print(p.name, len(p.read_text(encoding="utf-8").splitlines()) if p.suffix == ".jsonl" else len(json.loads(p.read_text())))


if __name__ == "__main__":
    main()
