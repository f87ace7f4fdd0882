"""`study` without running anything: the published figures come from the task registry (the task
that carries them, ``eval.tasks.Task.published``), not from a test of the task's name, and the
trials are built by keyword (``sweep.trials.make_trial``)."""

from __future__ import annotations

from llamafactory_ext.study import StudyConfig, _published, directions, published_table


def _row(model: str, task: str, name: str = "baseline") -> dict:
    return {"name": name, "model": {"model_name_or_path": model}, "task": task, "modes": {}}


def test_published_figures_come_from_the_evaluated_tasks_registry_entry():
    from llamafactory_ext.eval.italic import ItalicTask

    auto = StudyConfig()
    assert _published(auto, [_row("Qwen/Qwen3-8B", "italic")]) is ItalicTask.published
    assert _published(auto, [_row("/models/Qwen3-8B", "italic")]) is ItalicTask.published
    assert _published(auto, [_row("Qwen/Qwen3-8B", "multit")]) is None        # Mult-IT has no published series
    assert _published(auto, [_row("Qwen/Qwen3-4B", "italic")]) is None        # another base model
    assert _published(StudyConfig(published=True), [_row("tiny", "multit")]) is ItalicTask.published  # the demo
    assert _published(StudyConfig(published=False), [_row("Qwen/Qwen3-8B", "italic")]) is None


def test_published_table_and_directions_read_the_figures_given():
    figures = {"title": "Published (a made-up study):", "model": "m",
               "versions": {"baseline": {"nothink": 50.0, "think": 60.0}, "V1": {"nothink": 55.0, "think": 40.0}}}
    assert published_table(figures) == ["Published (a made-up study):", "", "| Version | No Thinking (Δ) | Thinking (Δ) |",
                                         "|---|---:|---:|", "| Baseline | 50.00 | 60.00 |", "| V1 | 55.00 (+5.00) | 40.00 (-20.00) |"]
    comp = {"delta": 4.0, "significant": True}
    rows = [{"name": "V1", "modes": {"nothink": {"vs_baseline": {"total": comp}}, "think": {"vs_baseline": {"total": comp}}}}]
    (sentence,) = directions(rows, "total", figures).values()
    assert "published +5.00" in sentence and "published -20.00" in sentence
    assert sentence.endswith("the direction differs from the published one in thinking.")


def test_make_trial_takes_keywords_only(tmp_path):
    import pytest

    from llamafactory_ext.sweep.trials import make_trial

    with pytest.raises(TypeError):
        make_trial("x", {}, None, {}, {}, tmp_path, None, str(tmp_path), {})  # type: ignore[misc]
    trial = make_trial(name="base", params={"version": "base"}, recipe=None, base={"model_name_or_path": "m"}, overrides={},
                       out_root=tmp_path, eval_spec=None, cwd=str(tmp_path), env={})
    assert trial.train_cmd is None and trial.eval_cmd is None and trial.dir == str(tmp_path / "base")
