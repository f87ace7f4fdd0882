"""Evaluator: generation engines, answer extraction, one module per task, runner, reports."""
