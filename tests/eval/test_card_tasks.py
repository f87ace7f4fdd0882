"""What a model card says of the evaluated task (its Hub data set, languages, a usage example)
comes from the task registry (``eval.tasks``: ``hub_dataset``, ``languages``, ``usage_example``),
checked here on real re-scored GSM8K and ITALIC evaluations (no model) against the Hub names the
data sets are published under (DESIGN.md: openai/gsm8k main test, Crisp-Unimib/ITALIC default train)."""

from __future__ import annotations

import ast
import types

import pytest
import yaml

from llamafactory_ext.eval.results import Results
from llamafactory_ext.eval.runner import run
from tests.eval.common import italic_rows, rescore_cfg, write_rows


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    root = tmp_path_factory.mktemp("card-tasks")
    gsm = write_rows(root / "gsm8k.jsonl", [{"question": "1 + 1?", "answer": "1+1=2\n#### 2"}])
    run(rescore_cfg(gsm, write_rows(root / "g.jsonl", [{"id": "0", "mode": "nothink", "output": "2"}]), root / "gsm8k", task="gsm8k"))
    italic = write_rows(root / "italic.jsonl", italic_rows(4))
    run(rescore_cfg(italic, write_rows(root / "i.jsonl", [{"id": str(i), "mode": "nothink", "output": "A"} for i in range(4)]),
                    root / "italic"))
    return {name: Results.from_json(root / name) for name in ("gsm8k", "italic")}


def _messages(snippet: list[str]) -> list[dict]:
    """The ``messages = [...]`` literal of the card's usage snippet, read back as Python reads it."""
    code = "\n".join(snippet[snippet.index("```python") + 1:snippet.index("```", snippet.index("```python") + 1)])
    (node,) = [n for n in ast.parse(code).body if isinstance(n, ast.Assign) and n.targets[0].id == "messages"]
    return ast.literal_eval(node.value)


@pytest.mark.parametrize("task, hub, language, asks", [
    ("gsm8k", ("GSM8K", "openai/gsm8k", "main", "test"), ["en"], "How many clips did Natalia sell"),
    ("italic", ("ITALIC", "Crisp-Unimib/ITALIC", "default", "train"), ["it"], "Qual è la capitale d'Italia?\nA) Milano\nB) Roma"),
])
def test_the_card_names_the_tasks_hub_data_set_and_language_from_the_registry(evaluations, task, hub, language, asks):
    from llamafactory_ext.card_render import eval_results, front_matter, usage_lines

    res = evaluations[task]
    scores = eval_results(res)  # one mode: GSM8K its total; ITALIC its total, 2 categories and 2 macro categories
    assert len(scores) == (1 if task == "gsm8k" else 5)
    assert {(r.dataset_name, r.dataset_type, r.dataset_config, r.dataset_split) for r in scores} == {hub}
    cfg = types.SimpleNamespace(language=None, license="apache-2.0")
    meta = yaml.safe_load(front_matter(cfg, res, [], "Qwen/Qwen3-8B", "x", "LORA"))
    assert meta["language"] == language and meta["model-index"][0]["results"][0]["dataset"]["type"] == hub[1]
    messages = _messages(usage_lines("Qwen/Qwen3-8B", "me/x", res))
    assert asks in messages[-1]["content"] and messages[-1]["role"] == "user"


def test_data_that_are_not_on_the_hub_are_named_by_the_file_evaluated(tmp_path):
    """Mult-IT's held-out questions are a local file (a prepared *_val.jsonl, the demo's quiz): the
    card names that file, not a Hub split that does not exist."""
    from importlib import resources

    from llamafactory_ext.card_render import eval_results
    from llamafactory_ext.data.multit import load_multit

    quiz = resources.files("llamafactory_ext") / "resources" / "samples" / "multit_quiz.json"
    pred = write_rows(tmp_path / "p.jsonl", [{"id": it.id, "mode": "nothink", "output": it.answer} for it in load_multit(str(quiz))])
    run(rescore_cfg(quiz, pred, tmp_path / "o", task="multit"))
    names = {(r.dataset_name, r.dataset_type, r.dataset_split) for r in eval_results(Results.from_json(tmp_path / "o"))}
    assert names == {("Mult-IT (multit_quiz.json)", "multit", None)}
