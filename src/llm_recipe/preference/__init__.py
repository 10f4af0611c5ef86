"""Stage 4: preference data — records and converters, candidate generation, labelers (reward
model, rules, LLM judge, human annotation import) and annotator agreement."""
