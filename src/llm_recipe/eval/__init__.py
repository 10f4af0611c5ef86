"""Evaluation of trained models: format following (SFT), style success and content kept (DPO)."""
