"""The recipe's stages, one module each: read the config, call the components, write the stage's
run folder (skipping work that is already complete). `recipe.py` sequences them; every CLI
command is a thin call of one of them."""
