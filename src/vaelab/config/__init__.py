"""Configuration: from the command line to a checked config, and objects built from it.

- `preflight`: compose the app's config with the command line before Hydra runs; every
  bad value stops there as one line, before anything is created.
- `checks`: the rules that need several keys or the machine; `schema` checks each
  `_target_` key against its target's annotated signature, `settings` the apps' own
  keys, `constraints` holds the shared annotated types, `upstream_ranges` bounds for
  upstream arguments that are only typed.
- `build`: the job's parts, the model and the groups of named objects, built the same
  way by the checks and by the job; `handover`: what the checks built, passed to the
  job of the same process; `resolvers`: vaelab's OmegaConf resolvers.

`constraints`, `schema` and `upstream_ranges` are the parameter types the domain code
declares its ranges with (layer 2 in docs/design.md); the rest may import the domain
packages, `vaelab.runs`, `vaelab.lightning` and `vaelab.errors`, never `vaelab.launch`,
`vaelab.tracking` or an app.
"""
