"""IAM conformance: every AWS call a function makes is granted by its own role's policies.

moto enforces no IAM. These modules record the calls the tests make beneath each
``functions/<name>/handler.py`` (:mod:`.recorder`), name each call's IAM action, resource and
condition keys (:mod:`.calls`), read each function's role from template.yaml as SAM transforms it
(:mod:`.roles`) and evaluate the call against it as IAM does (:mod:`.policy`).
"""
