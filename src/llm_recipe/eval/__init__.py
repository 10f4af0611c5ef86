"""Evaluation of trained models: template following (SFT), style success and content kept (DPO)."""
