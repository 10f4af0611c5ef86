"""Human preference collection: a web annotation app (`llm-recipe annotate serve`).

An admin makes a project from a candidates or pairs file (mode: pairwise A/B with tie and both bad,
ranking of k answers, or a 1-7 scale), writes guidelines and adds annotators; each annotator logs in
with their own token and answers items shown in a random order; the dashboard shows progress,
Cohen's / Fleiss' kappa with its band, agreement with the majority and position bias; the export is
`prefs agreement`'s output. db -> auth -> modes, sources -> store -> stats, export -> site -> pages -> app.
"""
