"""Preference data (stage 4) components: pair records and converters, candidate generation,
labelers (reward model, rules, LLM judge), human annotation import, annotator agreement. The
`llm-recipe prefs` commands that chain them are in `stages.prefs`."""
