"""Web pages in the curation pipeline: main-content extraction (`extract`), Japanese web
boilerplate filters (`filters`: BBS comments, ads / affiliate text, NG words), repeated
header/footer lines per site (`boilerplate`, a global step)."""
