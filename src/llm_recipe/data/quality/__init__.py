"""Model-based filters: quality classifier, LM perplexity, harmful content.

Modules: `classifier` (hashed n-gram + logistic regression, saved as safetensors), `perplexity`
(causal LM scorer and a numpy char n-gram LM), `hf_classifier` (any HF text-classification
directory), `harmful_seed` (the shipped, generated seed set), `synthetic` (generated
low-quality text), `steps` (the pipeline steps), `config` (the `curate.quality` block).
Nothing is imported here so that importing the config stays light.
"""
