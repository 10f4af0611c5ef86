"""Rewards you can check, and one way to combine them: reward sources (`sources`: verifiers,
Python functions with TRL's `reward_funcs` convention, reward servers, reward models, rules) for
every consumer (PPO / GRPO / RLOO / REINFORCE++, online DPO, Best-of-N, `prefs label`); the
built-in verifiers (`verifiers`: math answers, format, IFEval-style constraints, length shaping);
verifiable tasks (`tasks`, the bundled JA/EN arithmetic set `arith-v1` from `arithmetic`)."""
