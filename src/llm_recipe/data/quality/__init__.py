"""Model-based filters: quality classifier, LM perplexity, harmful content.

Modules: `classifier` (hashed n-gram + logistic regression, saved as safetensors), `perplexity`
(causal LM scorer and a numpy char n-gram LM), `hf_classifier` (any HF text-classification
directory), `harmful_seed` (reads the shipped training data of the default harmful classifier),
`harm_lexicon` (the JA/EN category lexicon joined to that classifier by default),
`steps` (the pipeline steps). Their settings: `config.curate.QualityConfig` (`curate.quality`).
"""
