"""Shipping a trained model: GGUF (llama.cpp), an Ollama Modelfile, a Hub-ready folder, LoRA
adapters merged or kept alone, and the push to the Hugging Face Hub.

    gguf_export   write_gguf (f32 / f16 / bf16 / q8_0), check_gguf (read back by transformers)
    ollama        the Modelfile: FROM the GGUF, TEMPLATE from the chat template, stop tokens
    folders       export_folder (the Hub-ready folder: weights, tokenizer, card), merge_adapter
    hub           push (huggingface_hub: private by default, dry run, one-line offline error)
"""
